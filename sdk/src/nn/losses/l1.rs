//! L1 and Smooth-L1 regression losses with per-element weights.

use burn::tensor::{backend::Backend, Tensor};

use super::reduce::weight_reduce_loss;

/// Unreduced L1 `|pred − target|` (target detached), any shape.
pub fn l1_loss_elementwise<B: Backend, const D: usize>(
    pred: Tensor<B, D>,
    target: Tensor<B, D>,
) -> Tensor<B, D> {
    pred.sub(target.detach()).abs()
}

/// Unreduced Smooth-L1 with threshold `beta > 0`: `0.5·d²/β` if `d < β`, else `d − 0.5·β`,
/// `d = |pred − target|` (target detached).
///
/// # Panics
/// If `beta <= 0` (MMDet asserts the same).
pub fn smooth_l1_loss_elementwise<B: Backend, const D: usize>(
    pred: Tensor<B, D>,
    target: Tensor<B, D>,
    beta: f32,
) -> Tensor<B, D> {
    assert!(beta > 0.0, "smooth L1 beta must be > 0, got {beta}");
    let diff = pred.sub(target.detach()).abs();
    let quadratic = diff.clone().square().mul_scalar(0.5 / beta);
    let linear = diff.clone().sub_scalar(0.5 * beta);
    linear.mask_where(diff.lower_elem(beta), quadratic)
}

/// L1 loss reduced with element weights (same shape as `pred`, e.g. RetinaNet's
/// `bbox_weights` `[M, 4]`): `Σ|pred − target|·w / (avg_factor + ε)` (mean without
/// `avg_factor`).
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use crosskd_sdk::nn::losses::l1_loss;
/// let dev = Default::default();
/// let p = Tensor::<Flex, 2>::from_floats([[1.0, 2.0, 3.0, 4.0]], &dev);
/// let t = Tensor::<Flex, 2>::from_floats([[0.0, 2.0, 5.0, 4.5]], &dev);
/// // |Δ| = [1, 0, 2, 0.5] → 3.5 / 1
/// assert!((l1_loss(p, t, None, Some(1.0)).into_scalar() - 3.5).abs() < 1e-6);
/// ```
pub fn l1_loss<B: Backend>(
    pred: Tensor<B, 2>,
    target: Tensor<B, 2>,
    weight: Option<Tensor<B, 2>>,
    avg_factor: Option<f32>,
) -> Tensor<B, 1> {
    weight_reduce_loss(l1_loss_elementwise(pred, target), weight, avg_factor)
}

/// Smooth-L1 loss reduced like [`l1_loss`].
pub fn smooth_l1_loss<B: Backend>(
    pred: Tensor<B, 2>,
    target: Tensor<B, 2>,
    beta: f32,
    weight: Option<Tensor<B, 2>>,
    avg_factor: Option<f32>,
) -> Tensor<B, 1> {
    weight_reduce_loss(
        smooth_l1_loss_elementwise(pred, target, beta),
        weight,
        avg_factor,
    )
}

#[cfg(test)]
// Reference values are pasted from float64 output; f32 rounds them, which is intended.
#[allow(clippy::excessive_precision)]
mod tests {
    use super::*;
    use crate::nn::losses::test_util::*;

    const P: [f32; 8] = [1.0, 2.0, 3.0, 4.0, -1.0, 0.5, 0.0, 10.0];
    const T: [f32; 8] = [0.0, 2.0, 5.0, 4.5, -1.2, 0.0, 3.0, 9.0];
    // |Δ| = [1, 0, 2, 0.5, 0.2, 0.5, 3, 1]
    const W: [f32; 8] = [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 2.0, 2.0];

    #[test]
    fn l1_weighted_sum_over_avg_factor_and_gradient() {
        let p = t2::<AD>(&P, 4).require_grad();
        let loss = l1_loss(p.clone(), t2::<AD>(&T, 4), Some(t2::<AD>(&W, 4)), Some(2.0));
        // (1 + 0 + 2 + 0.5) + 2·(3 + 1) = 11.5 → / 2 = 5.75
        assert_close(&[scalar(loss.clone())], &[5.75], 1e-6);
        // d/dp = sign(Δ)·w/2 (sign(0) = 0, as torch)
        let g = vals(p.grad(&loss.backward()).unwrap());
        assert_close(&g, &[0.5, 0.0, -0.5, -0.5, 0.0, 0.0, -1.0, 1.0], 1e-6);
    }

    #[test]
    fn l1_plain_mean() {
        // (1 + 0 + 2 + 0.5 + 0.2 + 0.5 + 3 + 1) / 8 = 1.025
        let loss = l1_loss(t2::<TB>(&P, 4), t2::<TB>(&T, 4), None, None);
        assert_close(&[scalar(loss)], &[1.025], 1e-6);
    }

    #[test]
    fn smooth_l1_branches() {
        // β = 1: d<1 → 0.5 d²; else d − 0.5
        // [1→0.5, 0→0, 2→1.5, 0.5→0.125, 0.2→0.02, 0.5→0.125, 3→2.5, 1→0.5]
        let el = smooth_l1_loss_elementwise(t2::<TB>(&P, 4), t2::<TB>(&T, 4), 1.0);
        assert_close(
            &vals(el),
            &[0.5, 0.0, 1.5, 0.125, 0.02, 0.125, 2.5, 0.5],
            1e-6,
        );
        // β = 0.5: d<0.5 → d²; else d − 0.25 → [0.75, 0, 1.75, 0.25, 0.04, 0.25, 2.75, 0.75],
        // sum 6.54
        let p = t2::<AD>(&P, 4).require_grad();
        let loss = smooth_l1_loss(p.clone(), t2::<AD>(&T, 4), 0.5, None, Some(1.0));
        assert_close(&[scalar(loss.clone())], &[6.54], 1e-5);
        // gradient: d<β → Δ/β; else sign(Δ), Δ = p − t = [1, 0, −2, −0.5, 0.2, 0.5, −3, 1]
        // → [1, 0, −1, −1, 0.2/0.5 = 0.4, 1, −1, 1]
        let g = vals(p.grad(&loss.backward()).unwrap());
        assert_close(&g, &[1.0, 0.0, -1.0, -1.0, 0.4, 1.0, -1.0, 1.0], 1e-6);
    }
}
