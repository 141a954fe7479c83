//! Quality Focal Loss (GFL classification loss, `QualityFocalLoss` with `use_sigmoid`).

use burn::tensor::{activation::sigmoid, backend::Backend, Int, Tensor};

use super::elementwise::{bce_with_logits, one_hot_mask, pow_scalar};
use super::reduce::weight_reduce_rows;

/// β of the GFL configs (GT QFL; the KD variant uses β = 1).
pub const QFL_BETA: f32 = 2.0;

/// Unreduced QFL per row `[N]` (already summed over the `C` classes).
///
/// - every entry starts as the negative term `BCE(x, 0)·σ(x)^β`;
/// - for a positive row (`labels[n] ∈ 0..C`) the entry of its class is replaced by
///   `BCE(x, q_n)·|q_n − σ(x)|^β`, `q = score` (IoU target, detached).
///
/// As in MMDet, σ(x) inside the modulating factors is NOT detached: the factor is part of the
/// differentiated loss (MMDet's `quality_focal_loss` has no `detach`).
pub fn quality_focal_loss_rows<B: Backend>(
    pred: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    score: Tensor<B, 1>,
    beta: f32,
) -> Tensor<B, 1> {
    let [n, c] = pred.dims();
    let positive = one_hot_mask(labels, c);
    let p = sigmoid(pred.clone());
    let neg = bce_with_logits(pred.clone(), pred.zeros_like()).mul(pow_scalar(p.clone(), beta));
    // q broadcast over the classes; only the positive entry uses it, the others are masked.
    let q = score.detach().reshape([n, 1]);
    let factor = pow_scalar(q.clone().sub(p).abs(), beta);
    let pos = bce_with_logits(pred, q).mul(factor);
    neg.mask_where(positive, pos).sum_dim(1).reshape([n])
}

/// Quality Focal Loss, reduced: `Σ_n rowloss_n·w_n / (avg_factor + ε)` (mean over rows
/// without `avg_factor`).
///
/// `pred` `[N, C]` logits, `labels` `[N]` (`C` = background), `score` `[N]` IoU targets
/// (≥ 0, only read on positive rows), `weight` `[N]` label weights.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::{Int, Tensor};
/// use crosskd_sdk::nn::losses::quality_focal_loss;
/// let dev = Default::default();
/// let logits = Tensor::<Flex, 2>::from_floats([[0.0, 0.0]], &dev);
/// let labels = Tensor::<Flex, 1, Int>::from_ints([1], &dev);
/// let score = Tensor::<Flex, 1>::from_floats([0.5], &dev);
/// let loss = quality_focal_loss(logits, labels, score, None, Some(1.0), 2.0);
/// // class 0: ln2·0.5² ; class 1: BCE(0, 0.5)·|0.5 − 0.5|² = 0
/// assert!((loss.into_scalar() - 0.25 * std::f32::consts::LN_2).abs() < 1e-6);
/// ```
pub fn quality_focal_loss<B: Backend>(
    pred: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    score: Tensor<B, 1>,
    weight: Option<Tensor<B, 1>>,
    avg_factor: Option<f32>,
    beta: f32,
) -> Tensor<B, 1> {
    let rows = quality_focal_loss_rows(pred, labels, score, beta);
    weight_reduce_rows(rows, weight, avg_factor)
}

#[cfg(test)]
// Reference values are pasted from float64 output; f32 rounds them, which is intended.
#[allow(clippy::excessive_precision)]
mod tests {
    use super::*;
    use crate::nn::losses::test_util::*;

    // Reference (torch float64, written from the formula, no mmdet):
    //   s = x.sigmoid(); el = bce_logits(x, 0)·s²
    //   for positive rows i: el[i, c] = bce_logits(x[i,c], q[i])·|q[i] − s[i,c]|²  (s not detached)
    //   row = el.sum(1); loss = (row·w).sum() / (2.5 + eps_f32); loss.backward()
    const X: [f32; 12] = [
        0.5, -1.0, 2.0, -3.0, 0.0, 1.0, 1.5, -0.5, 0.0, -50.0, 50.0, 0.2,
    ];
    const LABELS: [i64; 4] = [1, 3, 2, 0];
    const Q: [f32; 4] = [0.8, 0.0, 0.3, 0.6];
    const W: [f32; 4] = [1.0, 1.0, 0.5, 1.0];

    #[test]
    fn rows_match_reference() {
        // Row 3 hand check: class 0 positive at x=−50, q=0.6: BCE = 0.6·50 + 0.4·0 = 30,
        // factor 0.6² = 0.36 → 10.8; class 1 negative at x=50: 50·1 = 50; class 2 ≈ 0.2413
        let rows = quality_focal_loss_rows(
            t2::<TB>(&X, 3),
            labels::<TB>(&LABELS),
            t1::<TB>(&Q),
            QFL_BETA,
        );
        assert_close(
            &vals(rows),
            &[2.341_455_4, 0.875_264_4, 1.232_571_7, 61.041_29],
            1e-5,
        );
    }

    #[test]
    fn reduced_value_and_undetached_gradient_match_torch() {
        let x = t2::<AD>(&X, 3).require_grad();
        let q = t1::<AD>(&Q).require_grad();
        let loss = quality_focal_loss(
            x.clone(),
            labels::<AD>(&LABELS),
            q.clone(),
            Some(t1::<AD>(&W)),
            Some(2.5),
            QFL_BETA,
        );
        assert_close(&[scalar(loss.clone())], &[25.949_717], 1e-5);
        let grads = loss.backward();
        let g = vals(x.grad(&grads).unwrap());
        assert_close(
            &g,
            &[
                0.210_460_72,
                -0.152_899_04,
                0.430_685_47,
                0.000_125_949,
                0.119_314_71,
                0.307_293_88,
                0.192_284_93,
                0.027_587_4,
                0.015_462_943,
                -0.086_4,
                0.4,
                0.153_386_66,
            ],
            1e-5,
        );
        // The IoU target is a constant.
        assert!(q.grad(&grads).is_none());
    }

    #[test]
    fn perfect_prediction_of_positive_costs_only_entropy_times_zero() {
        // x = 0, q = 0.5: |q − σ(x)| = 0 → positive entry 0; no negatives (C = 1).
        let loss = quality_focal_loss(
            t2::<TB>(&[0.0], 1),
            labels::<TB>(&[0]),
            t1::<TB>(&[0.5]),
            None,
            None,
            2.0,
        );
        assert_close(&[scalar(loss)], &[0.0], 1e-7);
    }
}
