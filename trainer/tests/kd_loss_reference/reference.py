#!/usr/bin/env python3
"""Independent float64 reference for the CrossKD knowledge-distillation losses.

Written from the CrossKD spec (shared/spec/crosskd.md §2, §3, §7) and, where the
spec is terse, from the official CrossKD code (jbwang1997/CrossKD,
``mmdet/models/detectors/crosskd_{gfl,retinanet,atss,fcos}.py``,
``mmdet/models/losses/{kd_loss,pkd_loss}.py``) and MMDetection 3.x
``weight_reduce_loss``.  It imports neither mmdet nor our Rust code; the
student's GT target assignment (priors, valid flags, ATSS / MaxIoU / FCOS
assignment) is taken from the sibling GT-loss reference
``trainer/tests/head_loss_reference/reference.py`` (itself written from the
spec), everything KD-specific is written here in plain PyTorch float64.

Usage (from the repository root)::

    pip install torch numpy            # CPU wheels from PyPI are enough
    python3 trainer/tests/kd_loss_reference/reference.py

It writes one JSON fixture per (detector, case) into
``trainer/tests/fixtures/kd_loss/``; ``trainer/tests/kd_loss_reference.rs``
replays them through ``crosskd_trainer::distill::prediction_kd_losses`` (and
``crosskd_trainer::losses::pkd_loss`` for the feature KD).  The script is
deterministic (fixed numpy seeds): rerunning it rewrites identical files.

Fixture format (compact JSON)::

    {
      "detector": "gfl" | "retinanet" | "atss" | "fcos",
      "case": str, "description": str,
      "num_classes": 3, "reg_max": 16 (GFL only), "strides": [8, 16, 32, 64, 128],
      "batch_shape": [H, W],                       # padded batch tensor size
      "images": [{"img_shape": [h, w], "pad_shape": [h32, w32],
                  "gt_bboxes": [[x1, y1, x2, y2], ...], "gt_labels": [...]}, ...],
      "loss_weights": {"loss_cls_kd": w, "loss_reg_kd": w,
                       "loss_center_kd": w (ATSS), "loss_feat_kd": w},   # spec §3.5
      "reused":  [{"cls_score": T, "bbox_pred": T, "centerness": T (ATSS/FCOS)}, ...],
      "teacher": [ same layout ],                  # per level, P3..P7
      "fpn_student": [T, ...], "fpn_teacher": [T, ...],   # per level [N, 4, H, W]
      "expected": {"loss_cls_kd": f, "loss_reg_kd": f,
                   "loss_center_kd": f (ATSS), "loss_feat_kd": f},
      "info": {...}                                # diagnostics (normalisers, counts)
    }

A tensor T is ``{"shape": [N, C, H, W], "scale": 1/8, "q": [int, ...]}``: the
NCHW row-major values are ``q[i] / 8`` (exact in f32 and f64, so the Rust side
sees exactly the numbers used here).  "reused" are the cross-head outputs (the
student's held features run through the teacher's layers), "teacher" the
teacher's own outputs; for FCOS ``bbox_pred`` holds the already exp'd pixel
distances (norm_on_bbox False), for GFL the 4·17 bin logits (Scale applied),
for RetinaNet/ATSS the raw deltas.  Teacher outputs are random; reused = teacher
plus noise, so the KD terms have realistic magnitudes.

How every expected value is derived (weights w_* are the spec §3.5 loss
weights; "A" is an avg_factor and every weighted reduction is
``Σ(loss·weight) / (A + ε)``, ε = float32 machine epsilon, MMDet's
``weight_reduce_loss``; sums run over levels with the per-level reduction
MMDet applies, which the Rust code may compute in one flattened sum):

* Student targets (all detectors): the stock head assignment of the padded
  batch.  ``label_weights`` = 1 for positives and negatives, 0 for anchors
  outside the image's own 32-padded extent (batch padding) and RetinaNet
  "ignore" anchors (max IoU in [0.4, 0.5)).  num_pos avg factor A =
  Σ_images max(num_pos_i, 1) (SamplingResult.num_pos with the pseudo sampler;
  single process, so reduce_mean is the identity).
* Teacher-score weight of a row: w = σ(max_c teacher cls logit).
* KDQFL (β = 1): per element BCEwithLogits(x, σ(t))·|σ(x) − σ(t)|, the row's
  weight broadcast over the classes.
* GFL (§3.1): loss_cls_kd = w_cls · Σ_l KDQFL(rows of level l, weight =
  label_weights, A).  loss_reg_kd = w_reg · Σ_l [Σ_rows,sides w'·KL(σ(t)‖σ(x))
  over the 17 bins / (4 + ε)] / Σ_l Σ_rows w', with w' = teacher-score weight
  zeroed where label_weights == 0 (KL: T = 1, summed over bins).
* RetinaNet (§3.2): cls as GFL with rows = (location, anchor).  Reg: reused and
  teacher deltas both decoded (DeltaXYWH, means 0, stds 1, dw/dh clamped to
  ±|log(16/1000)|) on the student's anchors (all anchors, also padding ones);
  loss_reg_kd = w_reg · Σ_l Σ w'·(1 − GIoU(reused box, teacher box)) / (A + ε)
  (GIoU eps 1e-6; a level without any w' > 0 contributes 0).
* ATSS (§3.3): cls as GFL.  Reg as RetinaNet but stds (0.1, 0.1, 0.2, 0.2) and
  the anchors returned by get_targets, i.e. zeroed at padding positions
  (degenerate boxes there, weight 0).  loss_center_kd = w_center · Σ_l
  Σ_{student GT positives of level l} BCEwithLogits(reused ctr, σ(teacher
  ctr)) / (A + ε) (0 for a level without positives).
* FCOS (§3.4): all levels flattened (level, image, location); denorm =
  max(Σ centerness targets of the student's GT positives, 1e-6) — following
  the spec and crosskd_fcos.py, which computes it before the
  ``len(pos_inds) > 0`` test, so a batch without positives gets 1e-6.
  (The Rust code deliberately uses 1 for such a batch; the Rust test checks
  ``fcos_no_gt`` against these spec values times (1e-6 + ε)/(1 + ε).)
  loss_cls_kd = w_cls · Σ KDQFL(all rows, no mask) / (denorm + ε);
  loss_reg_kd = w_reg · Σ w·(−log max(IoU, 1e-6)) / (denorm + ε) between the
  boxes decoded at the points (point ∓ distances), w = teacher-score weight,
  no masking.
* PKD (§2, spec weights 6 / 2 / 1 / 2): per level Z = (F − μ_c)/(σ_c + 1e-6)
  per channel over (N, H, W) with the unbiased std, for student and teacher;
  mean over all elements of ½(Z_s − Z_t)²; summed over levels, × w_feat.

Cases (every one has 5 FPN levels P3..P7 of the padded batch):

* ``padded_batch``: a 32x96 image with two GTs and a 32x40 image (pad 32x64)
  with one GT in a 32x96 batch: the second image's last 32 columns are padding
  (label weight 0).  (ATSS cannot make a GT of an image <= 32x32 positive: every
  64x64 P3 anchor contains it, so all candidate IoUs tie below mean + std.)
  RetinaNet uses a 32x64 batch with a 20x30 image (pad 32x32) and larger GTs
  (see RETINA_OVERRIDES), redrawn until it has ignore anchors (IoU in
  [0.4, 0.5)) in the valid region; a few reused dw/dh deltas of RetinaNet and
  ATSS exceed the decode clamp.
* ``zero_gt_image``: a 32x64 image with GTs and a 20x28 image (pad 32x32)
  without any GT (all its valid anchors negative; still counts 1 in A).
* ``no_gt``: a 32x32 batch of two images without GT (A = 2; FCOS denorm
  falls to its 1e-6 floor; ATSS centerness KD = 0).

Discrete assignment decisions are kept away from their thresholds by the
generator of the GT-loss reference (redraws on near-ties), so f32 (Rust) and
f64 (here) assign identically.
"""

