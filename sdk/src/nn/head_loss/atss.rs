//! ATSS losses: focal on valid anchors, GIoU on decoded positives weighted by
//! the centerness target, centerness BCE (spec §5.6).

use crate::boxes::{self, BBox};
use burn::prelude::*;

use super::anchor_batch::{atss_square_anchor_targets, BatchAnchorTargets};
use super::{
    flatten_outputs, index_tensor, label_tensor, rows_tensor, vec_tensor, zero_like_graph,
    FlatOutputs,
};
use crate::nn::coders::delta_xywh::{self, ATSS_STDS, ZERO_MEANS};
use crate::nn::heads::{AtssHeadConfig, LevelOutput};
use crate::nn::loss_dict::LossDict;
use crate::nn::losses::{
    binary_cross_entropy_with_logits, giou_loss, sigmoid_focal_loss, FOCAL_ALPHA, FOCAL_GAMMA,
};
use crate::nn::ImageMeta;
use crate::targets::fcos::centerness_target;

/// Centerness of an anchor centre inside its GT box (ATSS `centerness_target`).
pub fn anchor_centerness(anchor: &BBox, gt: &BBox) -> f32 {
    let (cx, cy) = boxes::center(anchor);
    centerness_target(&[cx - gt[0], cy - gt[1], gt[2] - cx, gt[3] - cy])
}

/// ATSS targets: one square anchor per location, ATSS assignment.
pub fn atss_targets<B: Backend>(
    cfg: &AtssHeadConfig,
    strides: &[f32],
    outputs: &[LevelOutput<B>],
    metas: &[ImageMeta],
) -> BatchAnchorTargets {
    atss_square_anchor_targets(cfg.topk, cfg.num_classes, strides, outputs, metas)
}

/// ATSS GT losses for one batch, from the batch's [`atss_targets`].
pub fn atss_loss<B: Backend>(
    cfg: &AtssHeadConfig,
    outputs: &[LevelOutput<B>],
    targets: &BatchAnchorTargets,
) -> LossDict<B> {
    let c = cfg.num_classes;
    let device = outputs[0].cls_score.device();
    let FlatOutputs { cls, reg, ctr } = flatten_outputs(outputs, c, 4);
    let ctr = ctr.expect("ATSS head predicts centerness");
    let num_pos = targets.num_pos();
    // Focal and centerness avg_factor: Σ_images max(num_pos_i, 1) (MMDet SamplingResult).
    let avg = targets.avg_factor();
    let (loss_bbox, loss_ctr) = if num_pos > 0 {
        let pos = index_tensor::<B>(&targets.pos_rows, &device);
        let pos_reg = reg.select(0, pos.clone());
        let pos_ctr = ctr.select(0, pos);
        let ctr_t: Vec<f32> = targets
            .pos_anchors
            .iter()
            .zip(&targets.pos_gt_boxes)
            .map(|(a, g)| anchor_centerness(a, g))
            .collect();
        let ctr_sum: f32 = ctr_t.iter().sum();
        let decoded = delta_xywh::decode(
            rows_tensor(&targets.pos_anchors, &device),
            pos_reg,
            ZERO_MEANS,
            ATSS_STDS,
            delta_xywh::default_max_ratio(),
        );
        let ctr_t = vec_tensor(ctr_t, &device);
        let loss_bbox = giou_loss(
            decoded,
            rows_tensor(&targets.pos_gt_boxes, &device),
            Some(ctr_t.clone()),
            Some(1.0),
        )
        .div_scalar(ctr_sum.max(1.0));
        let loss_ctr = binary_cross_entropy_with_logits(pos_ctr, ctr_t, None, Some(avg));
        (loss_bbox, loss_ctr)
    } else {
        (zero_like_graph(reg), zero_like_graph(ctr))
    };
    let loss_cls = sigmoid_focal_loss(
        cls,
        label_tensor(&targets.labels, &device),
        Some(vec_tensor(targets.label_weights.clone(), &device)),
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
