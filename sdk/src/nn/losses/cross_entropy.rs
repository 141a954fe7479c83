//! Binary cross-entropy with logits and soft targets (centerness loss, centerness KD).

use burn::tensor::{backend::Backend, Tensor};

use super::elementwise::bce_with_logits;
use super::reduce::weight_reduce_rows;

/// `CrossEntropyLoss(use_sigmoid=True)` on `[M]` logits with soft targets in `[0, 1]`:
/// `Σ_m BCE(x_m, t_m)·w_m / (avg_factor + ε)` (mean without `avg_factor`).
///
/// The element loss is `max(x,0) − x·t + ln(1 + e^−|x|)`, evaluated through `log_sigmoid`
/// (see [`bce_with_logits`] for why). `target` is detached: for ATSS centerness KD pass
/// `sigmoid(teacher_logit)`.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use crosskd_sdk::nn::losses::binary_cross_entropy_with_logits;
/// let dev = Default::default();
/// let x = Tensor::<Flex, 1>::from_floats([0.0, 0.0], &dev);
/// let t = Tensor::<Flex, 1>::from_floats([0.2, 0.9], &dev);
/// // BCE(0, t) = ln 2 for any t → 2 ln 2 / 2
/// let l = binary_cross_entropy_with_logits(x, t, None, Some(2.0)).into_scalar();
/// assert!((l - std::f32::consts::LN_2).abs() < 1e-6);
/// ```
pub fn binary_cross_entropy_with_logits<B: Backend>(
    pred: Tensor<B, 1>,
    target: Tensor<B, 1>,
    weight: Option<Tensor<B, 1>>,
    avg_factor: Option<f32>,
) -> Tensor<B, 1> {
    let loss = bce_with_logits(pred, target.detach());
    weight_reduce_rows(loss, weight, avg_factor)
}

#[cfg(test)]
// Reference values are pasted from float64 output; f32 rounds them, which is intended.
#[allow(clippy::excessive_precision)]
mod tests {
    use super::*;
    use crate::nn::losses::test_util::*;

    #[test]
    fn weighted_value_and_gradient() {
        // x   = [0,    2,   −2,    −50, 50]
        // t   = [0.3,  1,   0.25,  1,   0 ]
        // BCE = [ln2 = 0.693147, ln(1+e^−2) = 0.126928, 0.5 + 0.126928 = 0.626928, 50, 50]
        // w   = [1, 2, 1, 0.5, 0] → 0.693147 + 0.253856 + 0.626928 + 25 + 0 = 26.573931; / 4
        let x = t1::<AD>(&[0.0, 2.0, -2.0, -50.0, 50.0]).require_grad();
        let t = t1::<AD>(&[0.3, 1.0, 0.25, 1.0, 0.0]).require_grad();
        let w = t1::<AD>(&[1.0, 2.0, 1.0, 0.5, 0.0]);
        let loss = binary_cross_entropy_with_logits(x.clone(), t.clone(), Some(w), Some(4.0));
        assert_close(&[scalar(loss.clone())], &[26.573_931 / 4.0], 1e-6);
        // d/dx = (σ(x) − t)·w/4: [0.2/4, (0.880797−1)·2/4, (0.119203−0.25)/4, −1·0.5/4, 0]
        let grads = loss.backward();
        let g = vals(x.grad(&grads).unwrap());
        assert_close(&g, &[0.05, -0.059_601_47, -0.032_699_2, -0.125, 0.0], 1e-6);
        assert!(t.grad(&grads).is_none(), "soft target must be detached");
    }

    #[test]
    fn plain_mean() {
        // (ln2 + ln2) / 2 with t ∈ {0, 1} at x = 0
        let loss = binary_cross_entropy_with_logits(
            t1::<TB>(&[0.0, 0.0]),
            t1::<TB>(&[0.0, 1.0]),
            None,
            None,
        );
        assert_close(&[scalar(loss)], &[std::f32::consts::LN_2], 1e-6);
    }
}
