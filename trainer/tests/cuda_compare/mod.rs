//! What the CUDA tests (`cuda_ops`, `cuda_parity`) share: reading a tensor back to
//! the host and comparing flex against CUDA.

use burn::prelude::*;

/// The tensor's values on the host, as `f32`.
pub fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap()
}

/// Largest absolute difference between `a` and `b`, relative to `b`'s largest
/// magnitude (floored at 1e-6 so all-zero references do not divide by zero).
pub fn rel(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// A relative error over `tol`, or NaN (which compares false with anything).
pub fn exceeds(e: f32, tol: f32) -> bool {
    e.is_nan() || e > tol
}
