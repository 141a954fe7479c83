#!/usr/bin/env python3
"""Independent float64 reference for the GT losses of four MMDetection 3.x dense heads.

Written from the CrossKD spec (shared/spec/crosskd.md §5.3-5.7) and from the
behaviour of MMDetection 3.x ``loss_by_feat`` (GFLHead, RetinaHead/AnchorHead,
ATSSHead, FCOSHead).  It does not import mmdet/mmcv; everything (priors, valid
flags, assigners, coders, losses, normalisers) is re-derived here in plain
PyTorch float64 so that it can cross-check the Rust assembly in
``trainer/src/model/head_loss/``.

Usage (from the repository root)::

    pip install torch numpy            # CPU wheels from PyPI are enough
    python3 trainer/tests/head_loss_reference/reference.py

It writes one JSON fixture per (detector, case) into
``trainer/tests/fixtures/head_loss/``; ``trainer/tests/head_loss_reference.rs``
replays them through the Rust loss functions.

Fixture format (all JSON, compact)::

    {
      "detector": "gfl" | "retinanet" | "atss" | "fcos",
      "case": str, "description": str,
      "num_classes": 3, "reg_max": 8 (GFL only), "strides": [8, 16, 32, 64, 128],
      "batch_shape": [H, W],                        # padded batch tensor size
      "images": [{"img_shape": [h, w], "pad_shape": [h32, w32],
                  "gt_bboxes": [[x1, y1, x2, y2], ...], "gt_labels": [...]}, ...],
      "outputs": [{"cls_score": T, "bbox_pred": T, "centerness": T (ATSS/FCOS)}, ...]  # per level
      "expected": {"loss_cls": float, "loss_bbox": float, "loss_dfl" | "loss_centerness": float},
      "info": {...}                                 # diagnostics only (num_pos, normalisers)
    }

where a tensor T is ``{"shape": [N, C, H, W], "scale": s, "q": [int, ...]}``: the
NCHW row-major values are ``q[i] * s`` (s = 1/8, so every value is exact in both
f32 and f64 and the Rust side sees exactly the numbers used here).

Discrete decisions (ATSS top-k by distance, IoU >= mean+std, centre-inside
> 0.01, max-IoU thresholds 0.4/0.5, low-quality max-IoU matches, FCOS inside /
regress-range / min-area) are checked for near-ties: a GT configuration whose
decisions are within a small margin of a threshold is rejected and redrawn
(deterministically), so f32 (Rust) and f64 (here) cannot disagree on them.
"""

import json
import math
import os
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.normpath(os.path.join(HERE, "..", "fixtures", "head_loss"))

STRIDES = [8, 16, 32, 64, 128]
NUM_CLASSES = 3
REG_MAX = 8
QSCALE = 8  # stored values are ints / QSCALE
INF = 1e8

FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0
QFL_BETA = 2.0
# mmdet.models.losses.utils.weight_reduce_loss divides by (avg_factor + eps).
AVG_EPS = float(np.finfo(np.float32).eps)

# Margins used to reject near-ties in discrete decisions.
IOU_MARGIN = 2e-5
DIST_MARGIN = 1e-3


class NearTie(Exception):
    """A discrete decision is too close to call in f32; redraw the GT boxes."""


def check_margin(values, threshold, margin, what):
    v = torch.as_tensor(values)
    if v.numel() and (v - threshold).abs().min().item() < margin:
        raise NearTie(what)


# ----------------------------------------------------------------------------
# Priors and valid flags (AnchorGenerator / MlvlPointGenerator)
# ----------------------------------------------------------------------------


def featmap_sizes(h, w):
    """P3..P7 sizes for a padded batch of (h, w): ceil(h/8), then halving with ceil."""
    sizes = [(math.ceil(h / 8), math.ceil(w / 8))]
    for _ in STRIDES[1:]:
        ph, pw = sizes[-1]
        sizes.append((math.ceil(ph / 2), math.ceil(pw / 2)))
    return sizes


def base_anchors(base_size, octave_base_scale, scales_per_octave, ratios):
    """AnchorGenerator.gen_single_level_base_anchors, center_offset 0, scale_major."""
    scales = torch.tensor(
        [octave_base_scale * 2 ** (i / scales_per_octave) for i in range(scales_per_octave)]
    )
    ratios = torch.tensor(ratios)
    w = h = float(base_size)
    x_c = y_c = 0.0  # center_offset 0: the base anchor is centred on the cell's top-left corner
    h_ratios = torch.sqrt(ratios)
    w_ratios = 1.0 / h_ratios
    ws = (w * w_ratios[:, None] * scales[None, :]).reshape(-1)  # ratio-major, then scale
    hs = (h * h_ratios[:, None] * scales[None, :]).reshape(-1)
    return torch.stack([x_c - 0.5 * ws, y_c - 0.5 * hs, x_c + 0.5 * ws, y_c + 0.5 * hs], dim=-1)