import importlib.util
import json
import os
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.normpath(os.path.join(HERE, "..", "fixtures", "kd_loss"))
_HL_PATH = os.path.normpath(os.path.join(HERE, "..", "head_loss_reference", "reference.py"))
_spec = importlib.util.spec_from_file_location("head_loss_reference", _HL_PATH)
H = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(H)

STRIDES = H.STRIDES
NUM_CLASSES = H.NUM_CLASSES
REG_MAX = 16  # 17 bins, as in every CrossKD GFL config
QSCALE = H.QSCALE
AVG_EPS = H.AVG_EPS  # float32 eps that MMDet adds to avg_factor
FPN_CHANNELS = 4

# Spec §3.5 loss weights.
LOSS_WEIGHTS = dict(
    gfl=dict(loss_cls_kd=1.0, loss_reg_kd=4.0, loss_feat_kd=6.0),
    retinanet=dict(loss_cls_kd=1.0, loss_reg_kd=1.0, loss_feat_kd=2.0),
    atss=dict(loss_cls_kd=1.0, loss_reg_kd=1.0, loss_center_kd=1.0, loss_feat_kd=1.0),
    fcos=dict(loss_cls_kd=0.4, loss_reg_kd=0.75, loss_feat_kd=2.0),
)

RETINA_STDS = (1.0, 1.0, 1.0, 1.0)
ATSS_STDS = (0.1, 0.1, 0.2, 0.2)


