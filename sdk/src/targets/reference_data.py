#!/usr/bin/env python3
"""Independent numpy reference for the target assigners in this directory.

Regenerate `reference_data.rs` (test-only, not part of the build) with

    pip install numpy
    python3 trainer/src/targets/reference_data.py > trainer/src/targets/reference_data.rs

It re-implements MMDetection 3.x's ATSSAssigner, MaxIoUAssigner and
FCOSHead._get_targets_single semantics with whole-array numpy code (float32 box
math, float64 mean/std), on deterministic pseudo-random inputs. Seeds are chosen
so that no IoU lies within 1e-4 of an ATSS threshold or MaxIoU threshold and no
FCOS distance lies on a regress-range bound, i.e. the expected arrays do not
depend on float rounding details.
"""
import numpy as np

F = np.float32
BG = -1  # negative
IGN = -2  # ignore


def iou(a, b):
    a = a.astype(F)[:, None, :]
    b = b.astype(F)[None, :, :]
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = (w * h).astype(F)
    return (inter / np.maximum(area_a + area_b - inter, F(1e-6))).astype(F)


def atss(anchors, levels, gts, topk=9):
    n, g = len(anchors), len(gts)
    if g == 0:
        return np.full(n, BG), np.zeros(n, F), 1.0
    ov = iou(anchors, gts)  # (n, g)
    ac = np.stack([(anchors[:, 0] + anchors[:, 2]) / F(2), (anchors[:, 1] + anchors[:, 3]) / F(2)], 1)
    gc = np.stack([(gts[:, 0] + gts[:, 2]) / F(2), (gts[:, 1] + gts[:, 3]) / F(2)], 1)
    d = np.sqrt(((ac[:, None, :] - gc[None, :, :]) ** 2).sum(-1)).astype(F)  # (n, g)
    cand = []
    gap = np.inf
    s = 0
    for m in levels:
        k = min(topk, m)
        order = np.argsort(d[s:s + m], axis=0, kind="stable")  # (m, g)
        if k < m:  # distance gap between the last candidate and the first non-candidate
            ds = np.take_along_axis(d[s:s + m], order, 0)
            gap = min(gap, (ds[k] - ds[k - 1]).min())
        cand.append(order[:k] + s)
        s += m
    cand = np.concatenate(cand, 0)  # (K, g)
    cov = np.take_along_axis(ov, cand, 0).astype(np.float64)
    thr = (cov.mean(0).astype(F) + cov.std(0, ddof=1).astype(F)).astype(F)
    margin = min(np.abs(cov - thr[None]).min(), gap)
    ok = cov.astype(F) >= thr[None]
    cx = ac[cand, 0]
    cy = ac[cand, 1]
    inside = np.stack([cx - gts[:, 0], cy - gts[:, 1], gts[:, 2] - cx, gts[:, 3] - cy], -1).min(-1) > F(0.01)
    ok &= inside
    score = np.full((n, g), -np.inf)
    for j in range(g):
        score[cand[ok[:, j], j], j] = ov[cand[ok[:, j], j], j]
    best = score.max(1)
    arg = score.argmax(1)
    pos = best > -np.inf
    inds = np.where(pos, arg, BG)
    mo = np.where(pos, best, 0).astype(F)
    return inds, mo, margin


def max_iou(anchors, gts, pos=0.5, neg=0.4, min_pos=0.0):
    n, g = len(anchors), len(gts)
    if g == 0:
        return np.full(n, BG), np.zeros(n, F), 1.0
    ov = iou(gts, anchors)  # (g, n)
    mo = ov.max(0)
    am = ov.argmax(0)
    gmax = ov.max(1)
    inds = np.full(n, IGN)
    inds[(mo >= 0) & (mo < F(neg))] = BG
    inds[mo >= F(pos)] = am[mo >= F(pos)]
    for i in range(g):
        if gmax[i] >= F(min_pos):
            inds[ov[i] == gmax[i]] = i
    margin = min(np.abs(mo - F(pos)).min(), np.abs(mo - F(neg)).min())
    return inds, mo, margin


