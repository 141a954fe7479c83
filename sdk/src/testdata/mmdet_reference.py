"""Independent numpy re-statement of MMDetection 3.x dense-head inference
(`_predict_by_feat_single` + `_bbox_post_process`, mmcv `batched_nms` with the
per-class coordinate-offset trick), written tensor-style as MMDetection does it
(permute(1,2,0).reshape, nonzero, argsort), to cross-check the Rust indexing.
Writes mmdet_reference_expected.rs, the expected detections of the fixture test in
postprocess.rs: `python3 sdk/src/testdata/mmdet_reference.py` (numpy only)."""
import numpy as np

f32 = np.float32


class Lcg:
    def __init__(self, seed):
        self.s = seed

    def fill(self, n, lo, hi):
        out = np.empty(n, f32)
        lo, span = f32(lo), f32(hi) - f32(lo)
        for i in range(n):
            self.s = (self.s * 1664525 + 1013904223) & 0xFFFFFFFF
            out[i] = lo + span * (f32(self.s >> 8) / f32(1 << 24))
        return out


def base_anchors(stride, obs, spo, ratios):
    scales = np.array([2 ** (i / spo) for i in range(spo)], f32) * f32(obs)
    ratios = np.array(ratios, f32)
    hr = np.sqrt(ratios)
    wr = f32(1) / hr
    ws = (f32(stride) * wr[:, None] * scales[None, :]).reshape(-1)
    hs = (f32(stride) * hr[:, None] * scales[None, :]).reshape(-1)
    c = f32(0)
    return np.stack([c - f32(0.5) * ws, c - f32(0.5) * hs, c + f32(0.5) * ws, c + f32(0.5) * hs], -1)


def grid_anchors(base, stride, h, w):
    sx = np.arange(w).astype(f32) * f32(stride)
    sy = np.arange(h).astype(f32) * f32(stride)
    xx, yy = np.meshgrid(sx, sy)
    shifts = np.stack([xx.ravel(), yy.ravel(), xx.ravel(), yy.ravel()], -1)
    return (base[None, :, :] + shifts[:, None, :]).reshape(-1, 4)


def grid_points(stride, h, w):
    sx = (np.arange(w) + 0.5).astype(f32) * f32(stride)
    sy = (np.arange(h) + 0.5).astype(f32) * f32(stride)
    xx, yy = np.meshgrid(sx, sy)
    return np.stack([xx.ravel(), yy.ravel()], -1)


def sigmoid(x):
    return (f32(1) / (f32(1) + np.exp(-x))).astype(f32)


def filter_topk(scores, thr, k):
    mask = scores > thr
    vals = scores[mask]
    idx = np.argwhere(mask)  # row-major (prior, class)
    order = np.argsort(-vals, kind="stable")[: min(k, len(vals))]
    return vals[order], idx[order, 1], idx[order, 0]


def clip(b, shape):
    h, w = shape
    b[:, 0::2] = np.clip(b[:, 0::2], 0, w)
    b[:, 1::2] = np.clip(b[:, 1::2], 0, h)
    return b


def delta2bbox(rois, d, means, stds, shape):
    d = d * np.array(stds, f32) + np.array(means, f32)
    pxy = (rois[:, :2] + rois[:, 2:]) * f32(0.5)
    pwh = rois[:, 2:] - rois[:, :2]
    mr = f32(abs(np.log(16 / 1000)))
    dwh = np.clip(d[:, 2:], -mr, mr)
    gxy = pxy + pwh * d[:, :2]
    gwh = pwh * np.exp(dwh)
    return clip(np.concatenate([gxy - gwh * f32(0.5), gxy + gwh * f32(0.5)], 1), shape)


def dist2bbox(pts, d, shape):
    b = np.stack([pts[:, 0] - d[:, 0], pts[:, 1] - d[:, 1], pts[:, 0] + d[:, 2], pts[:, 1] + d[:, 3]], -1)
    return clip(b, shape)


def nms_single(boxes, scores, thr):
    order = np.argsort(-scores, kind="stable")
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep, dead = [], np.zeros(len(boxes), bool)
    for ii, i in enumerate(order):
        if dead[i]:
            continue
        keep.append(i)
        for j in order[ii + 1:]:
            if dead[j]:
                continue
            iw = max(f32(0), min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]))
            ih = max(f32(0), min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]))
            inter = iw * ih
            if inter / (area[i] + area[j] - inter) > f32(thr):
                dead[j] = True
    return np.array(keep, int)


def batched_nms(boxes, scores, labels, thr):
    off = labels.astype(f32) * (boxes.max() + f32(1))
    return nms_single(boxes + off[:, None], scores, thr)