# ----------------------------------------------------------------------------
# KD primitives (spec §2), float64
# ----------------------------------------------------------------------------


def reduce(loss, avg_factor):
    """weight_reduce_loss, reduction 'mean' with avg_factor."""
    return loss.sum() / (avg_factor + AVG_EPS)


def kdqfl(x, t, row_weight, avg_factor, beta=1.0):
    """KDQualityFocalLoss: BCE(x, σ(t))·|σ(x) − σ(t)|^β, per-row weight over classes."""
    p = t.sigmoid()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(x, p, reduction="none")
    loss = loss * (x.sigmoid() - p).abs().pow(beta)
    if row_weight is not None:
        loss = loss * row_weight[:, None]
    return reduce(loss, avg_factor)


def kl_rows(x, t, temp=1.0):
    """KnowledgeDistillationKLDivLoss, class_reduction 'sum': Σ_bins p_t·(log p_t − log p_x)·T²."""
    pt = torch.softmax(t / temp, dim=1)
    lx = torch.log_softmax(x / temp, dim=1)
    return (pt * (pt.log() - lx)).sum(dim=1) * temp * temp


def giou_rows(a, b, eps=1e-6):
    return H.aligned_overlaps(a, b, "giou", eps=eps)


def iou_rows(a, b, eps=1e-6):
    return H.aligned_overlaps(a, b, "iou", eps=eps)


def giou_loss(pred, target, weight, avg_factor):
    """GIoULoss: a call whose weights are all ≤ 0 returns 0."""
    if not bool((weight > 0).any()):
        return torch.tensor(0.0)
    return reduce((1 - giou_rows(pred, target)) * weight, avg_factor)


def log_iou_loss(pred, target, weight, avg_factor):
    if not bool((weight > 0).any()):
        return torch.tensor(0.0)
    return reduce(-iou_rows(pred, target).clamp(min=1e-6).log() * weight, avg_factor)


def pkd_level(s, t):
    def norm(f):
        n, c, h, w = f.shape
        g = f.permute(1, 0, 2, 3).reshape(c, -1)
        g = (g - g.mean(dim=1, keepdim=True)) / (g.std(dim=1, keepdim=True) + 1e-6)  # unbiased
        return g

    return (((norm(s) - norm(t)) ** 2) / 2).mean()


def teacher_score_weight(t_rows):
    return t_rows.max(dim=1).values.sigmoid()


# ----------------------------------------------------------------------------
# Per-level layout helpers
# ----------------------------------------------------------------------------


def level_rows(t, c):
    """[N, A·c, H, W] → [N·H·W·A, c] in (image, y, x, anchor) order (MMDet's per-level view)."""
    n, ch, h, w = t.shape
    return t.permute(0, 2, 3, 1).reshape(-1, c)


def level_offsets(sizes, num_base):
    counts = [fh * fw * num_base for fh, fw in sizes]
    return counts, np.cumsum([0] + counts).tolist()


def per_level(values_per_image, counts, offs, l):
    """Per-image vectors over all anchors → the level-l slice of every image, concatenated."""
    return torch.cat([v[offs[l] : offs[l] + counts[l]] for v in values_per_image])