def fcos(points, levels, strides, ranges, gts, labels, num_classes, center_sampling, radius, norm):
    n, g = len(points), len(gts)
    lvl = np.repeat(np.arange(len(levels)), levels)
    st = np.array(strides, F)[lvl]
    rr = np.array(ranges, F)[lvl]
    x = points[:, 0][:, None]
    y = points[:, 1][:, None]
    l = x - gts[None, :, 0]
    t = y - gts[None, :, 1]
    r = gts[None, :, 2] - x
    b = gts[None, :, 3] - y
    ltrb = np.stack([l, t, r, b], -1).astype(F)  # (n, g, 4)
    if center_sampling:
        cx = (gts[:, 0] + gts[:, 2]) / F(2)
        cy = (gts[:, 1] + gts[:, 3]) / F(2)
        rad = (st * F(radius))[:, None]
        x0 = np.maximum(cx[None] - rad, gts[None, :, 0])
        y0 = np.maximum(cy[None] - rad, gts[None, :, 1])
        x1 = np.minimum(cx[None] + rad, gts[None, :, 2])
        y1 = np.minimum(cy[None] + rad, gts[None, :, 3])
        inside = np.stack([x - x0, y - y0, x1 - x, y1 - y], -1).min(-1) > 0
    else:
        inside = ltrb.min(-1) > 0
    mx = ltrb.max(-1)
    in_range = (mx >= rr[:, None, 0]) & (mx <= rr[:, None, 1])
    margin = min(np.abs(mx - rr[:, None, 0]).min(), np.abs(mx - rr[:, None, 1]).min())
    area = ((gts[:, 2] - gts[:, 0]) * (gts[:, 3] - gts[:, 1])).astype(F)
    cost = np.where(inside & in_range, area[None], F(1e8))
    arg = cost.argmin(1)
    is_pos = cost.min(1) != F(1e8)
    lab = np.where(is_pos, labels[arg], num_classes)
    tgt = ltrb[np.arange(n), arg]
    if norm:
        tgt = tgt / st[:, None]
    return lab, tgt.astype(F), margin


def with_valid(valid, levels, run):
    """Run `run(idx, level_counts)` on the valid priors; scatter back, invalid = IGN."""
    idx = np.nonzero(valid)[0]
    counts, s = [], 0
    for m in levels:
        counts.append(int(valid[s:s + m].sum()))
        s += m
    inds, mo, margin = run(idx, counts)
    full_i = np.full(len(valid), IGN)
    full_m = np.zeros(len(valid), F)
    full_i[idx] = inds
    full_m[idx] = mo
    return full_i, full_m, margin


