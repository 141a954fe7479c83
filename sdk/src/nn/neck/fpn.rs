//! Feature Pyramid Network (MMDetection's `FPN` with `start_level=1`,
//! `num_outs=5`): lateral 1×1 convs on C3..C5, nearest top-down upsampling,
//! 3×3 output convs, and stride-2 extra convs for P6 and P7.

use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use serde::{Deserialize, Serialize};

use crate::nn::layers::{conv2d, ConvInit};

/// Source of the first extra level (P6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ExtraConvsOn {
    /// P6 = conv(P5 output) — every CrossKD student.
    #[default]
    OnOutput,
    /// P6 = conv(C5) — stock RetinaNet teachers.
    OnInput,
}

/// FPN configuration (`[model.neck]`; `in_channels` is filled from the backbone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FpnConfig {
    /// Channels of the backbone levels used (C3, C4, C5).
    #[serde(default)]
    pub in_channels: Vec<usize>,
    /// Output channels of every level.
    pub out_channels: usize,
    /// Total number of outputs (inputs + extra stride-2 convs).
    #[serde(default = "five")]
    pub num_outs: usize,
    /// Where P6 comes from.
    #[serde(default)]
    pub extra_convs_on: ExtraConvsOn,
    /// ReLU before every extra conv after the first (FCOS).
    #[serde(default)]
    pub relu_before_extra_convs: bool,
}

fn five() -> usize {
    5
}

/// Feature pyramid: `[C3, C4, C5] → [P3, …, P7]`.
#[derive(Module, Debug)]
pub struct Fpn<B: Backend> {
    /// 1×1 lateral convs, one per input level.
    pub lateral_convs: Vec<Conv2d<B>>,
    /// 3×3 output convs, one per output level (extra levels last, stride 2).
    pub fpn_convs: Vec<Conv2d<B>>,
    /// P6 source.
    pub extra_on_input: bool,
    /// ReLU before extra convs after the first.
    pub relu_before_extra_convs: bool,
}

impl FpnConfig {
    /// A 5-level FPN with extra convs on the P5 output.
    pub fn new(in_channels: Vec<usize>, out_channels: usize) -> Self {
        Self {
            in_channels,
            out_channels,
            num_outs: 5,
            extra_convs_on: ExtraConvsOn::OnOutput,
            relu_before_extra_convs: false,
        }
    }

    /// Build the FPN with Xavier-uniform convs and zero biases.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Fpn<B> {
        let out = self.out_channels;
        let xavier = ConvInit::XavierUniform;
        let lateral_convs = self
            .in_channels
            .iter()
            .map(|&c| conv2d([c, out], 1, 1, 0, Some(0.0), xavier, device))
            .collect();
        let mut fpn_convs: Vec<Conv2d<B>> = (0..self.in_channels.len())
            .map(|_| conv2d([out, out], 3, 1, 1, Some(0.0), xavier, device))
            .collect();
        let on_input = self.extra_convs_on == ExtraConvsOn::OnInput;
        for i in self.in_channels.len()..self.num_outs {
            let first = i == self.in_channels.len();
            let cin = if first && on_input {
                *self.in_channels.last().unwrap_or(&out)
            } else {
                out
            };
            fpn_convs.push(conv2d([cin, out], 3, 2, 1, Some(0.0), xavier, device));
        }
        Fpn {
            lateral_convs,
            fpn_convs,
            extra_on_input: on_input,
            relu_before_extra_convs: self.relu_before_extra_convs,
        }
    }
}

