//! Prediction-level KD losses per detector (spec §3): between `pred` (the
//! cross-head predictions, or the student's own for `pred-mimic`) and the
//! teacher's predictions of the same batch, masked and normalised with the
//! STUDENT's GT assignment.
//!
//! Every loss is a sum over levels with one normaliser for the whole batch, so
//! the levels are flattened together (image, level, y, x, anchor) — the same
//! value as MMDet's per-level sums.

use burn::prelude::*;
use burn::tensor::activation::sigmoid;

use super::config::KdSettings;
use crate::coders::delta_xywh::{self, ATSS_STDS, RETINANET_STDS, ZERO_MEANS};
use crate::coders::distance2bbox;
use crate::losses::{
    binary_cross_entropy_with_logits, giou_loss, iou_loss, kd_quality_focal_loss,
    knowledge_distillation_kl_div_loss, ClassReduction, IouLossMode, KD_QFL_BETA,
};
use crate::model::head::HeadConfig;
use crate::model::head_loss::{
    flatten_outputs, index_tensor, rows_tensor, vec_tensor, zero_like_graph, BatchAnchorTargets,
    FlatOutputs, HeadTargets, PointBatchTargets,
};
use crate::model::heads::LevelOutput;
use crate::model::loss_dict::LossDict;

/// Teacher-score weight of every row: `σ(max_c t_c)`, detached (spec §3).
fn teacher_score_weight<B: Backend>(teacher_cls: Tensor<B, 2>) -> Tensor<B, 1> {
    let m = teacher_cls.dims()[0];
    sigmoid(teacher_cls.detach().max_dim(1)).reshape([m])
}

/// `rows` of one image repeated for `n` images (image-major, like the flattened outputs).
fn repeat_rows<const K: usize>(rows: &[[f32; K]], n: usize) -> Vec<[f32; K]> {
    let mut out = Vec::with_capacity(rows.len() * n);
    for _ in 0..n {
        out.extend_from_slice(rows);
    }
    out
}

/// The KD losses of `settings.mode` for a student head `head` (`loss_cls_kd`,
/// `loss_reg_kd`, and for ATSS `loss_center_kd`), weighted.
///
/// # Panics
/// If `targets` belong to another head family, or `pred`/`teacher` shapes differ
/// (both are checked when the distiller is built).
pub fn prediction_kd_losses<B: Backend>(
    head: &HeadConfig,
    settings: &KdSettings,
    pred: &[LevelOutput<B>],
    teacher: &[LevelOutput<B>],
    targets: &HeadTargets,
) -> LossDict<B> {
    let c = head.num_classes();
    let n = pred[0].cls_score.dims()[0];
    let box_c = pred[0].bbox_pred.dims()[1] / (pred[0].cls_score.dims()[1] / c);
    let p = flatten_outputs(pred, c, box_c);
    let t = flatten_outputs(teacher, c, box_c);
    let mut out = LossDict::default();
    match (head, targets) {
        (HeadConfig::Gfl(g), HeadTargets::Anchors(tg)) => {
            gfl_kd(&mut out, settings, g.reg_max, p, t, tg)
        }
        (HeadConfig::Retinanet(_), HeadTargets::Anchors(tg)) => {
            anchor_giou_kd(&mut out, settings, RETINANET_STDS, p, t, tg, n)
        }
        (HeadConfig::Atss(_), HeadTargets::Anchors(tg)) => {
            let (pc, tc) = (p.ctr.clone(), t.ctr.clone());
            anchor_giou_kd(&mut out, settings, ATSS_STDS, p, t, tg, n);
            atss_center_kd(&mut out, settings, pc, tc, tg);
        }
        (HeadConfig::Fcos(_), HeadTargets::Points(tg)) => fcos_kd(&mut out, settings, p, t, tg, n),
        _ => panic!("KD targets of another head family"),
    }
    out
}

/// GFL (spec §3.1): KDQFL on label-weighted rows / num_pos; KL over the 17-bin
/// side distributions weighted by the masked teacher score, /4 per location,
/// divided by the sum of those weights.
fn gfl_kd<B: Backend>(
    out: &mut LossDict<B>,
    s: &KdSettings,
    reg_max: usize,
    p: FlatOutputs<B>,
    t: FlatOutputs<B>,
    tg: &BatchAnchorTargets,
) {
    let device = p.cls.device();
    let m = p.cls.dims()[0];
    let label_w = vec_tensor(tg.label_weights.clone(), &device);
    let w = teacher_score_weight(t.cls.clone()).mul(label_w.clone());
    let w_sum = w
        .clone()
        .sum()
        .into_scalar()
        .elem::<f32>()
        .max(f32::EPSILON);
    let loss_cls = kd_quality_focal_loss(
        p.cls,
        t.cls,
        Some(label_w),
        Some(tg.avg_factor()),
        KD_QFL_BETA,
    );
    let bins = reg_max + 1;
    let w4 = w.reshape([m, 1]).repeat_dim(1, 4).reshape([m * 4]);
    let loss_reg = knowledge_distillation_kl_div_loss(
        p.reg.reshape([m * 4, bins]),
        t.reg.reshape([m * 4, bins]),
        1.0,
        ClassReduction::Sum,
        Some(w4),
        Some(4.0),
    )
    .div_scalar(w_sum);
    out.push("loss_cls_kd", loss_cls.mul_scalar(s.loss_cls_kd));
    out.push("loss_reg_kd", loss_reg.mul_scalar(s.loss_reg_kd));
}