def valid_mask_per_image(sizes, images, num_base):
    out = []
    for im in images:
        ph, pw = im["pad_shape"]
        out.append(
            torch.cat([H.level_valid(fh, fw, STRIDES[l], ph, pw, num_base) for l, (fh, fw) in enumerate(sizes)])
        )
    return out


# ----------------------------------------------------------------------------
# Per-detector KD (spec §3)
# ----------------------------------------------------------------------------


def gfl_kd(reused, teacher, sizes, images):
    anchors, _, tg = H.anchor_targets("gfl", sizes, images)
    num_pos = [len(t["pos"]) for t in tg]
    avg = float(sum(max(p, 1) for p in num_pos))
    counts, offs = level_offsets(sizes, 1)
    lw_img = [t["label_weights"] for t in tg]
    loss_cls, reg_levels, w_sum = 0.0, [], 0.0
    for l in range(len(sizes)):
        x_cls = level_rows(reused[l]["cls_score"], NUM_CLASSES)
        t_cls = level_rows(teacher[l]["cls_score"], NUM_CLASSES)
        lw = per_level(lw_img, counts, offs, l)
        loss_cls = loss_cls + kdqfl(x_cls, t_cls, lw, avg)
        w = teacher_score_weight(t_cls)
        w[lw == 0] = 0
        x_reg = level_rows(reused[l]["bbox_pred"], REG_MAX + 1)
        t_reg = level_rows(teacher[l]["bbox_pred"], REG_MAX + 1)
        w4 = w[:, None].expand(-1, 4).reshape(-1)
        reg_levels.append(reduce(kl_rows(x_reg, t_reg) * w4, 4.0))
        w_sum += w.sum().item()
    loss_reg = sum(r / w_sum for r in reg_levels)
    info = dict(num_pos_per_image=num_pos, avg_factor=avg, reg_weight_sum=w_sum,
                num_masked_per_image=[int((t["label_weights"] == 0).sum()) for t in tg])
    return dict(loss_cls_kd=float(loss_cls), loss_reg_kd=float(loss_reg)), info


def anchor_giou_kd(det, reused, teacher, sizes, images):
    """RetinaNet and ATSS: KDQFL + GIoU on decoded boxes (+ ATSS centerness KD)."""
    anchors, _, tg = H.anchor_targets(det, sizes, images)
    a = 9 if det == "retinanet" else 1
    stds = RETINA_STDS if det == "retinanet" else ATSS_STDS
    num_pos = [len(t["pos"]) for t in tg]
    avg = float(sum(max(p, 1) for p in num_pos))
    counts, offs = level_offsets(sizes, a)
    lw_img = [t["label_weights"] for t in tg]
    valid_img = valid_mask_per_image(sizes, images, a)
    if det == "retinanet":
        anchors_img = [anchors for _ in images]  # AnchorHead: the raw anchors of every image
    else:
        # ATSSHead.get_targets returns anchors unmapped with fill 0 outside the valid flags.
        anchors_img = [torch.where(v[:, None], anchors, torch.zeros_like(anchors)) for v in valid_img]
    labels_img = [t["labels"] for t in tg]
    loss_cls, loss_reg, loss_ctr = 0.0, 0.0, 0.0
    for l in range(len(sizes)):
        x_cls = level_rows(reused[l]["cls_score"], NUM_CLASSES)
        t_cls = level_rows(teacher[l]["cls_score"], NUM_CLASSES)
        lw = per_level(lw_img, counts, offs, l)
        loss_cls = loss_cls + kdqfl(x_cls, t_cls, lw, avg)
        anc = torch.cat([ai[offs[l] : offs[l] + counts[l]] for ai in anchors_img])
        x_box = H.delta_decode(anc, level_rows(reused[l]["bbox_pred"], 4), stds)
        t_box = H.delta_decode(anc, level_rows(teacher[l]["bbox_pred"], 4), stds)
        w = teacher_score_weight(t_cls)
        w[lw == 0] = 0
        loss_reg = loss_reg + giou_loss(x_box, t_box, w, avg)
        if det == "atss":
            lab = per_level(labels_img, counts, offs, l)
            pos = (lab < NUM_CLASSES).nonzero().squeeze(1)
            if len(pos):
                xc = level_rows(reused[l]["centerness"], 1)[:, 0][pos]
                tc = level_rows(teacher[l]["centerness"], 1)[:, 0][pos]
                bce = torch.nn.functional.binary_cross_entropy_with_logits(xc, tc.sigmoid(), reduction="none")
                loss_ctr = loss_ctr + reduce(bce, avg)
    out = dict(loss_cls_kd=float(loss_cls), loss_reg_kd=float(loss_reg))
    if det == "atss":
        out["loss_center_kd"] = float(loss_ctr)
    num_masked = [int((t["label_weights"] == 0).sum()) for t in tg]
    num_padding = [int((~v).sum()) for v in valid_img]
    info = dict(
        num_pos_per_image=num_pos,
        avg_factor=avg,
        num_padding_per_image=num_padding,
        num_ignored_per_image=[m - p for m, p in zip(num_masked, num_padding)],
    )
    return out, info


