//! RetinaNet losses: focal on valid, non-ignored anchors and L1 on
//! DeltaXYWH-encoded deltas of positives (spec §5.5).

use crate::{AnchorGenerator, DeltaXywhCoder};
use burn::prelude::*;

use super::anchor_batch::{anchor_batch_targets, AnchorAssigner, BatchAnchorTargets};
use super::{
    flatten_outputs, index_tensor, label_tensor, level_shapes, rows_tensor, vec_tensor,
    zero_like_graph, FlatOutputs,
};
use crate::nn::heads::{LevelOutput, RetinaHeadConfig};
use crate::nn::loss_dict::LossDict;
use crate::nn::losses::{l1_loss, sigmoid_focal_loss, FOCAL_ALPHA, FOCAL_GAMMA};
use crate::nn::ImageMeta;
use crate::targets::max_iou::MaxIouAssigner;

/// RetinaNet targets: 9 anchors per location, max-IoU assignment (with ignores).
pub fn retinanet_targets<B: Backend>(
    cfg: &RetinaHeadConfig,
    strides: &[f32],
    outputs: &[LevelOutput<B>],
    metas: &[ImageMeta],
) -> BatchAnchorTargets {
    anchor_batch_targets(
        &AnchorGenerator::retinanet(strides),
        &level_shapes(outputs),
        metas,
        &AnchorAssigner::MaxIou(MaxIouAssigner::default()),
        cfg.num_classes,
    )
}

/// RetinaNet GT losses for one batch, from the batch's [`retinanet_targets`].
pub fn retinanet_loss<B: Backend>(
    cfg: &RetinaHeadConfig,
    outputs: &[LevelOutput<B>],
    targets: &BatchAnchorTargets,
) -> LossDict<B> {
    let c = cfg.num_classes;
    let device = outputs[0].cls_score.device();
    let FlatOutputs { cls, reg, .. } = flatten_outputs(outputs, c, 4);
    // MMDet's SamplingResult.avg_factor is max(num_pos, 1) per image, summed.
    let avg = targets.avg_factor();
    let num_pos = targets.num_pos();
    let loss_bbox = if num_pos > 0 {
        let coder = DeltaXywhCoder::default();
        let deltas: Vec<[f32; 4]> = targets
            .pos_anchors
            .iter()
            .zip(&targets.pos_gt_boxes)
            .map(|(a, g)| coder.encode(a, g))
            .collect();
        let pos_reg = reg.select(0, index_tensor::<B>(&targets.pos_rows, &device));
        l1_loss(pos_reg, rows_tensor(&deltas, &device), None, Some(avg))
    } else {
        zero_like_graph(reg)
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
    out
}
