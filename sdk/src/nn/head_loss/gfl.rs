//! GFL losses: QFL (β 2) on all valid anchors with IoU quality targets, GIoU
//! and DFL on positives weighted by the max class score (spec §5.4).

use crate::boxes;
use crate::coders::bbox2distance_eps;
use burn::prelude::*;
use burn::tensor::activation::sigmoid;

use super::anchor_batch::{atss_square_anchor_targets, BatchAnchorTargets};
use super::{
    flatten_outputs, index_tensor, label_tensor, rows_tensor, to_vec, vec_tensor, zero_like_graph,
    FlatOutputs,
};
use crate::nn::coders::{distance2bbox, integral};
use crate::nn::heads::{GflHeadConfig, LevelOutput};
use crate::nn::loss_dict::LossDict;
use crate::nn::losses::distribution_focal::distribution_focal_loss;
use crate::nn::losses::iou::giou_loss;
use crate::nn::losses::quality_focal::{quality_focal_loss, QFL_BETA};
use crate::nn::ImageMeta;

/// Distance targets are clamped to `reg_max - 0.1` (MMDet `bbox2distance` eps).
const DFL_EPS: f32 = 0.1;

/// GFL targets: one square anchor per location, ATSS assignment.
pub fn gfl_targets<B: Backend>(
    cfg: &GflHeadConfig,
    strides: &[f32],
    outputs: &[LevelOutput<B>],
    metas: &[ImageMeta],
) -> BatchAnchorTargets {
    atss_square_anchor_targets(cfg.topk, cfg.num_classes, strides, outputs, metas)
}

/// GFL GT losses for one batch, from the batch's [`gfl_targets`].
pub fn gfl_loss<B: Backend>(
    cfg: &GflHeadConfig,
    outputs: &[LevelOutput<B>],
    targets: &BatchAnchorTargets,
) -> LossDict<B> {
    let c = cfg.num_classes;
    let r = cfg.reg_max;
    let device = outputs[0].cls_score.device();
    let FlatOutputs { cls, reg, .. } = flatten_outputs(outputs, c, 4 * (r + 1));
    let num_pos = targets.num_pos();
    // QFL avg_factor: Σ_images max(num_pos_i, 1) (MMDet SamplingResult), not max(Σ num_pos, 1).
    let avg_cls = targets.avg_factor();

    let mut score = vec![0.0f32; targets.labels.len()];
    let (loss_bbox, loss_dfl) = if num_pos > 0 {
        let pos = index_tensor::<B>(&targets.pos_rows, &device);
        let pos_reg = reg.select(0, pos.clone());
        let pos_cls = cls.clone().select(0, pos);
        // Box losses are weighted by the detached max class probability.
        let weight = sigmoid(pos_cls.detach()).max_dim(1).reshape([num_pos]);
        // Everything in stride units, as MMDet: anchor centre / stride, GT / stride.
        let centers: Vec<[f32; 2]> = targets
            .pos_anchors
            .iter()
            .zip(&targets.pos_strides)
            .map(|(a, s)| {
                let (cx, cy) = boxes::center(a);
                [cx / s, cy / s]
            })
            .collect();
        let gts: Vec<[f32; 4]> = targets
            .pos_gt_boxes
            .iter()
            .zip(&targets.pos_strides)
            .map(|(g, s)| [g[0] / s, g[1] / s, g[2] / s, g[3] / s])
            .collect();
        let pos_decoded =
            distance2bbox(rows_tensor(&centers, &device), integral(pos_reg.clone(), r));
        // QFL quality target: IoU of the detached decoded box with its GT.
        let decoded_host = to_vec(pos_decoded.clone().detach());
        for (k, &row) in targets.pos_rows.iter().enumerate() {
            let b = [
                decoded_host[4 * k],
                decoded_host[4 * k + 1],
                decoded_host[4 * k + 2],
                decoded_host[4 * k + 3],
            ];
            score[row] = boxes::iou(&b, &gts[k]);
        }
        let corner_targets: Vec<f32> = centers
            .iter()
            .zip(&gts)
            .flat_map(|(p, g)| bbox2distance_eps(*p, g, Some(r as f32), DFL_EPS))
            .collect();
        let weight_sum = weight.clone().sum().into_scalar().elem::<f32>();
        let avg = weight_sum.max(1.0);
        let loss_bbox = giou_loss(
            pos_decoded,
            rows_tensor(&gts, &device),
            Some(weight.clone()),
            Some(1.0),
        );
        let weight4 = weight
            .reshape([num_pos, 1])
            .repeat_dim(1, 4)
            .reshape([num_pos * 4]);
        let loss_dfl = distribution_focal_loss(
            pos_reg.reshape([num_pos * 4, r + 1]),
            vec_tensor(corner_targets, &device),
            Some(weight4),
            Some(4.0),
        );
        (loss_bbox.div_scalar(avg), loss_dfl.div_scalar(avg))
    } else {
        (zero_like_graph(reg.clone()), zero_like_graph(reg))
    };
    let loss_cls = quality_focal_loss(
        cls,
        label_tensor(&targets.labels, &device),
        vec_tensor(score, &device),
        Some(vec_tensor(targets.label_weights.clone(), &device)),
        Some(avg_cls),
        QFL_BETA,
    );
    let mut out = LossDict::default();
    out.push("loss_cls", loss_cls.mul_scalar(cfg.loss_cls_weight));
    out.push("loss_bbox", loss_bbox.mul_scalar(cfg.loss_bbox_weight));
    out.push("loss_dfl", loss_dfl.mul_scalar(cfg.loss_dfl_weight));
    out
}
