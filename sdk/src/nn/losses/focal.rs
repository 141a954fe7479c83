//! Sigmoid focal loss (RetinaNet / ATSS / FCOS classification loss).

use burn::tensor::{
    activation::{log_sigmoid, sigmoid},
    backend::Backend,
    Int, Tensor,
};

use super::elementwise::{one_hot_mask, pow_scalar};
use super::reduce::weight_reduce_rows;

/// Focal loss α used by every config (weight of the positive term).
pub const FOCAL_ALPHA: f32 = 0.25;
/// Focal loss γ used by every config.
pub const FOCAL_GAMMA: f32 = 2.0;

/// Unreduced sigmoid focal loss `[N, C]`.
///
/// `pred`: logits `[N, C]`; `labels`: `[N]` class indices, where `C` (or any label outside
/// `0..C`) means background, i.e. an all-zero one-hot row.
/// Positive entry: `−α(1−p)^γ ln p`; negative entry: `−(1−α)p^γ ln(1−p)`, `p = σ(x)`.
/// The modulating factor is differentiated (as in MMDet, both the PyTorch and the mmcv CUDA
/// implementation).
pub fn sigmoid_focal_loss_elementwise<B: Backend>(
    pred: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    alpha: f32,
    gamma: f32,
) -> Tensor<B, 2> {
    let [_, c] = pred.dims();
    let positive = one_hot_mask(labels, c);
    // ln p and ln(1 − p) = ln σ(−x) via log_sigmoid: finite for any logit (±50 included).
    let p = sigmoid(pred.clone());
    let not_p = sigmoid(pred.clone().neg());
    let pos = pow_scalar(not_p, gamma)
        .mul(log_sigmoid(pred.clone()))
        .mul_scalar(-alpha);
    let neg = pow_scalar(p, gamma)
        .mul(log_sigmoid(pred.neg()))
        .mul_scalar(-(1.0 - alpha));
    neg.mask_where(positive, pos)
}

/// Sigmoid focal loss, reduced: `Σ_{n,c} loss·w_n / (avg_factor + ε)` (or the mean over all
/// `N·C` entries without `avg_factor`).
///
/// `weight` is the per-anchor `label_weights` `[N]`, broadcast over the classes.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::{Int, Tensor};
/// use crosskd_sdk::nn::losses::{sigmoid_focal_loss, FOCAL_ALPHA, FOCAL_GAMMA};
/// let dev = Default::default();
/// let logits = Tensor::<Flex, 2>::from_floats([[0.0, 0.0], [0.0, 0.0]], &dev);
/// let labels = Tensor::<Flex, 1, Int>::from_ints([0, 2], &dev); // 2 = background
/// let loss = sigmoid_focal_loss(logits, labels, None, Some(1.0), FOCAL_ALPHA, FOCAL_GAMMA);
/// // p = 0.5 everywhere: one positive 0.25·0.25·ln2, three negatives 0.75·0.25·ln2
/// let expected = (0.0625 + 3.0 * 0.1875) * std::f32::consts::LN_2;
/// assert!((loss.into_scalar() - expected).abs() < 1e-5);
/// ```
pub fn sigmoid_focal_loss<B: Backend>(
    pred: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    weight: Option<Tensor<B, 1>>,
    avg_factor: Option<f32>,
    alpha: f32,
    gamma: f32,
) -> Tensor<B, 1> {
    let loss = sigmoid_focal_loss_elementwise(pred, labels, alpha, gamma);
    weight_reduce_rows(loss, weight, avg_factor)
}

#[cfg(test)]
// Reference values are pasted from float64 output; f32 rounds them, which is intended.
#[allow(clippy::excessive_precision)]
mod tests {
    use super::*;
    use crate::nn::losses::test_util::*;

    // Reference (torch float64, written from the formulas, no mmdet):
    //   oh = one_hot(labels, C+1)[:, :C]; s = x.sigmoid()
    //   el = oh·(−.25(1−s)²·logsigmoid(x)) + (1−oh)·(−.75 s²·logsigmoid(−x))
    //   loss = (el·w[:,None]).sum() / (3 + eps_f32); loss.backward()
    const X: [f32; 12] = [
        0.5, -1.0, 2.0, -3.0, 0.0, 1.0, 50.0, -50.0, 0.0, -50.0, 50.0, 0.3,
    ];
    const LABELS: [i64; 4] = [1, 3, 0, 0];
    const W: [f32; 4] = [1.0, 1.0, 0.5, 2.0];
    const ELEM: [f32; 12] = [
        0.283_058_7,
        0.175_467_08,
        1.237_558_6,
        8.1962e-05,
        0.129_965_1,
        0.526_401_23,
        0.0,
        0.0,
        0.129_965_1,
        12.5,
        37.5,
        0.211_442_8,
    ];
    const GRAD: [f32; 12] = [
        0.131_537_95,
        -0.064_019_56,
        0.269_178_42,
        7.8718e-05,
        0.074_571_7,
        0.192_058_67,
        0.0,
        0.0,
        0.037_285_85,
        -0.166_666_66,
        0.499_999_98,
        0.214_753_23,
    ];

    #[test]
    fn elementwise_matches_reference_including_extreme_logits() {
        // Row 2 (label 0 at x=50, negative at x=−50): both ≈ 0. Row 3: positive at x=−50 →
        // 0.25·1·50 = 12.5 and negative at x=+50 → 0.75·1·50 = 37.5 (hand check).
        let el = sigmoid_focal_loss_elementwise(
            t2::<TB>(&X, 3),
            labels::<TB>(&LABELS),
            FOCAL_ALPHA,
            FOCAL_GAMMA,
        );
        assert_close(&vals(el), &ELEM, 1e-5);
    }

    #[test]
    fn reduced_value_and_gradient_match_torch() {
        let x = t2::<AD>(&X, 3).require_grad();
        let loss = sigmoid_focal_loss(
            x.clone(),
            labels::<AD>(&LABELS),
            Some(t1::<AD>(&W)),
            Some(3.0),
            FOCAL_ALPHA,
            FOCAL_GAMMA,
        );
        assert_close(&[scalar(loss.clone())], &[34.280_132], 1e-5);
        let g = vals(x.grad(&loss.backward()).unwrap());
        assert_close(&g, &GRAD, 1e-5);
    }

    #[test]
    fn mean_without_weight_and_avg_factor() {
        // torch: el.mean() over the 12 entries = 4.391161716
        let loss = sigmoid_focal_loss(
            t2::<TB>(&X, 3),
            labels::<TB>(&LABELS),
            None,
            None,
            FOCAL_ALPHA,
            FOCAL_GAMMA,
        );
        assert_close(&[scalar(loss)], &[4.391_161_7], 1e-5);
    }

    #[test]
    fn hundred_logits_stay_finite() {
        // Positive at −100: 0.25·100 = 25; negative at +100: 0.75·100 = 75.
        let x = t2::<AD>(&[-100.0, 100.0], 2).require_grad();
        let loss = sigmoid_focal_loss(x.clone(), labels::<AD>(&[0]), None, Some(1.0), 0.25, 2.0);
        assert_close(&[scalar(loss.clone())], &[100.0], 1e-5);
        let g = vals(x.grad(&loss.backward()).unwrap());
        // d/dx at saturation: −α and +(1−α)
        assert_close(&g, &[-0.25, 0.75], 1e-5);
    }
}
