//! A learnable scalar per FPN level that multiplies the box-branch output.

use burn::module::Param;
use burn::prelude::*;

/// `y = scale · x` with a learnable scalar (init 1.0).
#[derive(Module, Debug)]
pub struct Scale<B: Backend> {
    /// The scalar, shape `[1]`.
    pub scale: Param<Tensor<B, 1>>,
}

impl<B: Backend> Scale<B> {
    /// A scale initialised to `value`.
    pub fn new(value: f32, device: &B::Device) -> Self {
        Self {
            scale: Param::from_tensor(Tensor::from_floats([value], device)),
        }
    }

    /// Multiply `x` by the scale.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        x * self.scale.val().reshape([1, 1, 1, 1])
    }
}
