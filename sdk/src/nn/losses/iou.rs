//! Aligned IoU / GIoU between box tensors and the IoU-based regression losses.

use burn::tensor::{backend::Backend, ElementConversion, Tensor};

use super::reduce::weight_reduce_rows;
use crate::nn::coders::columns::unstack4;

/// eps of MMDet's `IoULoss` / `GIoULoss` (union, enclosing area and IoU clamps).
pub const IOU_LOSS_EPS: f32 = 1e-6;

/// Which overlap [`aligned_overlaps`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlapMode {
    /// Intersection over union.
    Iou,
    /// Generalised IoU: `IoU − (enclose − union) / enclose`.
    Giou,
}

/// How [`iou_loss`] maps the IoU to a loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IouLossMode {
    /// `−ln(max(IoU, eps))` (MMDet default, FCOS).
    #[default]
    Log,
    /// `1 − max(IoU, eps)`.
    Linear,
    /// `1 − max(IoU, eps)²`.
    Square,
}

/// Row-wise IoU or GIoU of two `[M, 4]` xyxy box tensors → `[M]`.
///
/// Areas are `(x2 − x1)(y2 − y1)` (no `+1`), the intersection extent is clamped at 0, the
/// union and (GIoU) the enclosing area are clamped below at `eps`. So degenerate (zero or
/// inverted) boxes give finite values and finite gradients: e.g. two all-zero boxes have
/// IoU 0 and GIoU 0.
pub fn aligned_overlaps<B: Backend>(
    pred: Tensor<B, 2>,
    target: Tensor<B, 2>,
    mode: OverlapMode,
    eps: f32,
) -> Tensor<B, 1> {
    let [ax1, ay1, ax2, ay2] = unstack4(pred);
    let [bx1, by1, bx2, by2] = unstack4(target);
    let area_a = ax2
        .clone()
        .sub(ax1.clone())
        .mul(ay2.clone().sub(ay1.clone()));
    let area_b = bx2
        .clone()
        .sub(bx1.clone())
        .mul(by2.clone().sub(by1.clone()));
    let iw = min_pair_split(ax2.clone(), bx2.clone())
        .sub(max_pair_split(ax1.clone(), bx1.clone()))
        .clamp_min(0.0);
    let ih = min_pair_split(ay2.clone(), by2.clone())
        .sub(max_pair_split(ay1.clone(), by1.clone()))
        .clamp_min(0.0);
    let overlap = iw.mul(ih);
    let union = area_a.add(area_b).sub(overlap.clone()).clamp_min(eps);
    let iou = overlap.div(union.clone());
    match mode {
        OverlapMode::Iou => iou,
        OverlapMode::Giou => {
            let ew = max_pair_split(ax2, bx2)
                .sub(min_pair_split(ax1, bx1))
                .clamp_min(0.0);
            let eh = max_pair_split(ay2, by2)
                .sub(min_pair_split(ay1, by1))
                .clamp_min(0.0);
            let enclose = ew.mul(eh).clamp_min(eps);
            iou.sub(enclose.clone().sub(union).div(enclose))
        }
    }
}

/// Element-wise maximum whose gradient is split 50/50 between `a` and `b` where they are
/// equal, like torch's `maximum`.
///
/// Why not `Tensor::max_pair`: burn routes the whole gradient of a tie to one argument. For a
/// prediction that exactly matches its target every max/min is a tie, and the IoU loss then
/// gets a non-zero gradient (e.g. `(0.5, 0.5, −0.5, −0.5)` for −ln IoU) at its minimum,
/// where torch (and the true one-sided analysis) gives 0. The value is exact: at a tie the
/// midpoint `(a + b)/2` equals `a`.
pub fn max_pair_split<B: Backend, const D: usize>(
    a: Tensor<B, D>,
    b: Tensor<B, D>,
) -> Tensor<B, D> {
    let a_wins = a.clone().greater(b.clone());
    let b_wins = a.clone().lower(b.clone());
    let mid = a.clone().add(b.clone()).mul_scalar(0.5);
    mid.mask_where(a_wins, a).mask_where(b_wins, b)
}

