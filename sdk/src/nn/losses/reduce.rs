//! MMDetection's `weight_reduce_loss` (reduction "mean" with an optional `avg_factor`).

use burn::tensor::{backend::Backend, Tensor};

/// The epsilon MMDet adds to `avg_factor`: float32 machine epsilon (≈ 1.19e-7).
pub const AVG_FACTOR_EPS: f32 = f32::EPSILON;

/// Weights and reduces an unreduced loss to a scalar `[1]` tensor.
///
/// - `weight` must have the same rank as `loss`; size-1 dimensions broadcast
///   (e.g. `[N, 1]` against `[N, C]`). Use [`weight_reduce_rows`] for a per-row `[N]` weight.
///   The weight is detached (treated as a constant, which every detector weight is; this
///   protects e.g. GFL's `max σ(cls)` box weights from leaking gradient if a caller forgets
///   to detach them).
/// - `avg_factor = Some(a)`: `Σ(loss·w) / (a + f32::EPSILON)`.
/// - `avg_factor = None`: plain mean of `loss·w` over all elements (NOT divided by `Σw`,
///   exactly like MMDet).
/// - An empty `loss` reduces to a graph-connected zero instead of the `0/0` mean.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use crosskd_sdk::nn::losses::weight_reduce_loss;
/// let dev = Default::default();
/// let loss = Tensor::<Flex, 2>::from_floats([[1.0, 2.0], [3.0, 4.0]], &dev);
/// let w = Tensor::<Flex, 2>::from_floats([[1.0], [0.0]], &dev);
/// // (1 + 2) / (2 + eps)
/// let v = weight_reduce_loss(loss, Some(w), Some(2.0)).into_scalar();
/// assert!((v - 1.5).abs() < 1e-6);
/// ```
pub fn weight_reduce_loss<B: Backend, const D: usize>(
    loss: Tensor<B, D>,
    weight: Option<Tensor<B, D>>,
    avg_factor: Option<f32>,
) -> Tensor<B, 1> {
    let weighted = match weight {
        Some(w) => loss.mul(w.detach()),
        None => loss,
    };
    if weighted.shape().num_elements() == 0 {
        // Why: the mean of an empty tensor is 0/0 = NaN; MMDet callers never reach this with
        // a mean, but an image batch without positives must not poison the total loss.
        return weighted.sum().mul_scalar(0.0);
    }
    match avg_factor {
        Some(a) => weighted.sum().div_scalar(a + AVG_FACTOR_EPS),
        None => weighted.mean(),
    }
}

/// [`weight_reduce_loss`] with a per-row weight `[N]` that broadcasts over every trailing
/// dimension of `loss` (`[N]`, `[N, C]`, `[N, C, K]`, …).
pub fn weight_reduce_rows<B: Backend, const D: usize>(
    loss: Tensor<B, D>,
    weight: Option<Tensor<B, 1>>,
    avg_factor: Option<f32>,
) -> Tensor<B, 1> {
    let weight = weight.map(|w| rows_to_rank::<B, D>(w));
    weight_reduce_loss(loss, weight, avg_factor)
}

/// Reshapes a per-row weight `[N]` to `[N, 1, …, 1]` (rank `D`) so it broadcasts.
pub fn rows_to_rank<B: Backend, const D: usize>(weight: Tensor<B, 1>) -> Tensor<B, D> {
    let mut dims = [1usize; D];
    dims[0] = weight.dims()[0];
    weight.reshape(dims)
}

#[cfg(test)]
// Reference values are pasted from float64 output; f32 rounds them, which is intended.
#[allow(clippy::excessive_precision)]
mod tests {
    use super::*;
    use crate::nn::losses::test_util::*;

    #[test]
    fn mean_without_weight_or_avg_factor() {
        // (1 + 2 + 3 + 4) / 4 = 2.5
        let l = t2::<TB>(&[1.0, 2.0, 3.0, 4.0], 2);
        assert_close(&[scalar(weight_reduce_loss(l, None, None))], &[2.5], 1e-7);
    }

    #[test]
    fn weighted_mean_is_not_normalised_by_weight_sum() {
        // rows weighted [1, 0]: [1, 2, 0, 0] → mean 0.75 (MMDet divides by numel, not Σw)
        let l = t2::<TB>(&[1.0, 2.0, 3.0, 4.0], 2);
        let w = t1::<TB>(&[1.0, 0.0]);
        assert_close(
            &[scalar(weight_reduce_rows(l, Some(w), None))],
            &[0.75],
            1e-7,
        );
    }

    #[test]
    fn avg_factor_divides_weighted_sum_with_eps() {
        // rows weighted [0.5, 2]: 0.5·(1+2) + 2·(3+4) = 15.5; / (4 + eps)
        let l = t2::<TB>(&[1.0, 2.0, 3.0, 4.0], 2);
        let w = t1::<TB>(&[0.5, 2.0]);
        let got = scalar(weight_reduce_rows(l, Some(w), Some(4.0)));
        assert_close(&[got], &[15.5 / (4.0 + f32::EPSILON)], 1e-7);
        // With avg_factor 0 the eps keeps the division finite: 3 / eps.
        let l = t1::<TB>(&[3.0]);
        let got = scalar(weight_reduce_loss(l, None, Some(0.0)));
        assert_close(&[got], &[3.0 / f32::EPSILON], 1e-6);
    }

    #[test]
    fn element_weights_of_full_shape() {
        // Σ [1·1, 2·0, 3·2, 4·1] = 11; / 2
        let l = t2::<TB>(&[1.0, 2.0, 3.0, 4.0], 2);
        let w = t2::<TB>(&[1.0, 0.0, 2.0, 1.0], 2);
        assert_close(
            &[scalar(weight_reduce_loss(l, Some(w), Some(2.0)))],
            &[5.5],
            1e-6,
        );
    }

    #[test]
    fn rank3_row_weights_broadcast() {
        // loss [2,1,2] = [[1,2]],[[3,4]]; weights [2, 1] → 2·3 + 7 = 13, mean over 4 = 3.25
        let l = tn::<TB, 3>(&[1.0, 2.0, 3.0, 4.0], [2, 1, 2]);
        let w = t1::<TB>(&[2.0, 1.0]);
        assert_close(
            &[scalar(weight_reduce_rows(l, Some(w), None))],
            &[3.25],
            1e-7,
        );
    }

    #[test]
    fn empty_loss_reduces_to_connected_zero() {
        let x = tn::<AD, 2>(&[], [0, 4]).require_grad();
        let loss = weight_reduce_loss(x.clone().mul_scalar(2.0), None, None);
        assert_eq!(scalar(loss.clone()), 0.0);
        let g = x.grad(&loss.backward());
        assert!(g.is_none_or(|g| g.dims() == [0, 4]));
    }
}
