//! `ConvModule`: conv → optional GroupNorm → ReLU, as in MMCV.
//!
//! The pre-activation output (after conv + norm, before ReLU) is exposed
//! separately because CrossKD holds the student's tower feature exactly there.

use burn::nn::conv::Conv2d;
use burn::nn::{GroupNorm, GroupNormConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::batch_broadcast::group_norm;
use super::conv::{conv2d, ConvInit};

/// Configuration of a [`ConvModule`].
#[derive(Config, Debug)]
pub struct ConvModuleConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Number of GroupNorm groups; `None` = no norm (and a conv bias).
    pub gn_groups: Option<usize>,
    /// Std of the normal weight init (dense heads: 0.01).
    #[config(default = 0.01)]
    pub init_std: f64,
}

/// conv3×3 (pad 1) → [GN] → ReLU.
#[derive(Module, Debug)]
pub struct ConvModule<B: Backend> {
    /// The 3×3 convolution (bias only when there is no norm).
    pub conv: Conv2d<B>,
    /// Optional GroupNorm.
    pub gn: Option<GroupNorm<B>>,
}

impl ConvModuleConfig {
    /// Build the module on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ConvModule<B> {
        let bias = if self.gn_groups.is_some() {
            None
        } else {
            Some(0.0)
        };
        ConvModule {
            conv: conv2d(
                [self.in_channels, self.out_channels],
                3,
                1,
                1,
                bias,
                ConvInit::Normal(self.init_std),
                device,
            ),
            gn: self
                .gn_groups
                .map(|g| GroupNormConfig::new(g, self.out_channels).init(device)),
        }
    }
}

impl<B: Backend> ConvModule<B> {
    /// conv + norm, before the ReLU (the CrossKD hold point).
    pub fn forward_pre_act(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let y = self.conv.forward(x);
        match &self.gn {
            Some(gn) => group_norm(gn, y),
            None => y,
        }
    }

    /// conv + norm + ReLU.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        relu(self.forward_pre_act(x))
    }
}
