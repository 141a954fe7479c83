//! GFL head (Generalized Focal Loss V1): GN towers, one square anchor per
//! location, box sides predicted as 17-bin distributions (reg_max 16).

use burn::nn::conv::Conv2d;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::{prior_bias, DenseHead, LevelOutput, Tower};
use crate::nn::layers::{conv2d, ConvInit, Scale};

/// GFL head configuration (MMDet `GFLHead` defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GflHeadConfig {
    /// Number of object classes (sigmoid, no background channel).
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
    /// GroupNorm groups in the towers.
    #[serde(default = "g32")]
    pub gn_groups: usize,
    /// Largest distance bin (distances in stride units, 0..=reg_max).
    #[serde(default = "sixteen")]
    pub reg_max: usize,
    /// QFL weight.
    #[serde(default = "w1")]
    pub loss_cls_weight: f32,
    /// GIoU weight.
    #[serde(default = "w2")]
    pub loss_bbox_weight: f32,
    /// DFL weight.
    #[serde(default = "w025")]
    pub loss_dfl_weight: f32,
    /// ATSS assigner top-k per level.
    #[serde(default = "nine")]
    pub topk: usize,
}

pub(crate) fn c256() -> usize {
    256
}
pub(crate) fn four() -> usize {
    4
}
pub(crate) fn g32() -> usize {
    32
}
pub(crate) fn nine() -> usize {
    9
}
fn sixteen() -> usize {
    16
}
pub(crate) fn w1() -> f32 {
    1.0
}
pub(crate) fn w2() -> f32 {
    2.0
}
fn w025() -> f32 {
    0.25
}

impl GflHeadConfig {
    /// MMDet defaults for `num_classes`.
    pub fn new(num_classes: usize) -> Self {
        Self {
            num_classes,
            in_channels: 256,
            feat_channels: 256,
            stacked_convs: 4,
            gn_groups: 32,
            reg_max: 16,
            loss_cls_weight: 1.0,
            loss_bbox_weight: 2.0,
            loss_dfl_weight: 0.25,
            topk: 9,
        }
    }

    /// Build the head for `num_levels` FPN levels.
    pub fn init<B: Backend>(&self, num_levels: usize, device: &B::Device) -> GflHead<B> {
        let (cin, c) = (self.in_channels, self.feat_channels);
        let gn = Some(self.gn_groups);
        let n = ConvInit::Normal(0.01);
        GflHead {
            cls_convs: Tower::new(self.stacked_convs, cin, c, gn, device),
            reg_convs: Tower::new(self.stacked_convs, cin, c, gn, device),
            gfl_cls: conv2d(
                [c, self.num_classes],
                3,
                1,
                1,
                Some(prior_bias(0.01)),
                n,
                device,
            ),
            gfl_reg: conv2d([c, 4 * (self.reg_max + 1)], 3, 1, 1, Some(0.0), n, device),
            scales: (0..num_levels).map(|_| Scale::new(1.0, device)).collect(),
        }
    }
}

/// GFL head module.
#[derive(Module, Debug)]
pub struct GflHead<B: Backend> {
    /// Classification tower.
    pub cls_convs: Tower<B>,
    /// Regression tower.
    pub reg_convs: Tower<B>,
    /// Class logits predictor.
    pub gfl_cls: Conv2d<B>,
    /// Distribution logits predictor (`4·(reg_max+1)` channels, side-major).
    pub gfl_reg: Conv2d<B>,
    /// Per-level scale on the distribution logits.
    pub scales: Vec<Scale<B>>,
}

impl<B: Backend> DenseHead<B> for GflHead<B> {
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
            cls_score: self.gfl_cls.forward(cls_feat),
            bbox_pred: self.scales[level].forward(self.gfl_reg.forward(reg_feat)),
            centerness: None,
        }
    }
}