/// Element-wise minimum with the tie gradient split 50/50 (see [`max_pair_split`]).
pub fn min_pair_split<B: Backend, const D: usize>(
    a: Tensor<B, D>,
    b: Tensor<B, D>,
) -> Tensor<B, D> {
    let a_wins = a.clone().lower(b.clone());
    let b_wins = a.clone().greater(b.clone());
    let mid = a.clone().add(b.clone()).mul_scalar(0.5);
    mid.mask_where(a_wins, a).mask_where(b_wins, b)
}

/// MMDet's early exit of `IoULoss` / `GIoULoss`: when a weight is given but none is
/// positive, the loss is a zero that is still connected to `pred` (so `backward` works and
/// gives zero gradients). Needs one device→host read of `max(weight)`, like MMDet's
/// `torch.any(weight > 0)`.
fn all_weights_non_positive<B: Backend>(weight: &Option<Tensor<B, 1>>) -> bool {
    match weight {
        None => false,
        Some(w) if w.dims()[0] == 0 => true,
        Some(w) => w.clone().max().into_scalar().elem::<f32>() <= 0.0,
    }
}

/// GIoU loss `1 − GIoU(pred, target)` (eps 1e-6), reduced:
/// `Σ_m loss_m·w_m / (avg_factor + ε)` (mean without `avg_factor`).
///
/// `pred`, `target`: `[M, 4]` xyxy; `target` is detached. `weight`: `[M]`. If a weight is
/// given and no entry is `> 0`, returns `pred.sum()·0` (graph-connected zero), like MMDet.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use crosskd_sdk::nn::losses::giou_loss;
/// let dev = Default::default();
/// let a = Tensor::<Flex, 2>::from_floats([[0.0, 0.0, 1.0, 1.0]], &dev);
/// let b = Tensor::<Flex, 2>::from_floats([[2.0, 2.0, 3.0, 3.0]], &dev);
/// // disjoint: IoU 0, union 2, enclose 9 → GIoU −7/9, loss 16/9
/// let loss = giou_loss(a, b, None, None).into_scalar();
/// assert!((loss - 16.0 / 9.0).abs() < 1e-6);
/// ```
pub fn giou_loss<B: Backend>(
    pred: Tensor<B, 2>,
    target: Tensor<B, 2>,
    weight: Option<Tensor<B, 1>>,
    avg_factor: Option<f32>,
) -> Tensor<B, 1> {
    if all_weights_non_positive(&weight) {
        return pred.sum().mul_scalar(0.0);
    }
    let giou = aligned_overlaps(pred, target.detach(), OverlapMode::Giou, IOU_LOSS_EPS);
    let loss = giou.neg().add_scalar(1.0);
    weight_reduce_rows(loss, weight, avg_factor)
}

/// IoU loss (FCOS regression, FCOS reg-KD), reduced like [`giou_loss`]; the IoU is clamped
/// below at 1e-6 before `mode` is applied, so zero overlap or degenerate boxes give
/// `−ln(1e-6) ≈ 13.8155` (Log) instead of `inf`, with zero gradient.
///
/// Same zero-weight early exit as [`giou_loss`].
pub fn iou_loss<B: Backend>(
    pred: Tensor<B, 2>,
    target: Tensor<B, 2>,
    weight: Option<Tensor<B, 1>>,
    avg_factor: Option<f32>,
    mode: IouLossMode,
) -> Tensor<B, 1> {
    if all_weights_non_positive(&weight) {
        return pred.sum().mul_scalar(0.0);
    }
    let iou = aligned_overlaps(pred, target.detach(), OverlapMode::Iou, IOU_LOSS_EPS)
        .clamp_min(IOU_LOSS_EPS);
    let loss = match mode {
        IouLossMode::Log => iou.log().neg(),
        IouLossMode::Linear => iou.neg().add_scalar(1.0),
        IouLossMode::Square => iou.square().neg().add_scalar(1.0),
    };
    weight_reduce_rows(loss, weight, avg_factor)
}

#[cfg(test)]
// Reference values are pasted from float64 output; f32 rounds them, which is intended.
#[allow(clippy::excessive_precision)]
mod tests {
    use super::*;
    use crate::nn::losses::test_util::*;

