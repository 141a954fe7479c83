//! Host copies of convolution parameters, and BatchNorm folding.
//!
//! An eval-mode BN after a conv is an affine map per output channel,
//! `y = conv(x) * scale + shift`, so it folds into the conv:
//! `w' = w * scale[o]`, `b' = b * scale[o] + shift[o]`. The exported graph has
//! no BatchNormalization node left (smaller, faster, and one less op for the
//! quantizer to handle).
//!
//! ```
//! use crosskd_trainer::export::bn_fold::ConvParams;
//! let mut conv = ConvParams::new(vec![1.0, 2.0], [2, 1, 1, 1], None, [1, 1], [0, 0]);
//! conv.fold_affine(&[2.0, 0.5], &[1.0, -1.0]);
//! assert_eq!(conv.weight, vec![2.0, 1.0]);
//! assert_eq!(conv.bias, Some(vec![1.0, -1.0]));
//! ```

use burn::nn::conv::Conv2d;
use burn::nn::PaddingConfig2d;
use burn::prelude::*;

use super::ExportError;
use crate::model::layers::EvalBatchNorm2d;

/// A 2-D convolution's weights and geometry on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvParams {
    /// `[out, in, kh, kw]` row-major.
    pub weight: Vec<f32>,
    /// Weight dims `[out, in, kh, kw]`.
    pub dims: [usize; 4],
    /// Per-output-channel bias.
    pub bias: Option<Vec<f32>>,
    /// `[sh, sw]`.
    pub stride: [usize; 2],
    /// Symmetric `[ph, pw]` padding.
    pub padding: [usize; 2],
}

/// Host values of a float tensor.
pub fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("converted to f32 just before")
}

impl ConvParams {
    /// Parameters from raw parts.
    pub fn new(
        weight: Vec<f32>,
        dims: [usize; 4],
        bias: Option<Vec<f32>>,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Self {
        Self {
            weight,
            dims,
            bias,
            stride,
            padding,
        }
    }

    /// Copy a burn `Conv2d`'s parameters. `what` names the layer in errors.
    pub fn from_conv<B: Backend>(conv: &Conv2d<B>, what: &str) -> Result<Self, ExportError> {
        let unsupported = |why: String| ExportError::Unsupported {
            layer: what.to_string(),
            why,
        };
        if conv.groups != 1 || conv.dilation != [1, 1] {
            return Err(unsupported(format!(
                "groups = {}, dilation = {:?}: only plain convolutions are exported",
                conv.groups, conv.dilation
            )));
        }
        let padding = match conv.padding {
            PaddingConfig2d::Explicit(t, l, b, r) if t == b && l == r => [t, l],
            PaddingConfig2d::Valid => [0, 0],
            ref p => return Err(unsupported(format!("padding {p:?} is not symmetric"))),
        };
        let dims = conv.weight.dims();
        Ok(Self {
            weight: host(conv.weight.val()),
            dims,
            bias: conv.bias.as_ref().map(|b| host(b.val())),
            stride: conv.stride,
            padding,
        })
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.dims[0]
    }

    /// Fold `y * scale[o] + shift[o]` into the weights and bias.
    pub fn fold_affine(&mut self, scale: &[f32], shift: &[f32]) {
        let per_out = self.weight.len() / self.dims[0];
        for (o, w) in self.weight.chunks_exact_mut(per_out).enumerate() {
            w.iter_mut().for_each(|v| *v *= scale[o]);
        }
        let bias = self.bias.take().unwrap_or_else(|| vec![0.0; self.dims[0]]);
        self.bias = Some(
            bias.iter()
                .zip(scale.iter().zip(shift))
                .map(|(b, (s, t))| b * s + t)
                .collect(),
        );
    }

    /// Fold an eval-mode BatchNorm that follows this conv.
    pub fn fold_bn<B: Backend>(mut self, bn: &EvalBatchNorm2d<B>) -> Self {
        let (scale, shift) = bn.scale_shift();
        self.fold_affine(&host(scale), &host(shift));
        self
    }

    /// Spatial output size for an `h × w` input.
    pub fn out_hw(&self, h: usize, w: usize) -> (usize, usize) {
        let [kh, kw] = [self.dims[2], self.dims[3]];
        (
            (h + 2 * self.padding[0] - kh) / self.stride[0] + 1,
            (w + 2 * self.padding[1] - kw) / self.stride[1] + 1,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Flex;
    use crate::model::layers::{conv2d, ConvInit, EvalBatchNorm2dConfig};
    use burn::module::Param;
    use burn::tensor::Distribution;

    #[test]
    fn folded_conv_equals_conv_then_bn() {
        let device = Default::default();
        let conv = conv2d::<Flex>([3, 4], 3, 2, 1, None, ConvInit::Normal(0.3), &device);
        let mut bn = EvalBatchNorm2dConfig::new(4).init::<Flex>(&device);
        let r = |lo: f64, hi: f64| {
            Param::from_tensor(Tensor::<Flex, 1>::random(
                [4],
                Distribution::Uniform(lo, hi),
                &device,
            ))
        };
        (bn.gamma, bn.beta, bn.running_mean, bn.running_var) =
            (r(0.5, 2.0), r(-1.0, 1.0), r(-1.0, 1.0), r(0.2, 3.0));
        let x = Tensor::<Flex, 4>::random([1, 3, 7, 6], Distribution::Normal(0.0, 1.0), &device);
        let reference = host(bn.forward(conv.forward(x.clone())));

        let p = ConvParams::from_conv(&conv, "t").unwrap().fold_bn(&bn);
        assert_eq!(p.out_hw(7, 6), (4, 3));
        let mut folded = conv2d::<Flex>([3, 4], 3, 2, 1, Some(0.0), ConvInit::Normal(0.3), &device);
        folded.weight = Param::from_tensor(Tensor::from_data(
            burn::tensor::TensorData::new(p.weight.clone(), p.dims),
            &device,
        ));
        folded.bias = Some(Param::from_tensor(Tensor::from_floats(
            p.bias.clone().unwrap().as_slice(),
            &device,
        )));
        let got = host(folded.forward(x));
        for (a, b) in got.iter().zip(&reference) {
            assert!((a - b).abs() < 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
}
