//! RetinaNet head: plain (no norm) towers, 9 anchors per location, sigmoid
//! focal loss and L1 on DeltaXYWH-encoded deltas.

use burn::nn::conv::Conv2d;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::gfl::{c256, four, w1};
use super::{prior_bias, DenseHead, LevelOutput, Tower};
use crate::nn::layers::{conv2d, ConvInit};

/// RetinaNet head configuration (MMDet `RetinaHead` defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetinaHeadConfig {
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
    /// Focal loss weight.
    #[serde(default = "w1")]
    pub loss_cls_weight: f32,
    /// L1 weight.
    #[serde(default = "w1")]
    pub loss_bbox_weight: f32,
}

impl RetinaHeadConfig {
    /// MMDet defaults for `num_classes`.
    pub fn new(num_classes: usize) -> Self {
        Self {
            num_classes,
            in_channels: 256,
            feat_channels: 256,
            stacked_convs: 4,
            loss_cls_weight: 1.0,
            loss_bbox_weight: 1.0,
        }
    }

    /// Anchors per location (3 scales × 3 ratios).
    pub const NUM_ANCHORS: usize = 9;

    /// Build the head.
    pub fn init<B: Backend>(&self, device: &B::Device) -> RetinaHead<B> {
        let (cin, c, a) = (self.in_channels, self.feat_channels, Self::NUM_ANCHORS);
        let n = ConvInit::Normal(0.01);
        RetinaHead {
            cls_convs: Tower::new(self.stacked_convs, cin, c, None, device),
            reg_convs: Tower::new(self.stacked_convs, cin, c, None, device),
            retina_cls: conv2d(
                [c, a * self.num_classes],
                3,
                1,
                1,
                Some(prior_bias(0.01)),
                n,
                device,
            ),
            retina_reg: conv2d([c, a * 4], 3, 1, 1, Some(0.0), n, device),
        }
    }
}

/// RetinaNet head module.
#[derive(Module, Debug)]
pub struct RetinaHead<B: Backend> {
    /// Classification tower.
    pub cls_convs: Tower<B>,
    /// Regression tower.
    pub reg_convs: Tower<B>,
    /// Class logits, `A·C` channels (anchor-major).
    pub retina_cls: Conv2d<B>,
    /// Deltas, `A·4` channels.
    pub retina_reg: Conv2d<B>,
}

impl<B: Backend> DenseHead<B> for RetinaHead<B> {
    fn towers(&self) -> (&Tower<B>, &Tower<B>) {
        (&self.cls_convs, &self.reg_convs)
    }

    fn predict_level(
        &self,
        cls_feat: Tensor<B, 4>,
        reg_feat: Tensor<B, 4>,
        _level: usize,
    ) -> LevelOutput<B> {
        LevelOutput {
            cls_score: self.retina_cls.forward(cls_feat),
            bbox_pred: self.retina_reg.forward(reg_feat),
            centerness: None,
        }
    }
}