/// Nearest-neighbour upsampling of `x` to `[h, w]` (`src = floor(dst · in / out)`).
///
/// An exact ×2 — every FPN step at input sizes that are multiples of 32 — is a
/// reshape, a broadcast and a reshape, whose backward is a plain sum. Why not
/// `interpolate`: burn 0.21's CUDA backward of nearest interpolation returns
/// wrong input gradients when the incoming gradient is channels-last in memory
/// (what a conv's backward produces), which corrupted every gradient below the
/// FPN's top-down path (`trainer/tests/cuda_ops.rs`). Other sizes still use it.
///
/// ```
/// use burn::prelude::*;
/// use crosskd_sdk::nn::neck::upsample_nearest;
/// type B = burn::backend::Flex;
/// let x = Tensor::<B, 4>::from_floats([[[[1.0, 2.0]]]], &Default::default());
/// let y: Vec<f32> = upsample_nearest(x, [2, 4]).into_data().to_vec().unwrap();
/// assert_eq!(y, [1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]);
/// ```
pub fn upsample_nearest<B: Backend>(x: Tensor<B, 4>, [h, w]: [usize; 2]) -> Tensor<B, 4> {
    let [n, c, xh, xw] = x.dims();
    if [h, w] == [2 * xh, 2 * xw] {
        return x
            .reshape([n, c, xh, 1, xw, 1])
            .expand([n, c, xh, 2, xw, 2])
            .reshape([n, c, h, w]);
    }
    interpolate(
        x,
        [h, w],
        InterpolateOptions::new(InterpolateMode::Nearest).with_align_corners(false),
    )
}

impl<B: Backend> Fpn<B> {
    /// Number of output levels.
    pub fn num_outs(&self) -> usize {
        self.fpn_convs.len()
    }

    /// Top-down fusion and extra levels.
    pub fn forward(&self, inputs: Vec<Tensor<B, 4>>) -> Vec<Tensor<B, 4>> {
        let n_in = self.lateral_convs.len();
        let c5 = inputs[n_in - 1].clone();
        let mut laterals: Vec<Tensor<B, 4>> = self
            .lateral_convs
            .iter()
            .zip(inputs)
            .map(|(conv, x)| conv.forward(x))
            .collect();
        for i in (1..n_in).rev() {
            let [_, _, h, w] = laterals[i - 1].dims();
            // Nearest upsampling to the lower level's exact size (MMDet: F.interpolate(size=...)).
            let up = upsample_nearest(laterals[i].clone(), [h, w]);
            laterals[i - 1] = laterals[i - 1].clone() + up;
        }
        let mut outs: Vec<Tensor<B, 4>> = laterals
            .into_iter()
            .zip(&self.fpn_convs)
            .map(|(x, conv)| conv.forward(x))
            .collect();
        for i in n_in..self.fpn_convs.len() {
            let x = if i == n_in {
                if self.extra_on_input {
                    c5.clone()
                } else {
                    outs[i - 1].clone()
                }
            } else if self.relu_before_extra_convs {
                relu(outs[i - 1].clone())
            } else {
                outs[i - 1].clone()
            };
            outs.push(self.fpn_convs[i].forward(x));
        }
        outs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::{Distribution, Tolerance};

    type AD = Autodiff<Flex>;

    /// The reshape/broadcast form equals burn's nearest `interpolate` exactly,
    /// values and input gradients, for ×2 (square and not) and a non-×2 size.
    #[test]
    fn upsample_nearest_equals_interpolate_with_gradients() {
        let dev = Default::default();
        for (shape, size) in [
            ([2, 3, 3, 2], [6, 4]),
            ([1, 4, 5, 5], [10, 10]),
            ([1, 2, 3, 5], [7, 9]),
        ] {
            let x =
                Tensor::<AD, 4>::random(shape, Distribution::Normal(0.0, 1.0), &dev).require_grad();
            let r = Tensor::<AD, 4>::random(
                [shape[0], shape[1], size[0], size[1]],
                Distribution::Normal(0.0, 1.0),
                &dev,
            );
            let a = upsample_nearest(x.clone(), size);
            let b = interpolate(
                x.clone(),
                size,
                InterpolateOptions::new(InterpolateMode::Nearest).with_align_corners(false),
            );
            let ga = (a.clone() * r.clone()).sum().backward();
            let gb = (b.clone() * r).sum().backward();
            a.into_data().assert_eq(&b.into_data(), true);
            x.grad(&ga).unwrap().into_data().assert_approx_eq::<f32>(
                &x.grad(&gb).unwrap().into_data(),
                Tolerance::absolute(1e-5),
            );
        }
    }
}