    // Rows: (a) [0,0,2,2] vs [1,1,3,3]: overlap 1, union 7, IoU 1/7, enclose 9,
    //           GIoU = 1/7 − 2/9 = −0.0793651 → loss 1.0793651; −ln(1/7) = 1.9459101
    //       (b) identical boxes: IoU 1, GIoU 1 → losses 0
    //       (c) [0,0,1,1] vs [2,2,3,3]: IoU 0, union 2, enclose 9 → GIoU loss 16/9;
    //           IoU clamped to 1e-6 → −ln 1e-6 = 13.815511
    //       (d) [0.5,0.2,2.5,3] vs [1,0,2,2]: overlap 1·1.8, union 5.6 + 2 − 1.8 = 5.8,
    //           IoU 0.3103448, enclose 2·3 = 6 → GIoU 0.3103448 − 0.2/6 = 0.2770115
    // Gradients: torch float64 autograd of the same formulas (torch.max/min/clamp), loss =
    // (el·w).sum() / (3 + eps_f32).
    const A: [f32; 16] = [
        0.0, 0.0, 2.0, 2.0, 1.0, 1.0, 3.0, 3.0, 0.0, 0.0, 1.0, 1.0, 0.5, 0.2, 2.5, 3.0,
    ];
    const B_: [f32; 16] = [
        1.0, 1.0, 3.0, 3.0, 1.0, 1.0, 3.0, 3.0, 2.0, 2.0, 3.0, 3.0, 1.0, 0.0, 2.0, 2.0,
    ];
    const W: [f32; 4] = [1.0, 0.5, 2.0, 1.5];

    #[test]
    fn giou_values_and_gradient() {
        let a = t2::<AD>(&A, 4).require_grad();
        let b = t2::<AD>(&B_, 4).require_grad();
        let el = aligned_overlaps(a.clone(), b.clone(), OverlapMode::Giou, IOU_LOSS_EPS);
        assert_close(
            &vals(el),
            &[-0.079_365_08, 1.0, -0.777_777_8, 0.277_011_5],
            1e-6,
        );
        let loss = giou_loss(a.clone(), b.clone(), Some(t1::<AD>(&W)), Some(3.0));
        assert_close(&[scalar(loss.clone())], &[1.906_467_7], 1e-6);
        let grads = loss.backward();
        let g = vals(a.grad(&grads).unwrap());
        // Row (b) is identical boxes: every max/min is a tie; torch splits tie gradients 50/50
        // and so does max_pair_split/min_pair_split, giving 0 there (burn's plain
        // max_pair/min_pair would not).
        let expected = [
            -0.025_951_12,
            -0.025_951_12,
            -0.077_853_36,
            -0.077_853_36,
            0.0,
            0.0,
            0.0,
            0.0,
            0.024_691_357,
            0.024_691_357,
            -0.074_074_07,
            -0.074_074_07,
            -0.083_244_15,
            0.142_786_36,
            0.083_244_15,
            0.047_952_17,
        ];
        assert_close(&g, &expected, 1e-5);
        assert!(b.grad(&grads).is_none(), "target must be detached");
    }

    #[test]
    fn iou_log_and_linear_values_and_gradient() {
        let a = t2::<AD>(&A, 4).require_grad();
        let loss = iou_loss(
            a.clone(),
            t2::<AD>(&B_, 4),
            Some(t1::<AD>(&W)),
            Some(3.0),
            IouLossMode::Log,
        );
        // (1.9459101 + 0 + 2·13.815511 + 1.5·1.1700713) / 3
        assert_close(&[scalar(loss.clone())], &[10.444_012], 1e-6);
        let g = vals(a.grad(&loss.backward()).unwrap());
        // Rows (b) (perfect match, all ties) and (c) (IoU clamped at 1e-6) have zero gradient.
        let expected = [
            -0.095_238_09,
            -0.095_238_09,
            -0.285_714_27,
            -0.285_714_27,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            -0.241_379_3,
            0.191_570_87,
            0.241_379_3,
            0.172_413_79,
        ];
        assert_close(&g, &expected, 1e-5);

        let lin = iou_loss(
            t2::<TB>(&A, 4),
            t2::<TB>(&B_, 4),
            Some(t1::<TB>(&W)),
            Some(3.0),
            IouLossMode::Linear,
        );
        // (0.8571429 + 0 + 2·0.999999 + 1.5·0.6896552) / 3 = 1.2972078
        assert_close(&[scalar(lin)], &[1.297_207_8], 1e-6);
        let sq = iou_loss(
            t2::<TB>(&A[..4], 4),
            t2::<TB>(&B_[..4], 4),
            None,
            None,
            IouLossMode::Square,
        );
        // 1 − 1/49 = 0.9795918
        assert_close(&[scalar(sq)], &[0.979_591_8], 1e-6);
    }

