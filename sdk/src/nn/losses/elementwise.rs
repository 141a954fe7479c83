//! Numerically stable element-wise building blocks shared by the losses.

use burn::tensor::{activation::log_sigmoid, backend::Backend, Bool, Int, Tensor};

/// Element-wise binary cross-entropy with logits and (soft) targets:
/// `−t·ln σ(x) − (1 − t)·ln(1 − σ(x))`, same shape as `logits`.
///
/// `targets` may have size-1 dimensions that broadcast against `logits`.
///
/// Written as `−t·log_sigmoid(x) − (1 − t)·log_sigmoid(−x)`, which equals the usual stable form
/// `max(x, 0) − x·t + ln(1 + e^−|x|)` but is differentiated through burn's fused
/// `log_sigmoid` backward. Why not the max/abs form: burn differentiates `max(x,0)` and `|x|`
/// with derivative 0 at `x = 0`, which would give `−t` instead of the true `σ(0) − t = 0.5 − t`
/// at a logit of exactly zero. This form has the exact gradient `σ(x) − t` everywhere and
/// stays finite for |x| in the hundreds.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use crosskd_sdk::nn::losses::elementwise::bce_with_logits;
/// let dev = Default::default();
/// let x = Tensor::<Flex, 1>::from_floats([0.0, 50.0], &dev);
/// let t = Tensor::<Flex, 1>::from_floats([0.5, 0.0], &dev);
/// let l = bce_with_logits(x, t).into_data().to_vec::<f32>().unwrap();
/// assert!((l[0] - std::f32::consts::LN_2).abs() < 1e-6 && (l[1] - 50.0).abs() < 1e-4);
/// ```
pub fn bce_with_logits<B: Backend, const D: usize>(
    logits: Tensor<B, D>,
    targets: Tensor<B, D>,
) -> Tensor<B, D> {
    let log_p = log_sigmoid(logits.clone());
    let log_not_p = log_sigmoid(logits.neg());
    let not_t = targets.clone().neg().add_scalar(1.0);
    targets.mul(log_p).add(not_t.mul(log_not_p)).neg()
}

/// `base^exponent` for a non-negative base, with exact special cases for the exponents the
/// detectors use.
///
/// Exponent 1 returns the base unchanged and exponent 2 uses `square`, so the gradient at a
/// zero base is exactly 1 resp. 0 (a generic `powf` would also give that, but with an extra
/// `0^(e−1)` evaluation that is `inf` for `e < 1`).
pub fn pow_scalar<B: Backend, const D: usize>(base: Tensor<B, D>, exponent: f32) -> Tensor<B, D> {
    if exponent == 1.0 {
        base
    } else if exponent == 2.0 {
        base.square()
    } else {
        base.powf_scalar(exponent)
    }
}

/// One-hot mask `[N, C]` from class labels `[N]`, where any label outside `0..C` (MMDet's
/// background label `C`, or an ignore label such as −1) gives an all-false row.
///
/// Built by comparing against `arange(C)`, not with `Tensor::one_hot`, because burn's
/// `one_hot` reads the labels back to the host and rejects out-of-range labels.
pub fn one_hot_mask<B: Backend>(
    labels: Tensor<B, 1, Int>,
    num_classes: usize,
) -> Tensor<B, 2, Bool> {
    let n = labels.dims()[0];
    let device = labels.device();
    let classes = Tensor::<B, 1, Int>::arange(0..num_classes as i64, &device)
        .reshape([1, num_classes])
        .expand([n, num_classes]);
    labels
        .reshape([n, 1])
        .expand([n, num_classes])
        .equal(classes)
}

#[cfg(test)]
// Reference values are pasted from float64 output; f32 rounds them, which is intended.
#[allow(clippy::excessive_precision)]
mod tests {
    use super::*;
    use crate::nn::losses::test_util::*;

    #[test]
    fn bce_matches_hand_values_and_is_finite_at_extremes() {
        // x=0,t=0.5: ln 2 = 0.693147
        // x=2,t=1:  ln(1+e^-2) = 0.126928
        // x=-2,t=0.25: max(x,0) - x t + ln(1+e^-|x|) = 0 + 0.5 + 0.126928 = 0.626928
        // x=-50,t=1: 50 + ln(1+e^-50) = 50;  x=50,t=0: 50;  x=50,t=1: ~0 (1.9e-22)
        let x = t1::<TB>(&[0.0, 2.0, -2.0, -50.0, 50.0, 50.0]);
        let t = t1::<TB>(&[0.5, 1.0, 0.25, 1.0, 0.0, 1.0]);
        let got = vals(bce_with_logits(x, t));
        assert_close(
            &got,
            &[
                std::f32::consts::LN_2,
                0.126_928,
                0.626_928,
                50.0,
                50.0,
                0.0,
            ],
            1e-5,
        );
    }

    #[test]
    fn bce_gradient_is_sigmoid_minus_target_even_at_zero() {
        // d/dx BCE(x,t) = σ(x) − t: x=0,t=0.3 → 0.2; x=0,t=1 → −0.5; x=3,t=0 → σ(3)=0.952574;
        // x=-50,t=1 → σ(−50) − 1 ≈ −1; x=50,t=0 → ≈ 1.
        let x = t1::<AD>(&[0.0, 0.0, 3.0, -50.0, 50.0]).require_grad();
        let t = t1::<AD>(&[0.3, 1.0, 0.0, 1.0, 0.0]);
        let loss = bce_with_logits(x.clone(), t).sum();
        let g = vals(x.grad(&loss.backward()).unwrap());
        assert_close(&g, &[0.2, -0.5, 0.952_574_1, -1.0, 1.0], 1e-6);
    }

    #[test]
    fn one_hot_mask_treats_out_of_range_as_background() {
        let m = one_hot_mask(labels::<TB>(&[0, 2, 3, -1]), 3).int();
        let v: Vec<i64> = m.into_data().convert::<i64>().to_vec::<i64>().unwrap();
        assert_eq!(v, vec![1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn pow_scalar_special_cases() {
        let b = t1::<TB>(&[0.0, 0.5, 2.0]);
        assert_close(&vals(pow_scalar(b.clone(), 1.0)), &[0.0, 0.5, 2.0], 1e-7);
        assert_close(&vals(pow_scalar(b.clone(), 2.0)), &[0.0, 0.25, 4.0], 1e-7);
        // 0.5^1.5 = 0.353553, 2^1.5 = 2.828427
        assert_close(
            &vals(pow_scalar(b, 1.5)),
            &[0.0, 0.353_553_4, 2.828_427],
            1e-6,
        );
    }
}