def fcos_kd(reused, teacher, sizes, images):
    points, tg = H.fcos_targets(sizes, images)
    n = len(images)
    counts = [fh * fw for fh, fw in sizes]
    offs = np.cumsum([0] + counts).tolist()
    # level-major, then image, then location (crosskd_fcos.py flattening)
    lvl_points = [points[offs[l] : offs[l] + counts[l]] for l in range(len(sizes))]
    flat_points = torch.cat([p.repeat(n, 1) for p in lvl_points])
    x_cls = torch.cat([level_rows(o["cls_score"], NUM_CLASSES) for o in reused])
    t_cls = torch.cat([level_rows(o["cls_score"], NUM_CLASSES) for o in teacher])
    x_reg = torch.cat([level_rows(o["bbox_pred"], 4) for o in reused])
    t_reg = torch.cat([level_rows(o["bbox_pred"], 4) for o in teacher])
    ltrb_pos = [t["ltrb"][t["pos"]] for t in tg]
    ltrb_pos = torch.cat(ltrb_pos) if ltrb_pos else torch.zeros(0, 4)
    ctr_sum = H.centerness(ltrb_pos).sum().item() if len(ltrb_pos) else 0.0
    denorm = max(ctr_sum, 1e-6)
    loss_cls = kdqfl(x_cls, t_cls, None, denorm)
    w = teacher_score_weight(t_cls)
    loss_reg = log_iou_loss(
        H.distance2bbox(flat_points, x_reg), H.distance2bbox(flat_points, t_reg), w, denorm
    )
    info = dict(num_pos_per_image=[len(t["pos"]) for t in tg], centerness_denorm=denorm)
    return dict(loss_cls_kd=float(loss_cls), loss_reg_kd=float(loss_reg)), info


def pkd(fpn_s, fpn_t):
    return float(sum(pkd_level(s, t) for s, t in zip(fpn_s, fpn_t)))


def kd_losses(det, reused, teacher, fpn_s, fpn_t, sizes, images):
    if det == "gfl":
        raw, info = gfl_kd(reused, teacher, sizes, images)
    elif det == "fcos":
        raw, info = fcos_kd(reused, teacher, sizes, images)
    else:
        raw, info = anchor_giou_kd(det, reused, teacher, sizes, images)
    raw["loss_feat_kd"] = pkd(fpn_s, fpn_t)
    info["unweighted"] = dict(raw)
    weights = LOSS_WEIGHTS[det]
    return {k: weights[k] * v for k, v in raw.items()}, info


# ----------------------------------------------------------------------------
# Case generation
# ----------------------------------------------------------------------------

CASES = {
    "padded_batch": dict(
        description="32x96 batch: a 32x96 image with two GTs and a 32x40 image (pad 32x64) with one GT; "
        "the second image's last 32 columns are batch padding (label weight 0)",
        canvas=(32, 96),
        images=[
            (32, 96, [(24, 44, 16, 30, None), (10, 20, 10, 20, None)]),
            (32, 40, [(18, 34, 10, 26, None)]),
        ],
    ),
    "zero_gt_image": dict(
        description="32x64 batch: a 32x64 image with two GTs and a 20x28 image (pad 32x32) without any GT",
        canvas=(32, 64),
        images=[
            (32, 64, [(20, 44, 16, 30, None), (8, 16, 8, 16, None)]),
            (20, 28, []),
        ],
    ),
    "no_gt": dict(
        description="32x32 batch: two images (32x32 and 16x24, both pad 32x32) without any GT",
        canvas=(32, 32),
        images=[(32, 32, []), (16, 24, [])],
    ),
}