    #[test]
    fn tie_split_max_min_values_and_gradients() {
        // max/min values: (1, 3) → 3 / 1; (2, 2) → 2 / 2. Gradient of Σ max wrt a:
        // a wins → 1, b wins → 0, tie → 0.5 (torch.maximum convention).
        let a = t1::<AD>(&[1.0, 2.0, 5.0]).require_grad();
        let b = t1::<AD>(&[3.0, 2.0, 4.0]).require_grad();
        let mx = max_pair_split(a.clone(), b.clone());
        let mn = min_pair_split(a.clone(), b.clone());
        assert_close(&vals(mx.clone()), &[3.0, 2.0, 5.0], 0.0);
        assert_close(&vals(mn.clone()), &[1.0, 2.0, 4.0], 0.0);
        let grads = mx.sum().add(mn.sum().mul_scalar(10.0)).backward();
        // ∂/∂a = max-part [0, .5, 1] + 10·min-part [1, .5, 0] = [10, 5.5, 1]
        assert_close(&vals(a.grad(&grads).unwrap()), &[10.0, 5.5, 1.0], 1e-6);
        assert_close(&vals(b.grad(&grads).unwrap()), &[1.0, 5.5, 10.0], 1e-6);
    }

    #[test]
    fn all_zero_weights_give_graph_connected_zero() {
        for giou in [true, false] {
            let a = t2::<AD>(&A, 4).require_grad();
            let w = Some(t1::<AD>(&[0.0; 4]));
            let loss = if giou {
                giou_loss(a.clone(), t2::<AD>(&B_, 4), w, Some(3.0))
            } else {
                iou_loss(a.clone(), t2::<AD>(&B_, 4), w, Some(3.0), IouLossMode::Log)
            };
            assert_eq!(scalar(loss.clone()), 0.0);
            let g = a
                .grad(&loss.backward())
                .expect("pred must stay in the graph");
            assert_eq!(vals(g), vec![0.0; 16]);
        }
    }

    #[test]
    fn degenerate_zero_boxes_are_finite_in_value_and_gradient() {
        // ATSS KD decodes at zeroed padding anchors → all-zero boxes on both sides.
        // IoU: 0/eps = 0 → GIoU 0 − (eps − eps)/eps = 0 → GIoU loss 1; IoU loss −ln 1e-6.
        let zeros = [0.0f32; 8];
        let a = t2::<AD>(&zeros, 4).require_grad();
        let loss = giou_loss(
            a.clone(),
            t2::<AD>(&zeros, 4),
            Some(t1::<AD>(&[1.0, 0.0])),
            None,
        );
        assert_close(&[scalar(loss.clone())], &[0.5], 1e-6);
        assert_finite(&vals(a.grad(&loss.backward()).unwrap()));

        let a = t2::<AD>(&zeros, 4).require_grad();
        let loss = iou_loss(
            a.clone(),
            t2::<AD>(&zeros, 4),
            None,
            Some(2.0),
            IouLossMode::Log,
        );
        assert_close(&[scalar(loss.clone())], &[13.815_511], 1e-5);
        assert_finite(&vals(a.grad(&loss.backward()).unwrap()));

        // Inverted pred box (x2 < x1) against a real box: negative area, union clamped.
        let a = t2::<AD>(&[3.0, 3.0, 1.0, 1.0], 4).require_grad();
        let loss = giou_loss(a.clone(), t2::<AD>(&[0.0, 0.0, 2.0, 2.0], 4), None, None);
        assert_finite(&[scalar(loss.clone())]);
        assert_finite(&vals(a.grad(&loss.backward()).unwrap()));
    }
}