/// RetinaNet / ATSS (spec §3.2, §3.3): KDQFL on label-weighted rows / num_pos;
/// GIoU between both predictions decoded on the student's anchors, weighted by
/// the masked teacher score, / num_pos.
fn anchor_giou_kd<B: Backend>(
    out: &mut LossDict<B>,
    s: &KdSettings,
    stds: [f32; 4],
    p: FlatOutputs<B>,
    t: FlatOutputs<B>,
    tg: &BatchAnchorTargets,
    n: usize,
) {
    let device = p.cls.device();
    let label_w = vec_tensor(tg.label_weights.clone(), &device);
    let w = teacher_score_weight(t.cls.clone()).mul(label_w.clone());
    let avg = tg.avg_factor();
    let loss_cls = kd_quality_focal_loss(p.cls, t.cls, Some(label_w), Some(avg), KD_QFL_BETA);
    let anchors = rows_tensor(&repeat_rows(&tg.anchors, n), &device);
    let ratio = delta_xywh::default_max_ratio();
    let decode = |d: Tensor<B, 2>| delta_xywh::decode(anchors.clone(), d, ZERO_MEANS, stds, ratio);
    let loss_reg = giou_loss(decode(p.reg), decode(t.reg.detach()), Some(w), Some(avg));
    out.push("loss_cls_kd", loss_cls.mul_scalar(s.loss_cls_kd));
    out.push("loss_reg_kd", loss_reg.mul_scalar(s.loss_reg_kd));
}

/// ATSS centerness KD (spec §3.3): BCE towards σ(teacher centerness) on the
/// student's GT positives, / num_pos.
fn atss_center_kd<B: Backend>(
    out: &mut LossDict<B>,
    s: &KdSettings,
    pred_ctr: Option<Tensor<B, 1>>,
    teacher_ctr: Option<Tensor<B, 1>>,
    tg: &BatchAnchorTargets,
) {
    let (Some(pc), Some(tc)) = (pred_ctr, teacher_ctr) else {
        panic!("ATSS predicts centerness");
    };
    let loss = if tg.num_pos() > 0 {
        let pos = index_tensor::<B>(&tg.pos_rows, &pc.device());
        let target = sigmoid(tc.detach().select(0, pos.clone()));
        binary_cross_entropy_with_logits(pc.select(0, pos), target, None, Some(tg.avg_factor()))
    } else {
        zero_like_graph(pc)
    };
    out.push("loss_center_kd", loss.mul_scalar(s.loss_center_kd));
}

/// FCOS (spec §3.4): KDQFL over every point, unmasked; −log IoU between both
/// predictions decoded at the points, weighted by the teacher score; both
/// normalised by the centerness denominator of the student's positives.
fn fcos_kd<B: Backend>(
    out: &mut LossDict<B>,
    s: &KdSettings,
    p: FlatOutputs<B>,
    t: FlatOutputs<B>,
    tg: &PointBatchTargets,
    n: usize,
) {
    let device = p.cls.device();
    // Deliberate deviation for a batch without positives: the spec (§3.4) and
    // crosskd_fcos.py compute the denominator before their `len(pos_inds) > 0`
    // test, so it is the 1e-6 floor there and both KD terms blow up ×1e6 (stock
    // FCOSHead only defines it inside that test); such batches use 1 here.
    // tests/kd_loss_reference.rs asserts this is the only difference.
    let denorm = if tg.num_pos() > 0 {
        tg.centerness_denorm()
    } else {
        1.0
    };
    let w = teacher_score_weight(t.cls.clone());
    let loss_cls = kd_quality_focal_loss(p.cls, t.cls, None, Some(denorm), KD_QFL_BETA);
    let points = rows_tensor(&repeat_rows(&tg.points, n), &device);
    let loss_reg = iou_loss(
        distance2bbox(points.clone(), p.reg),
        distance2bbox(points, t.reg.detach()),
        Some(w),
        Some(denorm),
        IouLossMode::Log,
    );
    out.push("loss_cls_kd", loss_cls.mul_scalar(s.loss_cls_kd));
    out.push("loss_reg_kd", loss_reg.mul_scalar(s.loss_reg_kd));
}
