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
/// use crosskd_sdk::nn::layers::{conv2d, ConvInit};
/// use burn::backend::Flex;
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

/// `conv.forward(x)`, except that a strided 1×1 conv (a ResNet downsample
/// shortcut, or a caffe-style bottleneck's first conv) runs as a stride-1
/// conv on the subsampled input — the same numbers.
///
/// Why: burn 0.21's CUDA backend returns a wrong input gradient for 1×1
/// kernels with stride > 1 (relative error 1.0 against burn-flex, measured by
/// `trainer/tests/cuda_ops.rs` on an H200), which corrupted every backbone
/// gradient below a stage transition. Subsampling + 1×1/stride-1 only uses ops
/// whose backward agrees on every backend.
///
/// ```
/// use burn::prelude::*;
/// use crosskd_sdk::nn::layers::{conv2d, conv_forward, ConvInit};
/// type B = burn::backend::Flex;
/// let dev = Default::default();
/// let conv = conv2d::<B>([4, 8], 1, 2, 0, Some(0.1), ConvInit::Normal(0.1), &dev);
/// let x = Tensor::<B, 4>::ones([1, 4, 7, 5], &dev);
/// let (a, b) = (conv.forward(x.clone()), conv_forward(&conv, x));
/// assert_eq!(a.dims(), [1, 8, 4, 3]);
/// a.into_data().assert_approx_eq::<f32>(&b.into_data(), Default::default());
/// ```
pub fn conv_forward<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [sh, sw] = conv.stride;
    let unpadded = matches!(
        conv.padding,
        PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0)
    );
    let pointwise = conv.kernel_size == [1, 1] && conv.dilation == [1, 1] && unpadded;
    if !pointwise || [sh, sw] == [1, 1] {
        return conv.forward(x);
    }
    let bias = conv.bias.as_ref().map(|b| b.val());
    burn::tensor::module::conv2d(
        subsample(x, sh, sw),
        conv.weight.val(),
        bias,
        burn::tensor::ops::ConvOptions::new([1, 1], [0, 0], [1, 1], conv.groups),
    )
}

/// Every `sh`-th row and `sw`-th column, starting at 0 (`x[:, :, ::sh, ::sw]`),
/// through zero-padding to whole cells, a reshape and two narrows.
fn subsample<B: Backend>(x: Tensor<B, 4>, sh: usize, sw: usize) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let (ho, wo) = (h.div_ceil(sh), w.div_ceil(sw));
    let device = x.device();
    let mut x = x;
    if ho * sh > h {
        x = Tensor::cat(vec![x, Tensor::zeros([n, c, ho * sh - h, w], &device)], 2);
    }
    if wo * sw > w {
        x = Tensor::cat(
            vec![x, Tensor::zeros([n, c, ho * sh, wo * sw - w], &device)],
            3,
        );
    }
    x.reshape([n * c * ho, sh, wo, sw])
        .narrow(1, 0, 1)
        .narrow(3, 0, 1)
        .reshape([n, c, ho, wo])
}

#[cfg(test)]
mod strided_tests {
    use super::*;
    use burn::tensor::Distribution;

    /// Same outputs and same input/weight gradients as burn's own strided conv
    /// (on burn-flex, whose 1×1 stride-2 backward is right), for odd and even
    /// sizes and strides 2 and 3.
    #[test]
    fn subsampled_pointwise_conv_equals_strided_conv_with_gradients() {
        type AD = burn::backend::Autodiff<burn::backend::Flex>;
        let dev = Default::default();
        for (h, w, s) in [(8usize, 8usize, 2usize), (7, 5, 2), (9, 10, 3)] {
            let conv = conv2d::<AD>([3, 4], 1, s, 0, Some(0.2), ConvInit::Normal(0.5), &dev);
            let x = Tensor::<AD, 4>::random([2, 3, h, w], Distribution::Normal(0.0, 1.0), &dev)
                .require_grad();
            let r = Tensor::<AD, 4>::random(
                [2, 4, h.div_ceil(s), w.div_ceil(s)],
                Distribution::Normal(0.0, 1.0),
                &dev,
            );
            let ya = conv.forward(x.clone());
            let yb = conv_forward(&conv, x.clone());
            let ga = (ya.clone() * r.clone()).sum().backward();
            let gb = (yb.clone() * r).sum().backward();
            let close = |a: TensorData, b: TensorData| {
                a.assert_approx_eq::<f32>(&b, burn::tensor::Tolerance::absolute(1e-5))
            };
            close(ya.into_data(), yb.into_data());
            close(
                x.grad(&ga).unwrap().into_data(),
                x.grad(&gb).unwrap().into_data(),
            );
            let w = conv.weight.val();
            close(
                w.grad(&ga).unwrap().into_data(),
                w.grad(&gb).unwrap().into_data(),
            );
        }
    }
}
