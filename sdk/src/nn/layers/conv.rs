//! Conv2d construction with MMDetection's initialisation schemes.

use burn::module::{Initializer, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::prelude::*;

/// Weight initialisation of a convolution (biases are set separately).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConvInit {
    /// Normal(0, std): dense-head convs use std 0.01.
    Normal(f64),
    /// Xavier-uniform: FPN convs.
    XavierUniform,
    /// Kaiming-normal, fan-out, ReLU gain: torchvision ResNet convs.
    KaimingNormalFanOut,
}

impl ConvInit {
    fn initializer(self) -> Initializer {
        match self {
            ConvInit::Normal(std) => Initializer::Normal { mean: 0.0, std },
            ConvInit::XavierUniform => Initializer::XavierUniform { gain: 1.0 },
            ConvInit::KaimingNormalFanOut => Initializer::KaimingNormal {
                gain: std::f64::consts::SQRT_2,
                fan_out_only: true,
            },
        }
    }
}

/// A square `k×k` convolution with symmetric padding, weight init `init` and
/// (when `bias_value` is `Some`) a bias filled with that constant.
///
/// ```
/// use crosskd_trainer::model::layers::{conv2d, ConvInit};
/// use crosskd_trainer::backend::Flex;
/// let conv = conv2d::<Flex>([8, 16], 3, 1, 1, Some(0.0), ConvInit::Normal(0.01), &Default::default());
/// assert_eq!(conv.weight.dims(), [16, 8, 3, 3]);
/// ```
pub fn conv2d<B: Backend>(
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    padding: usize,
    bias_value: Option<f64>,
    init: ConvInit,
    device: &B::Device,
) -> Conv2d<B> {
    let mut conv = Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .with_bias(bias_value.is_some())
        .with_initializer(init.initializer())
        .init(device);
    if let Some(v) = bias_value {
        conv.bias = Some(Param::from_tensor(Tensor::full([channels[1]], v, device)));
    }
    conv
}
