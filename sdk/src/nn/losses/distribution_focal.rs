//! Distribution Focal Loss (GFL box-distribution loss).

use burn::tensor::{activation::log_softmax, backend::Backend, Tensor};

use super::reduce::weight_reduce_rows;

/// Unreduced DFL `[M]`: `CE(pred, ⌊y⌋)·(⌊y⌋ + 1 − y) + CE(pred, ⌊y⌋ + 1)·(y − ⌊y⌋)`.
///
/// `pred`: `[M, R+1]` bin logits (one row per box side); `target`: `[M]` distances in bin
/// units, expected in `[0, R − 0.1]` (GFL clamps with `bbox2distance(.., Some(R))`), detached.
/// Out-of-range targets do not read out of bounds: both bin indices are clamped to `0..=R`
/// (MMDet would fail an index assert instead).
pub fn distribution_focal_loss_elementwise<B: Backend>(
    pred: Tensor<B, 2>,
    target: Tensor<B, 1>,
) -> Tensor<B, 1> {
    let [m, bins] = pred.dims();
    let max_bin = (bins - 1) as i64;
    let target = target.detach();
    let left = target.clone().floor();
    let weight_left = left.clone().add_scalar(1.0).sub(target.clone());
    let weight_right = target.sub(left.clone());
    let left_idx = left.int().clamp(0, max_bin);
    let right_idx = left_idx.clone().add_scalar(1).clamp(0, max_bin);
    let log_p = log_softmax(pred, 1);
    let ce_left = log_p
        .clone()
        .gather(1, left_idx.reshape([m, 1]))
        .reshape([m])
        .neg();
    let ce_right = log_p
        .gather(1, right_idx.reshape([m, 1]))
        .reshape([m])
        .neg();
    ce_left.mul(weight_left).add(ce_right.mul(weight_right))
}

/// Distribution Focal Loss, reduced: `Σ_m loss_m·w_m / (avg_factor + ε)` (mean without
/// `avg_factor`). GFL uses `avg_factor = 4.0` per level and divides by the score-weight sum
/// afterwards.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use crosskd_sdk::nn::losses::distribution_focal_loss;
/// let dev = Default::default();
/// let logits = Tensor::<Flex, 2>::from_floats([[0.0, 0.0, 0.0]], &dev); // R = 2
/// let y = Tensor::<Flex, 1>::from_floats([0.25], &dev);
/// // uniform bins: CE = ln 3 for both neighbours, weights 0.75 + 0.25
/// let loss = distribution_focal_loss(logits, y, None, None);
/// assert!((loss.into_scalar() - 3f32.ln()).abs() < 1e-6);
/// ```
pub fn distribution_focal_loss<B: Backend>(
    pred: Tensor<B, 2>,
    target: Tensor<B, 1>,
    weight: Option<Tensor<B, 1>>,
    avg_factor: Option<f32>,
) -> Tensor<B, 1> {
    weight_reduce_rows(
        distribution_focal_loss_elementwise(pred, target),
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

    // Reference (torch float64, from the formula, no mmdet):
    //   l = y.floor().long(); r = l + 1
    //   el = cross_entropy(x, l, 'none')·(r − y) + cross_entropy(x, r, 'none')·(y − l)
    //   loss = (el·w).sum() / (2 + eps_f32); loss.backward()
    const X: [f32; 15] = [
        0.1, 0.5, -0.3, 1.2, 0.0, 2.0, -1.0, 0.3, 0.3, 0.5, -0.4, 0.2, 0.9, -1.1, 0.6,
    ];
    const Y: [f32; 3] = [1.3, 3.9, 0.0];

    #[test]
    fn elementwise_matches_reference() {
        let el = distribution_focal_loss_elementwise(t2::<TB>(&X, 5), t1::<TB>(&Y));
        assert_close(&vals(el), &[1.796_022_9, 2.013_649_5, 2.272_773_4], 1e-5);
    }

    #[test]
    fn reduced_value_and_gradient_match_torch() {
        let x = t2::<AD>(&X, 5).require_grad();
        let loss = distribution_focal_loss(
            x.clone(),
            t1::<AD>(&Y),
            Some(t1::<AD>(&[1.0, 0.5, 2.0])),
            Some(2.0),
        );
        assert_close(&[scalar(loss.clone())], &[3.674_197], 1e-5);
        let g = vals(x.grad(&loss.backward()).unwrap());
        assert_close(
            &g,
            &[
                0.070_709_87,
                -0.244_513_25,
                -0.102_601_75,
                0.212_424_19,
                0.063_980_94,
                0.152_598_66,
                0.007_597_44,
                0.027_877_26,
                0.002_877_262,
                -0.190_950_62,
                -0.896_973_9,
                0.187_725_7,
                0.378_033_14,
                0.051_161_22,
                0.280_053_84,
            ],
            1e-5,
        );
    }

    #[test]
    fn integer_target_uses_one_bin_and_top_bin_is_safe() {
        // y = 2 exactly: weight 1 on bin 2, 0 on bin 3. Logits [0, 0, ln 2, 0]:
        // softmax bin 2 = 2/5 → CE = ln(5/2) = 0.916291.
        // y = 3 = R exactly (outside GFL's range): right index clamped to R, weight 0;
        // CE(bin 3) = ln 5 = 1.609438.
        let ln2 = std::f32::consts::LN_2;
        let x = t2::<TB>(&[0.0, 0.0, ln2, 0.0, 0.0, 0.0, ln2, 0.0], 4);
        let el = distribution_focal_loss_elementwise(x, t1::<TB>(&[2.0, 3.0]));
        assert_close(&vals(el), &[0.916_290_7, 1.609_438], 1e-6);
    }

    #[test]
    fn extreme_logits_stay_finite() {
        // Logits [50, −50, 0, 0, 0], y = 3.5: logsumexp ≈ 50, so CE(bin 3) = CE(bin 4) = 50
        // → 0.5·50 + 0.5·50 = 50; the gradient stays finite.
        let x = t2::<AD>(&[50.0, -50.0, 0.0, 0.0, 0.0], 5).require_grad();
        let loss = distribution_focal_loss(x.clone(), t1::<AD>(&[3.5]), None, None);
        assert_close(&[scalar(loss.clone())], &[50.0], 1e-5);
        // ∂/∂x = softmax − (0, 0, 0, 0.5, 0.5) ≈ (1, 0, 0, −0.5, −0.5)
        let g = vals(x.grad(&loss.backward()).unwrap());
        assert_close(&g, &[1.0, 0.0, 0.0, -0.5, -0.5], 1e-5);
    }
}
