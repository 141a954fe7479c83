//! Global-norm gradient clipping (PyTorch's `clip_grad_norm_`, MMDet's `grad_clip`).
//!
//! burn's built-in clipping works per tensor; detection recipes clip the L2
//! norm of *all* gradients together, which rescales every tensor by the same factor.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

struct Norm<'a> {
    grads: &'a GradientsParams,
    sum_sq: f64,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Norm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            self.sum_sq += g.powi_scalar(2).sum().into_scalar().elem::<f64>();
        }
    }
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f32,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.factor));
        }
    }
}

/// L2 norm of all gradients of `module`'s parameters.
pub fn grad_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &GradientsParams,
) -> f64 {
    let mut v = Norm { grads, sum_sq: 0.0 };
    module.visit(&mut v);
    v.sum_sq.sqrt()
}

/// Scale all gradients so their global L2 norm is at most `max_norm`; returns
/// the norm before clipping (factor `max_norm / (norm + 1e-6)`, as PyTorch).
pub fn clip_grad_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f32,
) -> f64 {
    let norm = grad_norm(module, grads);
    let factor = max_norm as f64 / (norm + 1e-6);
    if factor < 1.0 {
        let mut v = Scale {
            grads,
            factor: factor as f32,
        };
        module.visit(&mut v);
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::FlexAutodiff;
    use burn::nn::{Linear, LinearConfig};

    #[test]
    fn clips_the_global_norm_by_one_factor() {
        let device = Default::default();
        let lin: Linear<FlexAutodiff> = LinearConfig::new(2, 1).init(&device);
        let x = Tensor::<FlexAutodiff, 2>::from_floats([[3.0, 4.0]], &device);
        // loss = w·x + b → dL/dw = x = (3, 4), dL/db = 1: global norm sqrt(9 + 16 + 1) = sqrt(26).
        let loss = lin.forward(x).sum();
        let mut grads = GradientsParams::from_grads(loss.backward(), &lin);
        let norm = clip_grad_norm(&lin, &mut grads, 1.0);
        assert!((norm - 26f64.sqrt()).abs() < 1e-5);
        let after = grad_norm(&lin, &grads);
        assert!((after - 1.0).abs() < 1e-4, "{after}");
        let gw: Vec<f32> = grads
            .get::<crate::backend::Flex, 2>(lin.weight.id)
            .unwrap()
            .into_data()
            .to_vec()
            .unwrap();
        // Direction kept: (3, 4)/sqrt(26).
        assert!((gw[0] / gw[1] - 0.75).abs() < 1e-5);
        // Below the threshold nothing changes.
        assert!((clip_grad_norm(&lin, &mut grads, 10.0) - 1.0).abs() < 1e-4);
        assert!((grad_norm(&lin, &grads) - 1.0).abs() < 1e-4);
    }
}
