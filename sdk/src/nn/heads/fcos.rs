//! FCOS head: anchor-free points, GN towers, `exp(Scale·x)` distances (or
//! `relu(Scale·x)·stride` with `norm_on_bbox`), centerness on the cls tower by default.

use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use super::gfl::{c256, four, g32, w1};
use super::{prior_bias, DenseHead, LevelOutput, Tower};
use crate::nn::layers::{conv2d, ConvInit, Scale};

/// FCOS head configuration (MMDet `FCOSHead`, "gn-head" variant without tricks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcosHeadConfig {
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
    /// Object size range per level, `(lo, hi]` on the largest side distance.
    #[serde(default = "regress_ranges")]
    pub regress_ranges: Vec<(f32, f32)>,
    /// Restrict positives to a radius around the GT centre.
    #[serde(default)]
    pub center_sampling: bool,
    /// Centre-sampling radius in strides.
    #[serde(default = "radius")]
    pub center_sample_radius: f32,
    /// Predict distances in stride units through a ReLU instead of exp.
    #[serde(default)]
    pub norm_on_bbox: bool,
    /// Centerness from the reg tower instead of the cls tower.
    #[serde(default)]
    pub centerness_on_reg: bool,
    /// Use GIoU instead of −log IoU for the box loss.
    #[serde(default)]
    pub giou_loss: bool,
    /// Focal loss weight.
    #[serde(default = "w1")]
    pub loss_cls_weight: f32,
    /// IoU loss weight.
    #[serde(default = "w1")]
    pub loss_bbox_weight: f32,
    /// Centerness BCE weight.
    #[serde(default = "w1")]
    pub loss_centerness_weight: f32,
}

fn regress_ranges() -> Vec<(f32, f32)> {
    vec![
        (-1.0, 64.0),
        (64.0, 128.0),
        (128.0, 256.0),
        (256.0, 512.0),
        (512.0, 1e8),
    ]
}
fn radius() -> f32 {
    1.5
}

impl FcosHeadConfig {
    /// MMDet defaults for `num_classes`.
    pub fn new(num_classes: usize) -> Self {
        Self {
            num_classes,
            in_channels: 256,
            feat_channels: 256,
            stacked_convs: 4,
            gn_groups: 32,
            regress_ranges: regress_ranges(),
            center_sampling: false,
            center_sample_radius: 1.5,
            norm_on_bbox: false,
            centerness_on_reg: false,
            giou_loss: false,
            loss_cls_weight: 1.0,
            loss_bbox_weight: 1.0,
            loss_centerness_weight: 1.0,
        }
    }

    /// Build the head for the given level strides.
    pub fn init<B: Backend>(&self, strides: &[f32], device: &B::Device) -> FcosHead<B> {
        let (cin, c) = (self.in_channels, self.feat_channels);
        let gn = Some(self.gn_groups);
        let n = ConvInit::Normal(0.01);
        FcosHead {
            cls_convs: Tower::new(self.stacked_convs, cin, c, gn, device),
            reg_convs: Tower::new(self.stacked_convs, cin, c, gn, device),
            conv_cls: conv2d(
                [c, self.num_classes],
                3,
                1,
                1,
                Some(prior_bias(0.01)),
                n,
                device,
            ),
            conv_reg: conv2d([c, 4], 3, 1, 1, Some(0.0), n, device),
            conv_centerness: conv2d([c, 1], 3, 1, 1, Some(0.0), n, device),
            scales: strides.iter().map(|_| Scale::new(1.0, device)).collect(),
            strides: strides.to_vec(),
            norm_on_bbox: self.norm_on_bbox,
            centerness_on_reg: self.centerness_on_reg,
        }
    }
}

/// FCOS head module.
#[derive(Module, Debug)]
pub struct FcosHead<B: Backend> {
    /// Classification tower.
    pub cls_convs: Tower<B>,
    /// Regression tower.
    pub reg_convs: Tower<B>,
    /// Class logits.
    pub conv_cls: Conv2d<B>,
    /// Raw distance predictor.
    pub conv_reg: Conv2d<B>,
    /// Centerness logit.
    pub conv_centerness: Conv2d<B>,
    /// Per-level scale.
    pub scales: Vec<Scale<B>>,
    /// Level strides (for `norm_on_bbox`).
    pub strides: Vec<f32>,
    /// See [`FcosHeadConfig::norm_on_bbox`].
    pub norm_on_bbox: bool,
    /// See [`FcosHeadConfig::centerness_on_reg`].
    pub centerness_on_reg: bool,
}

impl<B: Backend> DenseHead<B> for FcosHead<B> {
    fn towers(&self) -> (&Tower<B>, &Tower<B>) {
        (&self.cls_convs, &self.reg_convs)
    }

    /// `bbox_pred` is always in pixels: `exp(s·x)`, or `relu(s·x)·stride` with
    /// `norm_on_bbox` (IoU-type losses are scale-invariant, so training in
    /// pixels matches MMDet's stride-normalised targets).
    fn predict_level(
        &self,
        cls_feat: Tensor<B, 4>,
        reg_feat: Tensor<B, 4>,
        level: usize,
    ) -> LevelOutput<B> {
        let centerness_feat = if self.centerness_on_reg {
            reg_feat.clone()
        } else {
            cls_feat.clone()
        };
        let scaled = self.scales[level].forward(self.conv_reg.forward(reg_feat));
        let bbox_pred = if self.norm_on_bbox {
            relu(scaled).mul_scalar(self.strides[level])
        } else {
            scaled.exp()
        };
        LevelOutput {
            cls_score: self.conv_cls.forward(cls_feat),
            bbox_pred,
            centerness: Some(self.conv_centerness.forward(centerness_feat)),
        }
    }
}
