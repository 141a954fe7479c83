//! BatchNorm that always uses its running statistics (MMDetection's `norm_eval=True`).
//!
//! Detection backbones are fine-tuned with tiny per-GPU batches, so batch
//! statistics are useless: every BN layer stays in eval mode during training.
//! The affine parameters stay trainable (pytorch-style backbones) unless the
//! module is frozen with `no_grad()`.

use burn::module::Param;
use burn::prelude::*;

use super::batch_broadcast::channel_vector;

/// Configuration of an [`EvalBatchNorm2d`].
#[derive(Config, Debug)]
pub struct EvalBatchNorm2dConfig {
    /// Number of channels.
    pub num_features: usize,
    /// Added to the running variance (torchvision: 1e-5).
    #[config(default = 1e-5)]
    pub epsilon: f64,
}

/// BatchNorm2d in permanent eval mode: `y = (x - mean) / sqrt(var + eps) * gamma + beta`.
#[derive(Module, Debug)]
pub struct EvalBatchNorm2d<B: Backend> {
    /// Scale (`weight` in torchvision).
    pub gamma: Param<Tensor<B, 1>>,
    /// Shift (`bias` in torchvision).
    pub beta: Param<Tensor<B, 1>>,
    /// Running mean; never trained.
    pub running_mean: Param<Tensor<B, 1>>,
    /// Running variance; never trained.
    pub running_var: Param<Tensor<B, 1>>,
    /// Variance epsilon.
    pub epsilon: f64,
}

impl EvalBatchNorm2dConfig {
    /// Identity-initialised BN (gamma 1, beta 0, mean 0, var 1).
    pub fn init<B: Backend>(&self, device: &B::Device) -> EvalBatchNorm2d<B> {
        let c = self.num_features;
        let constant = |t: Tensor<B, 1>| Param::from_tensor(t).set_require_grad(false);
        EvalBatchNorm2d {
            gamma: Param::from_tensor(Tensor::ones([c], device)),
            beta: Param::from_tensor(Tensor::zeros([c], device)),
            running_mean: constant(Tensor::zeros([c], device)),
            running_var: constant(Tensor::ones([c], device)),
            epsilon: self.epsilon,
        }
    }
}

impl<B: Backend> EvalBatchNorm2d<B> {
    /// Per-channel `(scale, shift)` such that `y = x * scale + shift`; also what
    /// BN folding into the preceding conv uses at export.
    pub fn scale_shift(&self) -> (Tensor<B, 1>, Tensor<B, 1>) {
        let inv_std = self
            .running_var
            .val()
            .detach()
            .add_scalar(self.epsilon)
            .sqrt()
            .recip();
        let scale = self.gamma.val() * inv_std;
        let shift = self.beta.val() - self.running_mean.val().detach() * scale.clone();
        (scale, shift)
    }

    /// Normalise an `[N, C, H, W]` tensor.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let n = x.dims()[0];
        let (scale, shift) = self.scale_shift();
        x * channel_vector(scale, n) + channel_vector(shift, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn uses_running_statistics() {
        let device = Default::default();
        let mut bn = EvalBatchNorm2dConfig::new(2).init::<Flex>(&device);
        bn.running_mean = Param::from_tensor(Tensor::from_floats([1.0, -2.0], &device));
        bn.running_var = Param::from_tensor(Tensor::from_floats([4.0, 0.25], &device));
        bn.gamma = Param::from_tensor(Tensor::from_floats([2.0, 1.0], &device));
        bn.beta = Param::from_tensor(Tensor::from_floats([0.5, 0.0], &device));
        let x = Tensor::<Flex, 4>::from_floats([[[[3.0]], [[-1.0]]]], &device);
        let y: Vec<f32> = bn.forward(x).into_data().to_vec().unwrap();
        // ch0: (3-1)/sqrt(4+1e-5)*2+0.5 ≈ 2.5; ch1: (-1+2)/sqrt(0.25+1e-5) ≈ 2.0
        assert!((y[0] - 2.5).abs() < 1e-4, "{y:?}");
        assert!((y[1] - 2.0).abs() < 1e-4, "{y:?}");
    }
}