# RetinaNet: 9 anchors per location and low-quality max-IoU matching. GTs that fit inside
# several equally shaped anchors tie exactly on their max IoU (which the generator rejects),
# so its GTs are larger than any 32x32 anchor in one dimension; the padded image (20x30,
# pad 32x32) still gets positives from low-quality matching, so the batch stays 32x64.
RETINA_OVERRIDES = {
    "padded_batch": dict(
        description="32x64 batch: a 32x64 image with two GTs and a 20x30 image (pad 32x32) with one GT; "
        "the second image's right half is batch padding (label weight 0); ignore anchors "
        "(max IoU in [0.4, 0.5)) in the valid region",
        canvas=(32, 64),
        images=[
            (32, 64, [(34, 48, 16, 30, None), (16, 30, 20, 30, None)]),
            (20, 30, [(18, 29, 10, 19, None)]),
        ],
    ),
    "zero_gt_image": dict(
        description="32x64 batch: a 32x64 image with two GTs and a 20x28 image (pad 32x32) without any GT",
        canvas=(32, 64),
        images=[
            (32, 64, [(36, 56, 20, 30, None), (14, 24, 20, 30, None)]),
            (20, 28, []),
        ],
    ),
}


def case_spec(det, case_name):
    if det == "retinanet" and case_name in RETINA_OVERRIDES:
        return RETINA_OVERRIDES[case_name]
    return CASES[case_name]


def q(x):
    """Quantize to the 1/8 grid (the values the fixture stores)."""
    return np.rint(np.clip(x, -64, 64) * QSCALE).astype(np.int64)


def make_outputs(rng, det, sizes, n):
    """Teacher outputs and reused (cross-head) outputs = teacher + noise, quantized."""
    teacher, reused = [], []
    for fh, fw in sizes:
        t, r = {}, {}
        a = 9 if det == "retinanet" else 1
        shape_cls = (n, a * NUM_CLASSES, fh, fw)
        tc = rng.normal(-1.5, 1.5, size=shape_cls)
        t["cls_score"] = q(tc)
        r["cls_score"] = q(tc + rng.normal(0.0, 1.0, size=shape_cls))
        if det == "gfl":
            shape = (n, 4 * (REG_MAX + 1), fh, fw)
            tb = rng.normal(0.0, 2.0, size=shape)
            t["bbox_pred"] = q(tb)
            r["bbox_pred"] = q(tb + rng.normal(0.0, 1.0, size=shape))
        elif det in ("retinanet", "atss"):
            shape = (n, a * 4, fh, fw)
            sd = 0.5 if det == "retinanet" else 1.0
            tb = rng.normal(0.0, sd, size=shape)
            t["bbox_pred"] = q(tb)
            r["bbox_pred"] = q(tb + rng.normal(0.0, sd / 2, size=shape))
        else:  # fcos: exp'd pixel distances, ≥ 1/8
            shape = (n, 4, fh, fw)
            tb = np.exp(rng.uniform(0.5, 4.0, size=shape))
            t["bbox_pred"] = np.maximum(q(tb), 1)
            r["bbox_pred"] = np.maximum(q(tb * np.exp(rng.normal(0.0, 0.3, size=shape))), 1)
        if det in ("atss", "fcos"):
            shape = (n, 1, fh, fw)
            tcn = rng.normal(0.0, 1.5, size=shape)
            t["centerness"] = q(tcn)
            r["centerness"] = q(tcn + rng.normal(0.0, 1.0, size=shape))
        teacher.append(t)
        reused.append(r)
    return reused, teacher