def predict(kind, levels, strides, C, cfg, img_shape, scale):
    A = 9 if kind == "retinanet" else 1
    all_b, all_s, all_l, all_f = [], [], [], []
    for (cls, reg, ctr, h, w), s in zip(levels, strides):
        scores = sigmoid(cls.reshape(A * C, h, w).transpose(1, 2, 0).reshape(-1, C))
        if kind == "gfl":
            bins = reg.reshape(68, h, w).transpose(1, 2, 0).reshape(-1, 17)
            e = np.exp(bins - bins.max(1, keepdims=True))
            p = e / e.sum(1, keepdims=True)
            bp = (p @ np.arange(17, dtype=f32)).reshape(-1, 4) * f32(s)
        else:
            bp = reg.reshape(-1, h, w).transpose(1, 2, 0).reshape(-1, 4)
        if kind in ("gfl", "atss"):
            priors = grid_anchors(base_anchors(s, 8, 1, [1.0]), s, h, w)
        elif kind == "retinanet":
            priors = grid_anchors(base_anchors(s, 4, 3, [0.5, 1.0, 2.0]), s, h, w)
        else:
            priors = grid_points(s, h, w)
        sc, lab, keep = filter_topk(scores, cfg["score_thr"], cfg["nms_pre"])
        pr, d = priors[keep], bp[keep]
        if kind == "gfl":
            ctrs = np.stack([(pr[:, 0] + pr[:, 2]) / 2, (pr[:, 1] + pr[:, 3]) / 2], -1)
            b = dist2bbox(ctrs, d, img_shape)
        elif kind == "fcos":
            b = dist2bbox(pr, d, img_shape)
        else:
            stds = [1, 1, 1, 1] if kind == "retinanet" else [0.1, 0.1, 0.2, 0.2]
            b = delta2bbox(pr, d, [0, 0, 0, 0], stds, img_shape)
        all_b.append(b); all_s.append(sc); all_l.append(lab)
        if ctr is not None:
            all_f.append(sigmoid(ctr.reshape(h * w))[keep])
    b = np.concatenate(all_b); s_ = np.concatenate(all_s); l = np.concatenate(all_l)
    b = b * np.array([1 / scale[0], 1 / scale[1]] * 2, f32)
    if all_f:
        s_ = s_ * np.concatenate(all_f)
    ok = ((b[:, 2] - b[:, 0]) > cfg["min_bbox_size"]) & ((b[:, 3] - b[:, 1]) > cfg["min_bbox_size"])
    b, s_, l = b[ok], s_[ok], l[ok]
    if len(b) == 0:
        return []
    keep = batched_nms(b, s_, l, cfg["iou_thr"])[: cfg["max_per_img"]]
    return [(int(l[i]), float(s_[i]), [float(v) for v in b[i]]) for i in keep]


SIZES = [(25, 32), (13, 16)]
STRIDES = [8, 16]
C = 3
OUT = __file__.replace(".py", "_expected.rs")
lines = ["// Generated by mmdet_reference.py (numpy); included by postprocess.rs tests.",
         "// (class, score, [x1, y1, x2, y2]) in descending score order.", ""]
for kind, seed in [("gfl", 11), ("retinanet", 12), ("fcos", 13), ("atss", 14)]:
    A = 9 if kind == "retinanet" else 1
    box_ch = {"gfl": 68, "retinanet": 36, "fcos": 4, "atss": 4}[kind]
    rng = Lcg(seed)
    levels = []
    for h, w in SIZES:
        hw = h * w
        cls = rng.fill(A * C * hw, -4.0, 2.0)
        lo, hi = {"gfl": (-10.0, 10.0), "fcos": (0.0, 30.0)}.get(kind, (-1.0, 1.0))
        reg = rng.fill(box_ch * hw, lo, hi)
        ctr = rng.fill(hw, -3.0, 3.0) if kind in ("fcos", "atss") else None
        levels.append((cls, reg, ctr, h, w))
    cfg = dict(score_thr=0.05, nms_pre=20, iou_thr=0.6 if kind in ("gfl", "atss") else 0.5,
               max_per_img=12, min_bbox_size=0.0)
    dets = predict(kind, levels, STRIDES, C, cfg, (197.0, 250.0), (0.75, 0.6))
    lines.append(f"/// {kind}, LCG seed {seed}.")
    lines.append(f"pub const {kind.upper()}: &[(usize, f32, [f32; 4])] = &[")
    for l, s, b in dets:
        fmt = lambda v: str(f32(v)) if "." in str(f32(v)) or "e" in str(f32(v)) else str(f32(v)) + ".0"
        lines.append(f"    ({l}, {fmt(s)}, [{', '.join(fmt(v) for v in b)}]),")
    lines.append("];")
    lines.append("")
open(OUT, "w").write("\n".join(lines))
print("wrote", OUT)