def grid_valid(h, w, stride, own_w, own_h):
    """MMDet valid flags: cell (x, y) valid iff x < ceil(own_w / stride) and y < ceil(own_h / stride)."""
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return ((xs < -(-own_w // stride)) & (ys < -(-own_h // stride))).reshape(-1)


def grid_anchors(h, w, stride, side):
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    cx = (xs.reshape(-1) * stride).astype(F)
    cy = (ys.reshape(-1) * stride).astype(F)
    half = F(side / 2)
    return np.stack([cx - half, cy - half, cx + half, cy + half], 1).astype(F)


def grid_points(h, w, stride):
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return np.stack([(xs.reshape(-1) + F(0.5)) * F(stride), (ys.reshape(-1) + F(0.5)) * F(stride)], 1).astype(F)


def retina_half_sizes(stride):
    """(half width, half height) of the 9 RetinaNet anchors of a level, ratio-major, as f32."""
    out = []
    for ratio in (0.5, 1.0, 2.0):
        for i in range(3):
            size = stride * 4 * 2 ** (i / 3)
            hr = np.sqrt(ratio)
            out.append((F(size / hr / 2), F(size * hr / 2)))
    return np.array(out, F)


def retina_anchors():
    out = []
    for h, w, s in LEVELS:
        half = retina_half_sizes(s)
        ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        for cx, cy in zip(xs.reshape(-1) * s, ys.reshape(-1) * s):
            cx, cy = F(cx), F(cy)
            for hw, hh in half:
                out.append([cx - hw, cy - hh, cx + hw, cy + hh])
    return np.array(out, F)


def rand_gts(rng, n, wmax, hmax, smin, smax):
    out = []
    for _ in range(n):
        w = rng.uniform(smin, smax)
        h = rng.uniform(smin, smax)
        x = rng.uniform(-0.1 * w, max(wmax - 0.9 * w, 1 - 0.1 * w))
        y = rng.uniform(-0.1 * h, max(hmax - 0.9 * h, 1 - 0.1 * h))
        out.append([x, y, x + w, y + h])
    return np.round(np.array(out), 2).astype(F)


def rs_f32(v):
    # Shortest decimal that round-trips to the same f32 (Rust's parser reads it back exactly).
    return np.format_float_positional(F(v), unique=True, trim="0")


def emit_str(name, items, per_line):
    """A whitespace-separated list as a raw string (rustfmt leaves it alone)."""
    lines = [" ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    print(f'pub const {name}: &str = r"')
    for line in lines:
        print(line)
    print('";')


def emit_boxes(name, a, n=4):
    emit_str(name, [rs_f32(v) for v in np.asarray(a).reshape(-1)], 4 * n)


def emit(name, ty, a):
    if ty == "f32":
        emit_str(name, [rs_f32(v) for v in a], 12)
    else:
        emit_str(name, [str(int(v)) for v in a], 30)


# A 100 x 76 padded batch image; this image's own padded size is 64 x 64 (valid flags).
# Levels (h, w, stride): 10x13 @ 8, 5x7 @ 16, 3x4 @ 32.
LEVELS = [(10, 13, 8), (5, 7, 16), (3, 4, 32)]
OWN_W, OWN_H = 64, 64


def main():
    print("//! Expected outputs of `reference_data.py` (independent numpy reference).")
    print("//! Generated file: do not edit; see the script's docstring to regenerate.")
    print("//! Inputs: a 100 x 76 batch image, levels (h, w, stride) = 10x13@8, 5x7@16, 3x4@32;")
    print("//! valid flags from an own padded size of 64 x 64.")
    print("//! Each constant is a whitespace-separated list (boxes: 4 numbers each); see")
    print("//! `reference_tests::parse`.")
    print()
    levels = [h * w for h, w, _ in LEVELS]
    valid = np.concatenate([grid_valid(h, w, s, OWN_W, OWN_H) for h, w, s in LEVELS])

    # ---- ATSS (GFL/ATSS anchors: one square of side 8*stride at (x*stride, y*stride)) ------
    anchors = np.concatenate([grid_anchors(h, w, s, 8 * s) for h, w, s in LEVELS])
    for seed in range(1000):
        rng = np.random.default_rng(seed)
        gts = rand_gts(rng, 6, 100, 76, 8, 90)
        inds, mo, m1 = atss(anchors, levels, gts)
        vinds, vmo, m2 = with_valid(valid, levels, lambda i, c: atss(anchors[i], c, gts))
        if min(m1, m2) > 1e-4 and (inds >= 0).sum() >= 8 and (vinds >= 0).sum() >= 4:
            break
    print(f"// ATSS (topk 9): seed {seed}; min |IoU - thr| and top-k distance gap = {min(m1, m2):.3g}")
    emit_boxes("ATSS_GTS", gts)
    emit("ATSS_GT_INDS", "i32", inds)
    emit("ATSS_MAX_OVERLAPS", "f32", mo)
    emit("ATSS_VALID_GT_INDS", "i32", vinds)
    emit("ATSS_VALID_MAX_OVERLAPS", "f32", vmo)
    print()

    # ---- MaxIoU (RetinaNet anchors, 9 per location, ratio-major) -----------
    anchors = retina_anchors()
    valid9 = np.repeat(valid, 9)
    for seed in range(1000, 2000):
        rng = np.random.default_rng(seed)
        gts = rand_gts(rng, 5, 100, 76, 8, 120)
        inds, mo, m1 = max_iou(anchors, gts)
        vinds, vmo, m2 = with_valid(valid9, levels, lambda i, c: max_iou(anchors[i], gts))
        if min(m1, m2) > 1e-4 and (inds == IGN).sum() > 0 and (vinds >= 0).sum() > 0:
            break
    print(f"// MaxIoU (0.5/0.4/0/low-quality all): seed {seed}; min |max IoU - thr| = {min(m1, m2):.3g}")
    for (_, _, s) in LEVELS:
        emit_boxes(f"RETINA_HALF_SIZES_S{s}", retina_half_sizes(s), 2)
    emit_boxes("MAXIOU_GTS", gts)
    emit("MAXIOU_GT_INDS", "i32", inds)
    emit("MAXIOU_MAX_OVERLAPS", "f32", mo)
    emit("MAXIOU_VALID_GT_INDS", "i32", vinds)
    # Per-anchor max over GTs does not depend on other anchors: the valid run's overlaps are
    # MAXIOU_MAX_OVERLAPS with invalid anchors zeroed.
    assert (vmo == np.where(valid9, mo, 0)).all()
    print()

    # ---- FCOS ---------------------------------------------------------------
    # Points at ((x + 0.5) * stride, (y + 0.5) * stride); ranges shrunk to (-1,16), (16,32),
    # (32,1e8) so that every level gets positives on this small image.
    strides = [s for _, _, s in LEVELS]
    ranges = [(-1.0, 16.0), (16.0, 32.0), (32.0, 1e8)]
    points = np.concatenate([grid_points(h, w, s) for h, w, s in LEVELS])
    for cs, norm, name in ((False, False, "FCOS_PLAIN"), (True, True, "FCOS_CS_NORM")):
        for seed in range(2000, 3000):
            rng = np.random.default_rng(seed)
            gts = rand_gts(rng, 6, 100, 76, 6, 70)
            labels = rng.integers(0, 80, size=len(gts))
            lab, tgt, margin = fcos(points, levels, strides, ranges, gts, labels, 80, cs, 1.5, norm)
            if margin > 1e-3 and (lab < 80).sum() >= 10:
                break
        print(f"// {name}: seed {seed}, center_sampling={cs}, norm_on_bbox={norm}; "
              f"min |max(l,t,r,b) - range bound| = {margin:.3g}")
        emit_boxes(f"{name}_GTS", gts)
        emit(f"{name}_GT_LABELS", "usize", labels)
        emit(f"{name}_LABELS", "usize", lab)
        emit_boxes(f"{name}_BBOX_TARGETS", tgt)
        print()


if __name__ == "__main__":
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main()
    print(buf.getvalue().rstrip("\n"))