def push_beyond_clamp(det, reused, sizes, images, tg):
    """Make a few reused dw/dh deltas of weighted (valid) anchors exceed the decode clamp."""
    a = 9 if det == "retinanet" else 1
    big = 6 if det == "retinanet" else 24  # |std·d| > log(1000/16) ≈ 4.135
    counts, offs = level_offsets(sizes, a)
    for i, t in enumerate(tg):
        valid = (t["label_weights"] > 0).nonzero().squeeze(1).tolist()
        for k, row in enumerate(valid[:: max(1, len(valid) // 3)][:3]):
            l = int(np.searchsorted(offs, row, side="right") - 1)
            fh, fw = sizes[l]
            r = row - offs[l]
            loc, anc = divmod(r, a)
            y, x = divmod(loc, fw)
            reused[l]["bbox_pred"][i, anc * 4 + 2 + (k % 2), y, x] = (big if k < 2 else -big) * QSCALE


def make_fpn(rng, sizes, n):
    s_all, t_all = [], []
    for fh, fw in sizes:
        shape = (n, FPN_CHANNELS, fh, fw)
        s = rng.normal(0.0, 1.0, size=shape) * rng.uniform(0.5, 2.0, size=(1, FPN_CHANNELS, 1, 1))
        t = 0.7 * s + rng.normal(0.3, 0.8, size=shape)
        s_all.append(q(s))
        t_all.append(q(t))
    return s_all, t_all


def to_torch_level(o):
    return {k: torch.tensor(v, dtype=torch.float64) / QSCALE for k, v in o.items()}


def build_case(det, case_name, seed):
    case = case_spec(det, case_name)
    canvas = case["canvas"]
    sizes = H.featmap_sizes(*canvas)
    for attempt in range(500):
        rng = np.random.default_rng([seed, attempt])
        images = H.make_images(rng, case["images"])
        try:
            tg = H.targets_only(det, sizes, images)
        except H.NearTie:
            continue
        if any(len(im["gt_bboxes"]) and len(t["pos"]) == 0 for t, im in zip(tg, images)):
            continue
        if det == "retinanet" and case_name == "padded_batch":
            n_valid_masked = 0
            vmask = valid_mask_per_image(sizes, images, 9)
            for t, v in zip(tg, vmask):
                n_valid_masked += int(((t["label_weights"] == 0) & v).sum())
            if n_valid_masked == 0:
                continue  # want RetinaNet ignore anchors
        break
    else:
        raise RuntimeError(f"no usable GT draw for {det}/{case_name}")
    n = len(images)
    reused_q, teacher_q = make_outputs(rng, det, sizes, n)
    if det in ("retinanet", "atss") and any(len(im["gt_bboxes"]) for im in images):
        push_beyond_clamp(det, reused_q, sizes, images, tg)
    fpn_s_q, fpn_t_q = make_fpn(rng, sizes, n)
    reused = [to_torch_level(o) for o in reused_q]
    teacher = [to_torch_level(o) for o in teacher_q]
    fpn_s = [torch.tensor(x, dtype=torch.float64) / QSCALE for x in fpn_s_q]
    fpn_t = [torch.tensor(x, dtype=torch.float64) / QSCALE for x in fpn_t_q]
    expected, info = kd_losses(det, reused, teacher, fpn_s, fpn_t, sizes, images)
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
        loss_weights=LOSS_WEIGHTS[det],
        reused=[{k: H.tensor_json(v) for k, v in o.items()} for o in reused_q],
        teacher=[{k: H.tensor_json(v) for k, v in o.items()} for o in teacher_q],
        fpn_student=[H.tensor_json(x) for x in fpn_s_q],
        fpn_teacher=[H.tensor_json(x) for x in fpn_t_q],
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
            fx = build_case(det, case_name, seed=2000 + 10 * d_i + c_i)
            path = os.path.join(OUT_DIR, f"{det}_{case_name}.json")
            text = json.dumps(fx, separators=(",", ":"))
            with open(path, "w") as f:
                f.write(text + "\n")
            total += len(text) + 1
            extra = {k: v for k, v in fx["info"].items() if k not in ("unweighted", "featmap_sizes")}
            print(
                f"{det:10s} {case_name:14s} {len(text) / 1024:6.1f} KiB  "
                + "  ".join(f"{k}={v:.6g}" for k, v in fx["expected"].items())
                + f"  {extra}"
            )
    print(f"total {total / 1024:.1f} KiB in {OUT_DIR}", file=sys.stderr)


if __name__ == "__main__":
    main()
