//! ATSS head: GN towers, one square anchor per location, DeltaXYWH deltas
//! (stds 0.1/0.2) with a per-level Scale, and a centerness branch on the reg tower.

use burn::nn::conv::Conv2d;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::gfl::{c256, four, g32, nine, w1, w2};
use super::{prior_bias, DenseHead, LevelOutput, Tower};
use crate::nn::layers::{conv2d, ConvInit, Scale};

/// ATSS head configuration (MMDet `ATSSHead` defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtssHeadConfig {
    /// Number of object classes.
    pub num_classes: usize,
    /// FPN channels.
    #[serde(default = "c256")]
    pub in_channels: usize,
    /// Tower width.
    #[serde(default = "c256")]
    pub feat_channels: usize,
    /// Convs per tower.
    #[serde(default = "four")]
    pub stacked_convs: usize,
    /// GroupNorm groups.
    #[serde(default = "g32")]
    pub gn_groups: usize,
    /// Focal loss weight.
    #[serde(default = "w1")]
    pub loss_cls_weight: f32,
    /// GIoU weight.
    #[serde(default = "w2")]
    pub loss_bbox_weight: f32,
    /// Centerness BCE weight.
    #[serde(default = "w1")]
    pub loss_centerness_weight: f32,
    /// ATSS assigner top-k per level.
    #[serde(default = "nine")]
    pub topk: usize,
}

impl AtssHeadConfig {
    /// MMDet defaults for `num_classes`.
    pub fn new(num_classes: usize) -> Self {
        Self {
            num_classes,
            in_channels: 256,
            feat_channels: 256,
            stacked_convs: 4,
            gn_groups: 32,
            loss_cls_weight: 1.0,
            loss_bbox_weight: 2.0,
            loss_centerness_weight: 1.0,
            topk: 9,
        }
    }

    /// Build the head for `num_levels` FPN levels.
    pub fn init<B: Backend>(&self, num_levels: usize, device: &B::Device) -> AtssHead<B> {
        let (cin, c) = (self.in_channels, self.feat_channels);
        let gn = Some(self.gn_groups);
        let n = ConvInit::Normal(0.01);
        AtssHead {
            cls_convs: Tower::new(self.stacked_convs, cin, c, gn, device),
            reg_convs: Tower::new(self.stacked_convs, cin, c, gn, device),
            atss_cls: conv2d(
                [c, self.num_classes],
                3,
                1,
                1,
                Some(prior_bias(0.01)),
                n,
                device,
            ),
            atss_reg: conv2d([c, 4], 3, 1, 1, Some(0.0), n, device),
            atss_centerness: conv2d([c, 1], 3, 1, 1, Some(0.0), n, device),
            scales: (0..num_levels).map(|_| Scale::new(1.0, device)).collect(),
        }
    }
}

/// ATSS head module.
#[derive(Module, Debug)]
pub struct AtssHead<B: Backend> {
    /// Classification tower.
    pub cls_convs: Tower<B>,
    /// Regression tower.
    pub reg_convs: Tower<B>,
    /// Class logits.
    pub atss_cls: Conv2d<B>,
    /// Box deltas.
    pub atss_reg: Conv2d<B>,
    /// Centerness logit (on the reg tower).
    pub atss_centerness: Conv2d<B>,
    /// Per-level scale on the deltas.
    pub scales: Vec<Scale<B>>,
}

impl<B: Backend> DenseHead<B> for AtssHead<B> {
    fn towers(&self) -> (&Tower<B>, &Tower<B>) {
        (&self.cls_convs, &self.reg_convs)
    }

    fn predict_level(
        &self,
        cls_feat: Tensor<B, 4>,
        reg_feat: Tensor<B, 4>,
        level: usize,
    ) -> LevelOutput<B> {
        LevelOutput {
            cls_score: self.atss_cls.forward(cls_feat),
            bbox_pred: self.scales[level].forward(self.atss_reg.forward(reg_feat.clone())),
            centerness: Some(self.atss_centerness.forward(reg_feat)),
        }
    }
}
