//! FCOS losses: focal over all points, −log IoU (or GIoU) on decoded positive
//! boxes weighted by the centerness target, centerness BCE (spec §5.7).

use crate::grid_points;
use burn::prelude::*;
use rayon::prelude::*;

use super::{
    flatten_outputs, index_tensor, label_tensor, level_shapes, rows_tensor, vec_tensor,
    zero_like_graph, FlatOutputs,
};
use crate::nn::coders::distance2bbox;
use crate::nn::heads::{FcosHeadConfig, LevelOutput};
use crate::nn::loss_dict::LossDict;
use crate::nn::losses::{
    binary_cross_entropy_with_logits, giou_loss, iou_loss, sigmoid_focal_loss, IouLossMode,
    FOCAL_ALPHA, FOCAL_GAMMA,
};
use crate::nn::ImageMeta;
use crate::targets::fcos::{centerness_target, fcos_targets, FcosTargetConfig};

/// Smallest box-loss normaliser (MMDet's `centerness_denorm` floor).
const CENTERNESS_DENORM_MIN: f32 = 1e-6;

/// FCOS point targets of a whole batch, rows image-major (image, level, y, x).
#[derive(Debug, Clone)]
pub struct PointBatchTargets {
    /// Points of one image (all levels); shared by all images.
    pub points: Vec<[f32; 2]>,
    /// Class per row (`num_classes` = background), `N·points.len()` rows.
    pub labels: Vec<usize>,
    /// Positive rows (flat, ascending).
    pub pos_rows: Vec<usize>,
    /// Point of each positive row.
    pub pos_points: Vec<[f32; 2]>,
    /// `(l, t, r, b)` pixel distances to the assigned GT of each positive row.
    pub pos_ltrb: Vec<[f32; 4]>,
}

impl PointBatchTargets {
    /// Total number of positives.
    pub fn num_pos(&self) -> usize {
        self.pos_rows.len()
    }

    /// Centerness target of every positive row.
    pub fn pos_centerness(&self) -> Vec<f32> {
        self.pos_ltrb.iter().map(centerness_target).collect()
    }

    /// MMDet's `centerness_denorm`: Σ centerness targets of the positives, floored at
    /// 1e-6 (normaliser of the box loss and of CrossKD's FCOS KD losses).
    pub fn centerness_denorm(&self) -> f32 {
        self.pos_centerness()
            .iter()
            .sum::<f32>()
            .max(CENTERNESS_DENORM_MIN)
    }
}

/// FCOS targets: every point of every level, scale ranges and (optional) centre sampling.
pub fn fcos_targets_batch<B: Backend>(
    cfg: &FcosHeadConfig,
    strides: &[f32],
    outputs: &[LevelOutput<B>],
    metas: &[ImageMeta],
) -> PointBatchTargets {
    let shapes = level_shapes(outputs);
    let mut points = Vec::new();
    let mut counts = Vec::with_capacity(shapes.len());
    for (l, &(h, w)) in shapes.iter().enumerate() {
        let p = grid_points(strides[l], h, w, 0.5);
        counts.push(p.len());
        points.extend(p);
    }
    // The head predicts pixel distances (see FcosHead::predict_level), so the
    // targets stay in pixels; IoU and centerness do not depend on the scale.
    let tcfg = FcosTargetConfig {
        strides: strides.to_vec(),
        regress_ranges: cfg.regress_ranges.clone(),
        center_sampling: cfg.center_sampling,
        center_sample_radius: cfg.center_sample_radius,
        norm_on_bbox: false,
        num_classes: cfg.num_classes,
    };
    let per_image: Vec<_> = metas
        .par_iter()
        .map(|m| fcos_targets(&tcfg, &points, &counts, &m.gt_boxes, &m.gt_labels))
        .collect();
    let t = points.len();
    let mut out = PointBatchTargets {
        points: Vec::new(),
        labels: Vec::with_capacity(t * metas.len()),
        pos_rows: Vec::new(),
        pos_points: Vec::new(),
        pos_ltrb: Vec::new(),
    };
    for (img, tg) in per_image.iter().enumerate() {
        out.labels.extend(&tg.labels);
        for i in tg.pos_inds() {
            out.pos_rows.push(img * t + i);
            out.pos_points.push(points[i]);
            out.pos_ltrb.push(tg.bbox_targets[i]);
        }
    }
    out.points = points;
    out
}

/// FCOS GT losses for one batch, from the batch's [`fcos_targets_batch`].
pub fn fcos_loss<B: Backend>(
    cfg: &FcosHeadConfig,
    outputs: &[LevelOutput<B>],
    targets: &PointBatchTargets,
) -> LossDict<B> {
    let c = cfg.num_classes;
    let device = outputs[0].cls_score.device();
    let PointBatchTargets {
        labels,
        pos_rows,
        pos_points,
        pos_ltrb,
        ..
    } = targets;
    let FlatOutputs { cls, reg, ctr } = flatten_outputs(outputs, c, 4);
    let ctr = ctr.expect("FCOS head predicts centerness");
    let num_pos = pos_rows.len();
    let avg = (num_pos as f32).max(1.0);
    let (loss_bbox, loss_ctr) = if num_pos > 0 {
        let pos = index_tensor::<B>(pos_rows, &device);
        let pos_reg = reg.select(0, pos.clone());
        let pos_ctr = ctr.select(0, pos);
        let ctr_t = targets.pos_centerness();
        let denorm = targets.centerness_denorm();
        let pts = rows_tensor(pos_points, &device);
        let pred_boxes = distance2bbox(pts.clone(), pos_reg);
        let target_boxes = distance2bbox(pts, rows_tensor(pos_ltrb, &device));
        let ctr_t = vec_tensor(ctr_t, &device);
        let loss_bbox = if cfg.giou_loss {
            giou_loss(pred_boxes, target_boxes, Some(ctr_t.clone()), Some(denorm))
        } else {
            iou_loss(
                pred_boxes,
                target_boxes,
                Some(ctr_t.clone()),
                Some(denorm),
                IouLossMode::Log,
            )
        };
        let loss_ctr = binary_cross_entropy_with_logits(pos_ctr, ctr_t, None, Some(avg));
        (loss_bbox, loss_ctr)
    } else {
        (zero_like_graph(reg), zero_like_graph(ctr))
    };
    let loss_cls = sigmoid_focal_loss(
        cls,
        label_tensor(labels, &device),
        None,
        Some(avg),
        FOCAL_ALPHA,
        FOCAL_GAMMA,
    );
    let mut out = LossDict::default();
    out.push("loss_cls", loss_cls.mul_scalar(cfg.loss_cls_weight));
    out.push("loss_bbox", loss_bbox.mul_scalar(cfg.loss_bbox_weight));
    out.push(
        "loss_centerness",
        loss_ctr.mul_scalar(cfg.loss_centerness_weight),
    );
    out
}