def grid_anchors(base, stride, fh, fw):
    """Anchors of one level in (y, x, a) row-major order."""
    sx = torch.arange(fw, dtype=torch.float64) * stride
    sy = torch.arange(fh, dtype=torch.float64) * stride
    yy, xx = torch.meshgrid(sy, sx, indexing="ij")
    shifts = torch.stack([xx, yy, xx, yy], dim=-1).reshape(-1, 4)
    return (shifts[:, None, :] + base[None, :, :]).reshape(-1, 4)


def level_valid(fh, fw, stride, pad_h, pad_w, num_base):
    """AnchorGenerator.single_level_valid_flags with the image's own pad shape."""
    vh = min(int(math.ceil(pad_h / stride)), fh)
    vw = min(int(math.ceil(pad_w / stride)), fw)
    m = torch.zeros(fh, fw, dtype=torch.bool)
    m[:vh, :vw] = True
    return m.reshape(-1)[:, None].expand(-1, num_base).reshape(-1)


def grid_points(stride, fh, fw, offset=0.5):
    """MlvlPointGenerator: ((x + 0.5) * stride, (y + 0.5) * stride), (y, x) order."""
    sx = (torch.arange(fw, dtype=torch.float64) + offset) * stride
    sy = (torch.arange(fh, dtype=torch.float64) + offset) * stride
    yy, xx = torch.meshgrid(sy, sx, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)


# ----------------------------------------------------------------------------
# Box utilities
# ----------------------------------------------------------------------------


def area(b):
    return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])


