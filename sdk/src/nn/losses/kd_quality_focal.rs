//! CrossKD's `KDQualityFocalLoss`: classification distillation with the teacher's sigmoid
//! probabilities as soft targets.

use burn::tensor::{activation::sigmoid, backend::Backend, Tensor};

use super::elementwise::{bce_with_logits, pow_scalar};
use super::reduce::weight_reduce_rows;

/// β of every CrossKD config.
pub const KD_QFL_BETA: f32 = 1.0;

/// Unreduced KDQFL `[N, C]`: `BCE(x, p)·|σ(x) − p|^β` with `p = σ(t)`.
///
/// The teacher logits are detached; the modulating factor `|σ(x) − p|^β` is NOT detached,
/// so its derivative is part of the gradient (spec §2, pitfall 4). Detaching it would give a
/// visibly different gradient (see the tests).
pub fn kd_quality_focal_loss_elementwise<B: Backend>(
    pred: Tensor<B, 2>,
    teacher: Tensor<B, 2>,
    beta: f32,
) -> Tensor<B, 2> {
    let p = sigmoid(teacher.detach());
    let factor = pow_scalar(sigmoid(pred.clone()).sub(p.clone()).abs(), beta);
    bce_with_logits(pred, p).mul(factor)
}

/// KDQualityFocalLoss, reduced: `Σ_{n,c} loss·w_n / (avg_factor + ε)` (mean over all `N·C`
/// entries without `avg_factor`).
///
/// `pred`: student / cross-head logits `[N, C]`; `teacher`: teacher logits `[N, C]`
/// (detached); `weight`: per-row `[N]` (the student's `label_weights`), broadcast over `C`.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use crosskd_sdk::nn::losses::kd_quality_focal_loss;
/// let dev = Default::default();
/// let x = Tensor::<Flex, 2>::from_floats([[0.0, 3.0]], &dev);
/// // identical logits: |σ(x) − σ(t)| = 0 → loss 0
/// let loss = kd_quality_focal_loss(x.clone(), x, None, Some(1.0), 1.0);
/// assert!(loss.into_scalar().abs() < 1e-7);
/// ```
pub fn kd_quality_focal_loss<B: Backend>(
    pred: Tensor<B, 2>,
    teacher: Tensor<B, 2>,
    weight: Option<Tensor<B, 1>>,
    avg_factor: Option<f32>,
    beta: f32,
) -> Tensor<B, 1> {
    let loss = kd_quality_focal_loss_elementwise(pred, teacher, beta);
    weight_reduce_rows(loss, weight, avg_factor)
}

#[cfg(test)]
// Reference values are pasted from float64 output; f32 rounds them, which is intended.
#[allow(clippy::excessive_precision)]
mod tests {
    use super::*;
    use crate::nn::losses::test_util::*;

    // Reference (torch float64, from the formula, no mmdet):
    //   pt = t.detach().sigmoid()
    //   el = bce_logits(x, pt, 'none')·(x.sigmoid() − pt).abs()      (factor NOT detached)
    //   loss = (el·w[:,None]).sum() / (2 + eps_f32); loss.backward()
    // and the same with `.abs().detach()` for the detached-factor gradient.
    const X: [f32; 12] = [
        0.2, -1.0, 1.5, 0.0, -2.0, 0.7, 0.3, -0.1, 50.0, -50.0, 3.0, -3.0,
    ];
    const T: [f32; 12] = [
        1.0, -0.5, 0.5, -2.0, 0.0, 0.0, 1.0, -1.0, -50.0, 50.0, 2.0, -4.0,
    ];
    const W: [f32; 3] = [1.0, 0.25, 0.5];
    const GRAD: [f32; 12] = [
        -0.097_102_556,
        -0.073_806_89,
        0.076_286_63,
        0.159_146_6,
        -0.032_915_826,
        0.024_409_77,
        -0.022_471_102,
        0.026_234_068,
        0.25,
        -0.25,
        0.005_875_632,
        0.001_374_845,
    ];
    const GRAD_DETACHED_FACTOR: [f32; 12] = [
        -0.016_421_173,
        -0.005_896_898,
        0.019_034_959,
        0.072_503_2,
        -0.018_125_8,
        0.003_535_891,
        -0.003_066_074,
        0.005_308_589,
        0.25,
        -0.25,
        0.001_287_986,
        0.000_216_673,
    ];

    #[test]
    fn value_and_undetached_gradient_match_torch_teacher_gets_none() {
        let x = t2::<AD>(&X, 4).require_grad();
        let t = t2::<AD>(&T, 4).require_grad();
        let loss = kd_quality_focal_loss(
            x.clone(),
            t.clone(),
            Some(t1::<AD>(&W)),
            Some(2.0),
            KD_QFL_BETA,
        );
        // Row 2 holds ±50 logits against opposite teacher logits: BCE ≈ 50, factor ≈ 1.
        assert_close(&[scalar(loss.clone())], &[25.410_697], 1e-5);
        let grads = loss.backward();
        let g = vals(x.grad(&grads).unwrap());
        assert_close(&g, &GRAD, 1e-5);
        // The detached-factor gradient differs clearly (e.g. −0.0164 vs −0.0971), so the
        // assertion above would fail for an implementation that detaches the factor.
        assert!((g[0] - GRAD_DETACHED_FACTOR[0]).abs() > 0.05);
        assert!(
            t.grad(&grads).is_none(),
            "teacher logits must get no gradient"
        );
    }

    #[test]
    fn plain_mean_without_avg_factor() {
        // torch: el.mean() over 12 entries = 8.452723938
        let loss = kd_quality_focal_loss(t2::<TB>(&X, 4), t2::<TB>(&T, 4), None, None, 1.0);
        assert_close(&[scalar(loss)], &[8.452_724], 1e-5);
    }

    #[test]
    fn matching_teacher_gives_zero_loss_and_zero_gradient() {
        // factor = 0 and d factor/dx = sign(0)·σ' = 0 (torch gives the same zero gradient).
        let x = t2::<AD>(&X[..4], 4).require_grad();
        let loss = kd_quality_focal_loss(x.clone(), t2::<AD>(&X[..4], 4), None, Some(1.0), 1.0);
        assert_close(&[scalar(loss.clone())], &[0.0], 1e-7);
        assert_close(&vals(x.grad(&loss.backward()).unwrap()), &[0.0; 4], 1e-7);
    }
}