def iou_matrix(a, b, eps=1e-6):
    """bbox_overlaps(a, b, mode='iou'): [len(a), len(b)]."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    overlap = wh[..., 0] * wh[..., 1]
    union = area(a)[:, None] + area(b)[None, :] - overlap
    return overlap / union.clamp(min=eps)


def aligned_overlaps(a, b, mode="iou", eps=1e-6):
    """bbox_overlaps(a, b, mode, is_aligned=True)."""
    lt = torch.maximum(a[:, :2], b[:, :2])
    rb = torch.minimum(a[:, 2:], b[:, 2:])
    wh = (rb - lt).clamp(min=0)
    overlap = wh[:, 0] * wh[:, 1]
    union = (area(a) + area(b) - overlap).clamp(min=eps)
    ious = overlap / union
    if mode == "iou":
        return ious
    e_lt = torch.minimum(a[:, :2], b[:, :2])
    e_rb = torch.maximum(a[:, 2:], b[:, 2:])
    e_wh = (e_rb - e_lt).clamp(min=0)
    enclose = (e_wh[:, 0] * e_wh[:, 1]).clamp(min=eps)
    return ious - (enclose - union) / enclose


def centers(b):
    return torch.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], dim=-1)


def distance2bbox(points, d):
    return torch.stack(
        [points[:, 0] - d[:, 0], points[:, 1] - d[:, 1], points[:, 0] + d[:, 2], points[:, 1] + d[:, 3]],
        dim=-1,
    )


def bbox2distance(points, b, max_dis, eps=0.1):
    d = torch.stack(
        [points[:, 0] - b[:, 0], points[:, 1] - b[:, 1], b[:, 2] - points[:, 0], b[:, 3] - points[:, 1]],
        dim=-1,
    )
    return d.clamp(min=0, max=max_dis - eps)


def delta_encode(anchors, gts, stds=(1.0, 1.0, 1.0, 1.0)):
    """DeltaXYWHBBoxCoder.encode (means 0)."""
    px, py = (anchors[:, 0] + anchors[:, 2]) * 0.5, (anchors[:, 1] + anchors[:, 3]) * 0.5
    pw, ph = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    gx, gy = (gts[:, 0] + gts[:, 2]) * 0.5, (gts[:, 1] + gts[:, 3]) * 0.5
    gw, gh = gts[:, 2] - gts[:, 0], gts[:, 3] - gts[:, 1]
    d = torch.stack([(gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)], dim=-1)
    return d / torch.tensor(stds)


def delta_decode(anchors, deltas, stds, wh_ratio_clip=16 / 1000):
    """DeltaXYWHBBoxCoder.decode (means 0, no max_shape, add_ctr_clamp False)."""
    d = deltas * torch.tensor(stds)
    pxy = (anchors[:, :2] + anchors[:, 2:]) * 0.5
    pwh = anchors[:, 2:] - anchors[:, :2]
    max_ratio = abs(math.log(wh_ratio_clip))
    dwh = d[:, 2:].clamp(min=-max_ratio, max=max_ratio)
    gxy = pxy + pwh * d[:, :2]
    gwh = pwh * dwh.exp()
    return torch.cat([gxy - gwh * 0.5, gxy + gwh * 0.5], dim=-1)


# ----------------------------------------------------------------------------
# Assigners
# ----------------------------------------------------------------------------


def atss_assign(anchors, level_counts, gts, topk=9):
    """ATSSAssigner on the valid anchors only. Returns gt index + 1 per anchor (0 = negative)."""
    n, g = anchors.shape[0], gts.shape[0]
    assigned = torch.zeros(n, dtype=torch.long)
    if g == 0 or n == 0:
        return assigned
    ious = iou_matrix(anchors, gts)  # [n, g]
    ac = centers(anchors)
    gc = centers(gts)
    dist = ((ac[:, None, :] - gc[None, :, :]) ** 2).sum(-1).sqrt()  # [n, g]
    cand = []
    start = 0
    for cnt in level_counts:
        k = min(topk, cnt)
        if k == 0:
            continue
        d = dist[start : start + cnt]
        sd, order = torch.sort(d, dim=0, stable=True)
        if cnt > k:  # the k-th and (k+1)-th closest must be separable
            if (sd[k] - sd[k - 1]).min().item() < DIST_MARGIN:
                raise NearTie("ATSS top-k distance tie")
        cand.append(order[:k] + start)
        start += cnt
    cand = torch.cat(cand, dim=0)  # [K, g]
    cand_iou = torch.gather(ious, 0, cand)
    thr = cand_iou.mean(0) + cand_iou.std(0)  # unbiased std
    check_margin(cand_iou - thr[None, :], 0.0, IOU_MARGIN, "ATSS IoU threshold")
    is_pos = cand_iou >= thr[None, :]
    cx, cy = ac[:, 0][cand], ac[:, 1][cand]
    l = cx - gts[None, :, 0]
    t = cy - gts[None, :, 1]
    r = gts[None, :, 2] - cx
    b = gts[None, :, 3] - cy
    inside = torch.stack([l, t, r, b], dim=-1).min(-1).values
    check_margin(inside, 0.01, DIST_MARGIN, "ATSS centre inside")
    is_pos &= inside > 0.01
    best = torch.full((n, g), -INF)
    for j in range(g):
        idx = cand[is_pos[:, j], j]
        best[idx, j] = ious[idx, j]
    top = torch.sort(best, dim=1, descending=True).values
    if g > 1:
        both = (top[:, 0] > -INF) & (top[:, 1] > -INF)
        if both.any() and (top[both, 0] - top[both, 1]).min().item() < IOU_MARGIN:
            raise NearTie("ATSS multi-GT IoU tie")
    mx, arg = best.max(dim=1)
    pos = mx > -INF
    assigned[pos] = arg[pos] + 1
    return assigned


def max_iou_assign(anchors, gts, pos_thr=0.5, neg_thr=0.4, min_pos_iou=0.0):
    """MaxIoUAssigner (match_low_quality, gt_max_assign_all). -1 ignore, 0 neg, k+1 gt k."""
    n, g = anchors.shape[0], gts.shape[0]
    assigned = torch.full((n,), -1, dtype=torch.long)
    if g == 0:
        assigned[:] = 0
        return assigned
    ov = iou_matrix(gts, anchors)  # [g, n]
    max_ov, argmax = ov.max(dim=0)
    gt_max = ov.max(dim=1).values
    check_margin(max_ov, neg_thr, IOU_MARGIN, "MaxIoU neg threshold")
    check_margin(max_ov, pos_thr, IOU_MARGIN, "MaxIoU pos threshold")
    if g > 1:
        top = torch.sort(ov, dim=0, descending=True).values
        rel = max_ov >= pos_thr
        if rel.any() and (top[0, rel] - top[1, rel]).min().item() < IOU_MARGIN:
            raise NearTie("MaxIoU per-anchor argmax tie")
    for i in range(g):
        # Low-quality matching assigns every anchor whose IoU *equals* the GT's max.
        # A near-tie is only harmless if (a) every near-max anchor is a positive of
        # this GT anyway, or (b) the tie is exact and f32-reproducible: identical
        # anchor sizes with coordinates exactly representable in f32 (then any f32
        # IoU formula sees identical exact operands and yields identical values).
        if gt_max[i].item() < 0.05:
            raise NearTie("MaxIoU GT without overlapping anchor")
        near = (ov[i] >= gt_max[i] - IOU_MARGIN).nonzero().squeeze(1)
        if len(near) > 1:
            anyway = bool(((max_ov[near] >= pos_thr + IOU_MARGIN) & (argmax[near] == i)).all())
            a = anchors[near]
            wh = a[:, 2:] - a[:, :2]
            exact = (
                bool((ov[i][near] == gt_max[i]).all())
                and bool((a.float().double() == a).all())
                and bool((wh == wh[0]).all())
            )
            if not (anyway or exact):
                raise NearTie("MaxIoU low-quality max not unique")
    assigned[(max_ov >= 0) & (max_ov < neg_thr)] = 0
    pos = max_ov >= pos_thr
    assigned[pos] = argmax[pos] + 1
    for i in range(g):
        if gt_max[i] >= min_pos_iou:
            assigned[ov[i] == gt_max[i]] = i + 1
    return assigned


def fcos_assign(points, ranges, gts, labels):
    """FCOSHead._get_targets_single (no centre sampling). Returns (labels, ltrb targets)."""
    n, g = points.shape[0], gts.shape[0]
    if g == 0:
        return torch.full((n,), NUM_CLASSES, dtype=torch.long), torch.zeros(n, 4)
    areas = area(gts)[None, :].expand(n, g).clone()
    xs, ys = points[:, 0:1], points[:, 1:2]
    ltrb = torch.stack([xs - gts[None, :, 0], ys - gts[None, :, 1], gts[None, :, 2] - xs, gts[None, :, 3] - ys], -1)
    mn = ltrb.min(-1).values
    check_margin(mn, 0.0, DIST_MARGIN, "FCOS inside GT")
    inside = mn > 0
    mx = ltrb.max(-1).values
    lo, hi = ranges[:, 0:1], ranges[:, 1:2]
    check_margin((mx - lo)[inside], 0.0, DIST_MARGIN, "FCOS regress range lo")
    check_margin((mx - hi)[inside], 0.0, DIST_MARGIN, "FCOS regress range hi")
    in_range = (mx >= lo) & (mx <= hi)
    areas[~inside] = INF
    areas[~in_range] = INF
    if g > 1:
        s = torch.sort(areas, dim=1).values
        both = s[:, 1] < INF
        if both.any() and (s[both, 1] - s[both, 0]).min().item() < DIST_MARGIN:
            raise NearTie("FCOS min-area tie")
    min_area, idx = areas.min(dim=1)
    lab = labels[idx].clone()
    lab[min_area == INF] = NUM_CLASSES
    tg = ltrb[torch.arange(n), idx]
    return lab, tg


# ----------------------------------------------------------------------------
# Losses (float64, MMDet semantics, reduction 'mean' with avg_factor => sum / (avg + eps))
# ----------------------------------------------------------------------------


def reduce(loss, avg_factor):
    return loss.sum() / (avg_factor + AVG_EPS)


def bce_logits(x, t):
    return torch.nn.functional.binary_cross_entropy_with_logits(x, t, reduction="none")


def one_hot(labels, c):
    return torch.nn.functional.one_hot(labels, num_classes=c + 1)[:, :c].to(torch.float64)


def focal_loss(logits, labels, weight, avg):
    t = one_hot(labels, logits.shape[1])
    p = logits.sigmoid()
    pt = (1 - p) * t + p * (1 - t)
    fw = (FOCAL_ALPHA * t + (1 - FOCAL_ALPHA) * (1 - t)) * pt.pow(FOCAL_GAMMA)
    loss = bce_logits(logits, t) * fw
    if weight is not None:
        loss = loss * weight[:, None]
    return reduce(loss, avg)


def quality_focal_loss(logits, labels, score, weight, avg):
    p = logits.sigmoid()
    loss = bce_logits(logits, torch.zeros_like(logits)) * p.pow(QFL_BETA)
    pos = ((labels >= 0) & (labels < logits.shape[1])).nonzero().squeeze(1)
    pl = labels[pos]
    sf = score[pos] - p[pos, pl]
    loss[pos, pl] = bce_logits(logits[pos, pl], score[pos]) * sf.abs().pow(QFL_BETA)
    loss = loss.sum(dim=1) * weight
    return reduce(loss, avg)


def dfl_loss(pred, target, weight, avg):
    left = target.long()
    right = left + 1
    wl = right.to(torch.float64) - target
    wr = target - left.to(torch.float64)
    ce = torch.nn.functional.cross_entropy
    loss = ce(pred, left, reduction="none") * wl + ce(pred, right, reduction="none") * wr
    return reduce(loss * weight, avg)


def giou_loss(pred, target, weight, avg):
    loss = 1 - aligned_overlaps(pred, target, "giou", eps=1e-6)
    return reduce(loss * weight, avg)


def log_iou_loss(pred, target, weight, avg):
    ious = aligned_overlaps(pred, target, "iou", eps=1e-6).clamp(min=1e-6)
    return reduce(-ious.log() * weight, avg)


def bce_loss(logits, target, avg):
    return reduce(bce_logits(logits, target), avg)


def l1_loss(pred, target, avg):
    return reduce((pred - target).abs(), avg)


def centerness(ltrb):
    lr = ltrb[:, [0, 2]]
    tb = ltrb[:, [1, 3]]
    return torch.sqrt(
        (lr.min(-1).values / lr.max(-1).values) * (tb.min(-1).values / tb.max(-1).values)
    )


# ----------------------------------------------------------------------------
# Flattening of head outputs: [N, A*C, H, W] per level -> per image [sum(H*W*A), C]
# ----------------------------------------------------------------------------


def flatten(tensors, c):
    """Per image, all levels, (y, x, a) order: returns [N, rows, c]."""
    per_level = []
    for t in tensors:
        n, ch, h, w = t.shape
        per_level.append(t.permute(0, 2, 3, 1).reshape(n, h * w * ch // c, c))
    return torch.cat(per_level, dim=1)


# ----------------------------------------------------------------------------
# Anchor-based targets (shared by GFL, ATSS, RetinaNet)
# ----------------------------------------------------------------------------


def anchor_targets(kind, sizes, images):
    """Per image: anchors (all), labels, label_weights, positive indices and GT boxes."""
    if kind == "retinanet":
        bases = [base_anchors(s, 4, 3, [0.5, 1.0, 2.0]) for s in STRIDES]
    else:
        bases = [base_anchors(s, 8, 1, [1.0]) for s in STRIDES]
    a = bases[0].shape[0]
    lvl_anchors = [grid_anchors(bases[l], STRIDES[l], fh, fw) for l, (fh, fw) in enumerate(sizes)]
    anchors = torch.cat(lvl_anchors, dim=0)
    strides = torch.cat([torch.full((x.shape[0],), float(STRIDES[l])) for l, x in enumerate(lvl_anchors)])
    out = []
    for im in images:
        ph, pw = im["pad_shape"]
        valid_l = [level_valid(fh, fw, STRIDES[l], ph, pw, a) for l, (fh, fw) in enumerate(sizes)]
        valid = torch.cat(valid_l)
        va = anchors[valid]
        gts = torch.tensor(im["gt_bboxes"], dtype=torch.float64).reshape(-1, 4)
        labels = torch.tensor(im["gt_labels"], dtype=torch.long)
        if kind == "retinanet":
            asg = max_iou_assign(va, gts)
        else:
            asg = atss_assign(va, [int(v.sum()) for v in valid_l], gts)
        n = anchors.shape[0]
        full = torch.full((n,), -2, dtype=torch.long)  # invalid anchors: -2 (label weight 0)
        full[valid] = asg
        lab = torch.full((n,), NUM_CLASSES, dtype=torch.long)
        lw = torch.zeros(n)
        pos = (full > 0).nonzero().squeeze(1)
        neg = full == 0
        lab[pos] = labels[full[pos] - 1]
        lw[pos] = 1.0
        lw[neg] = 1.0
        out.append(
            dict(labels=lab, label_weights=lw, pos=pos, pos_gt=gts[full[pos] - 1] if len(pos) else torch.zeros(0, 4))
        )
    return anchors, strides, out


# ----------------------------------------------------------------------------
# The four heads' loss_by_feat
# ----------------------------------------------------------------------------


def gfl_loss(outputs, sizes, images):
    anchors, strides, tg = anchor_targets("gfl", sizes, images)
    cls = flatten([o["cls_score"] for o in outputs], NUM_CLASSES)
    reg = flatten([o["bbox_pred"] for o in outputs], 4 * (REG_MAX + 1))
    # SamplingResult.avg_factor = max(num_pos, 1) per image, summed (GFLHead.get_targets)
    num_pos = [len(t["pos"]) for t in tg]
    avg_cls = float(sum(max(p, 1) for p in num_pos))
    loss_cls = 0.0
    loss_bbox = 0.0
    loss_dfl = 0.0
    weight_sum = 0.0
    for i, t in enumerate(tg):
        score = torch.zeros(anchors.shape[0])
        pos = t["pos"]
        if len(pos):
            s = strides[pos][:, None]
            w = cls[i].sigmoid().max(dim=1).values[pos]
            ctr = centers(anchors[pos]) / s
            prob = torch.softmax(reg[i][pos].reshape(-1, REG_MAX + 1), dim=1)
            corners = (prob @ torch.arange(REG_MAX + 1, dtype=torch.float64)).reshape(-1, 4)
            dec = distance2bbox(ctr, corners)
            gt = t["pos_gt"] / s
            score[pos] = aligned_overlaps(dec, gt, "iou")
            tgt = bbox2distance(ctr, gt, REG_MAX).reshape(-1)
            # per level: GIoU avg_factor 1.0, DFL avg_factor 4.0 (each level adds eps once)
            for l in range(len(STRIDES)):
                m = strides[pos] == STRIDES[l]
                if m.any():
                    loss_bbox = loss_bbox + giou_loss(dec[m], gt[m], w[m], 1.0)
                    m4 = m[:, None].expand(-1, 4).reshape(-1)
                    loss_dfl = loss_dfl + dfl_loss(
                        reg[i][pos].reshape(-1, REG_MAX + 1)[m4], tgt[m4], w[m][:, None].expand(-1, 4).reshape(-1), 4.0
                    )
            weight_sum += w.sum().item()
        loss_cls = loss_cls + quality_focal_loss(cls[i], t["labels"], score, t["label_weights"], avg_cls)
    avg_box = max(weight_sum, 1.0)
    loss_bbox = loss_bbox / avg_box
    loss_dfl = loss_dfl / avg_box
    expected = dict(
        loss_cls=1.0 * float(loss_cls), loss_bbox=2.0 * float(loss_bbox), loss_dfl=0.25 * float(loss_dfl)
    )
    info = dict(num_pos_per_image=num_pos, cls_avg_factor=avg_cls, bbox_avg_factor=avg_box)
    return expected, info, tg


def retinanet_loss(outputs, sizes, images):
    anchors, strides, tg = anchor_targets("retinanet", sizes, images)
    cls = flatten([o["cls_score"] for o in outputs], NUM_CLASSES)
    reg = flatten([o["bbox_pred"] for o in outputs], 4)
    num_pos = [len(t["pos"]) for t in tg]
    avg = float(sum(max(p, 1) for p in num_pos))
    loss_cls = 0.0
    loss_bbox = 0.0
    for i, t in enumerate(tg):
        loss_cls = loss_cls + focal_loss(cls[i], t["labels"], t["label_weights"], avg)
        pos = t["pos"]
        if len(pos):
            deltas = delta_encode(anchors[pos], t["pos_gt"])
            loss_bbox = loss_bbox + l1_loss(reg[i][pos], deltas, avg)
    expected = dict(loss_cls=float(loss_cls), loss_bbox=float(loss_bbox))
    info = dict(
        num_pos_per_image=num_pos,
        avg_factor=avg,
        num_ignored_per_image=[int(((t["label_weights"] == 0)).sum()) for t in tg],
    )
    return expected, info, tg


ATSS_STDS = (0.1, 0.1, 0.2, 0.2)


def atss_loss(outputs, sizes, images):
    anchors, strides, tg = anchor_targets("atss", sizes, images)
    cls = flatten([o["cls_score"] for o in outputs], NUM_CLASSES)
    reg = flatten([o["bbox_pred"] for o in outputs], 4)
    ctr = flatten([o["centerness"] for o in outputs], 1)[..., 0]
    num_pos = [len(t["pos"]) for t in tg]
    avg = float(sum(max(p, 1) for p in num_pos))
    loss_cls = 0.0
    loss_bbox = 0.0
    loss_ctr = 0.0
    ctr_sum = 0.0
    for i, t in enumerate(tg):
        loss_cls = loss_cls + focal_loss(cls[i], t["labels"], t["label_weights"], avg)
        pos = t["pos"]
        if len(pos):
            pa = anchors[pos]
            gt = t["pos_gt"]
            ac = centers(pa)
            ltrb = torch.stack([ac[:, 0] - gt[:, 0], ac[:, 1] - gt[:, 1], gt[:, 2] - ac[:, 0], gt[:, 3] - ac[:, 1]], -1)
            ct = centerness(ltrb)
            dec = delta_decode(pa, reg[i][pos], ATSS_STDS)
            for l in range(len(STRIDES)):
                m = strides[pos] == STRIDES[l]
                if m.any():
                    loss_bbox = loss_bbox + giou_loss(dec[m], gt[m], ct[m], 1.0)
            loss_ctr = loss_ctr + bce_loss(ctr[i][pos], ct, avg)
            ctr_sum += ct.sum().item()
    avg_box = max(ctr_sum, 1.0)
    expected = dict(
        loss_cls=float(loss_cls), loss_bbox=2.0 * float(loss_bbox) / avg_box, loss_centerness=float(loss_ctr)
    )
    info = dict(num_pos_per_image=num_pos, avg_factor=avg, bbox_avg_factor=avg_box)
    return expected, info, tg


FCOS_RANGES = [(-1, 64), (64, 128), (128, 256), (256, 512), (512, INF)]


def fcos_points(sizes):
    pts, rng = [], []
    for l, (fh, fw) in enumerate(sizes):
        p = grid_points(STRIDES[l], fh, fw)
        pts.append(p)
        rng.append(torch.tensor(FCOS_RANGES[l], dtype=torch.float64)[None].expand(p.shape[0], 2))
    return torch.cat(pts), torch.cat(rng)


def fcos_targets(sizes, images):
    points, ranges = fcos_points(sizes)
    out = []
    for im in images:
        gts = torch.tensor(im["gt_bboxes"], dtype=torch.float64).reshape(-1, 4)
        labels = torch.tensor(im["gt_labels"], dtype=torch.long)
        lab, ltrb = fcos_assign(points, ranges, gts, labels)
        out.append(dict(labels=lab, ltrb=ltrb, pos=(lab < NUM_CLASSES).nonzero().squeeze(1)))
    return points, out


def fcos_loss(outputs, sizes, images):
    points, tg = fcos_targets(sizes, images)
    cls = flatten([o["cls_score"] for o in outputs], NUM_CLASSES)
    reg = flatten([o["bbox_pred"] for o in outputs], 4)
    ctr = flatten([o["centerness"] for o in outputs], 1)[..., 0]
    n_img = len(images)
    all_cls = cls.reshape(-1, NUM_CLASSES)
    all_lab = torch.cat([t["labels"] for t in tg])
    num_pos_total = sum(len(t["pos"]) for t in tg)
    num_pos = max(float(num_pos_total), 1.0)
    loss_cls = focal_loss(all_cls, all_lab, None, num_pos)
    if num_pos_total > 0:
        pp = torch.cat([points[t["pos"]] for t in tg])
        pr = torch.cat([reg[i][t["pos"]] for i, t in enumerate(tg)])
        pc = torch.cat([ctr[i][t["pos"]] for i, t in enumerate(tg)])
        pt = torch.cat([t["ltrb"][t["pos"]] for t in tg])
        ct = centerness(pt)
        denorm = max(ct.sum().item(), 1e-6)
        loss_bbox = log_iou_loss(distance2bbox(pp, pr), distance2bbox(pp, pt), ct, denorm)
        loss_ctr = bce_loss(pc, ct, num_pos)
    else:
        denorm = None
        loss_bbox = torch.tensor(0.0)
        loss_ctr = torch.tensor(0.0)
    assert n_img == len(tg)
    expected = dict(loss_cls=float(loss_cls), loss_bbox=float(loss_bbox), loss_centerness=float(loss_ctr))
    info = dict(
        num_pos_per_image=[len(t["pos"]) for t in tg], avg_factor=num_pos, centerness_denorm=denorm
    )
    return expected, info, tg


# ----------------------------------------------------------------------------
# Case generation
# ----------------------------------------------------------------------------


def pad32(x):
    return int(math.ceil(x / 32) * 32)


def draw_box(rng, img_h, img_w, wmin, wmax, hmin, hmax, inside=None):
    """A box with coordinates on a 1/16 px grid, inside the image (and centred inside `inside`)."""
    for _ in range(1000):
        w = rng.uniform(wmin, wmax)
        h = rng.uniform(hmin, hmax)
        if inside is None:
            cx = rng.uniform(w / 2, img_w - w / 2)
            cy = rng.uniform(h / 2, img_h - h / 2)
        else:
            cx = rng.uniform(inside[0], inside[2])
            cy = rng.uniform(inside[1], inside[3])
        b = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
        b = [round(v * 16) / 16 for v in b]
        if b[0] >= 0 and b[1] >= 0 and b[2] <= img_w and b[3] <= img_h and b[2] - b[0] > 1 and b[3] - b[1] > 1:
            return b
    raise RuntimeError("cannot draw box")


def make_images(rng, spec):
    """spec: list of (img_h, img_w, [box specs]); a box spec is (wmin, wmax, hmin, hmax, nested)
    (random size and position, centred inside box `nested` if not None) or {"fixed": [x1, y1, x2, y2]}."""
    images = []
    for img_h, img_w, boxes in spec:
        gts, labels = [], []
        for box in boxes:
            if isinstance(box, dict):  # a fixed box
                gts.append(list(box["fixed"]))
            else:
                wmin, wmax, hmin, hmax, nested = box
                inside = gts[nested] if nested is not None else None
                gts.append(draw_box(rng, img_h, img_w, wmin, wmax, hmin, hmax, inside))
            labels.append(len(labels) % NUM_CLASSES if not images else (len(labels) + 2) % NUM_CLASSES)
        images.append(
            dict(img_shape=[img_h, img_w], pad_shape=[pad32(img_h), pad32(img_w)], gt_bboxes=gts, gt_labels=labels)
        )
    return images


def quantized(rng, shape, sampler):
    q = np.rint(sampler(rng, shape) * QSCALE).astype(np.int64)
    return q


def tensor_json(q):
    return dict(shape=list(q.shape), scale=1.0 / QSCALE, q=q.reshape(-1).tolist())


def to_torch(q):
    return torch.tensor(q, dtype=torch.float64) / QSCALE


CASES = {
    # canvas (H, W), images: (h, w, boxes); box = (wmin, wmax, hmin, hmax, index of box it is centred in)
    "two_images": dict(
        description="2 images (96x128 and 52x84 padded to 64x96) in a 96x128 batch; "
        "small/medium/large GTs, one nested in another",
        canvas=(96, 128),
        images=[
            (96, 128, [(60, 110, 50, 85, None), (10, 22, 8, 20, 0), (26, 46, 24, 44, None)]),
            (52, 84, [(30, 55, 22, 45, None), (6, 16, 10, 20, None)]),
        ],
    ),
    "zero_gt_image": dict(
        description="64x96 batch: a 64x96 image with GTs and a 40x50 image (pad 64x64) without GTs",
        canvas=(64, 96),
        images=[
            (64, 96, [(30, 60, 24, 50, None), (12, 24, 10, 22, None)]),
            (40, 50, []),
        ],
    ),
    "no_gt": dict(
        description="32x64 batch, two images (32x64 and 20x30, pad 32x32) without any GT",
        canvas=(32, 64),
        images=[(32, 64, []), (20, 30, [])],
    ),
}

# RetinaNet has 9 anchors x (3 + 4) channels per location: use a smaller canvas
# for its first case to keep the fixtures small.
RETINA_OVERRIDES = {
    "two_images": dict(
        description="2 images (64x96 and 44x60 padded to 64x64) in a 64x96 batch; "
        "medium GTs (IoU >= 0.5 positives) and a 15.5 px GT that only low-quality matching "
        "makes positive (4 exactly tied 32x32 anchors at IoU 0.2346 all become positive)",
        canvas=(64, 96),
        images=[
            (64, 96, [(34, 56, 30, 52, None), (40, 60, 18, 28, None)]),
            # Not nestable in the 45x23 / 23x45 anchors (no anchor centre fits), so the
            # max IoU is the exact tie of the four 32x32 anchors centred at (8|16, 8|16).
            (44, 60, [{"fixed": [4.25, 4.25, 19.75, 19.75]}, (26, 40, 26, 40, None)]),
        ],
    ),
}


def normal(mean, std, lo=-16, hi=16):
    return lambda rng, shape: np.clip(rng.normal(mean, std, size=shape), lo, hi)


def make_outputs(rng, det, sizes, n):
    outs = []
    for fh, fw in sizes:
        o = {}
        if det == "gfl":
            o["cls_score"] = quantized(rng, (n, NUM_CLASSES, fh, fw), normal(-1.5, 1.5))
            o["bbox_pred"] = quantized(rng, (n, 4 * (REG_MAX + 1), fh, fw), normal(0.0, 2.0))
        elif det == "retinanet":
            o["cls_score"] = quantized(rng, (n, 9 * NUM_CLASSES, fh, fw), normal(-1.5, 1.5))
            o["bbox_pred"] = quantized(rng, (n, 9 * 4, fh, fw), normal(0.0, 0.5))
        elif det == "atss":
            o["cls_score"] = quantized(rng, (n, NUM_CLASSES, fh, fw), normal(-1.5, 1.5))
            o["bbox_pred"] = quantized(rng, (n, 4, fh, fw), normal(0.0, 1.0))
            o["centerness"] = quantized(rng, (n, 1, fh, fw), normal(0.0, 1.5))
        elif det == "fcos":
            o["cls_score"] = quantized(rng, (n, NUM_CLASSES, fh, fw), normal(-1.5, 1.5))
            # positive pixel distances exp(u), u in [0.5, 4.5]; at least 1/8 px after rounding
            o["bbox_pred"] = np.maximum(
                quantized(rng, (n, 4, fh, fw), lambda r, s: np.exp(r.uniform(0.5, 4.5, size=s))), 1
            )
            o["centerness"] = quantized(rng, (n, 1, fh, fw), normal(0.0, 1.5))
        outs.append(o)
    return outs


LOSS_FNS = dict(gfl=gfl_loss, retinanet=retinanet_loss, atss=atss_loss, fcos=fcos_loss)


def targets_only(det, sizes, images):
    """Run just the assignment (raises NearTie on ambiguous decisions)."""
    if det == "fcos":
        return fcos_targets(sizes, images)[1]
    return anchor_targets("atss" if det == "gfl" else det, sizes, images)[2]


def build_case(det, case_name, seed):
    case = dict(CASES[case_name])
    if det == "retinanet" and case_name in RETINA_OVERRIDES:
        case = RETINA_OVERRIDES[case_name]
    canvas = case["canvas"]
    sizes = featmap_sizes(*canvas)
    for attempt in range(200):
        rng = np.random.default_rng([seed, attempt])
        images = make_images(rng, case["images"])
        for im in images:
            assert im["pad_shape"][0] <= canvas[0] and im["pad_shape"][1] <= canvas[1]
        try:
            tg = targets_only(det, sizes, images)
        except NearTie:
            continue
        # every GT of an image must have at least one positive, to exercise the box losses
        ok = True
        for t, im in zip(tg, images):
            if len(im["gt_bboxes"]) and len(t["pos"]) == 0:
                ok = False
        if ok:
            break
    else:
        raise RuntimeError(f"no tie-free GT draw for {det}/{case_name}")
    n = len(images)
    qouts = make_outputs(rng, det, sizes, n)
    if det == "atss":
        # Push a few positive dw/dh deltas beyond the decode clamp (|0.2 * d| > log(1000/16)).
        _, _, t_all = anchor_targets("atss", sizes, images)
        offsets = np.cumsum([0] + [fh * fw for fh, fw in sizes])
        for i, t in enumerate(t_all):
            for k, p in enumerate(t["pos"].tolist()[:3]):
                lvl = int(np.searchsorted(offsets, p, side="right") - 1)
                fh, fw = sizes[lvl]
                r = p - offsets[lvl]
                y, x = divmod(r, fw)
                qouts[lvl]["bbox_pred"][i, 2 + (k % 2), y, x] = (24 if k < 2 else -24) * QSCALE
    touts = [{k: to_torch(v) for k, v in o.items()} for o in qouts]
    expected, info, _ = LOSS_FNS[det](touts, sizes, images)
    info["attempt"] = attempt
    info["featmap_sizes"] = [list(s) for s in sizes]
    fx = dict(
        detector=det,
        case=case_name,
        description=case["description"],
        num_classes=NUM_CLASSES,
        strides=STRIDES,
        batch_shape=list(canvas),
        images=images,
        outputs=[{k: tensor_json(v) for k, v in o.items()} for o in qouts],
        expected=expected,
        info=info,
    )
    if det == "gfl":
        fx["reg_max"] = REG_MAX
    return fx


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    total = 0
    for d_i, det in enumerate(["gfl", "retinanet", "atss", "fcos"]):
        for c_i, case_name in enumerate(CASES):
            fx = build_case(det, case_name, seed=1000 + 10 * d_i + c_i)
            path = os.path.join(OUT_DIR, f"{det}_{case_name}.json")
            text = json.dumps(fx, separators=(",", ":"))
            with open(path, "w") as f:
                f.write(text + "\n")
            total += len(text) + 1
            print(
                f"{det:10s} {case_name:14s} {len(text) / 1024:6.1f} KiB  pos={fx['info']['num_pos_per_image']}  "
                + "  ".join(f"{k}={v:.6f}" for k, v in fx["expected"].items())
            )
    print(f"total {total / 1024:.1f} KiB in {OUT_DIR}", file=sys.stderr)


if __name__ == "__main__":
    main()
