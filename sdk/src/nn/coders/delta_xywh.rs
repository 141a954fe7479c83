//! `DeltaXYWHBBoxCoder` (RetinaNet, ATSS): anchor-relative centre/size deltas.

use burn::tensor::{backend::Backend, Tensor};

use super::columns::{head2, tail2};

/// MMDet's default `wh_ratio_clip` (16 / 1000).
pub const WH_RATIO_CLIP: f32 = 16.0 / 1000.0;

/// `|ln(wh_ratio_clip)| = ln(1000/16) ≈ 4.135` — the default clamp on decoded `dw, dh`.
pub fn default_max_ratio() -> f32 {
    WH_RATIO_CLIP.ln().abs()
}

/// Means of every config (all zero).
pub const ZERO_MEANS: [f32; 4] = [0.0; 4];
/// RetinaNet stds.
pub const RETINANET_STDS: [f32; 4] = [1.0; 4];
/// ATSS stds.
pub const ATSS_STDS: [f32; 4] = [0.1, 0.1, 0.2, 0.2];

fn row4<B: Backend>(v: [f32; 4], device: &B::Device) -> Tensor<B, 2> {
    Tensor::<B, 1>::from_floats(v, device).reshape([1, 4])
}

/// Decodes deltas `[M, 4]` against anchors `[M, 4]` (xyxy) into xyxy boxes `[M, 4]`.
///
/// `d = deltas·stds + means`; centre `p_xy + p_wh·d_xy`; size `p_wh·exp(clamp(d_wh, ±max_ratio))`.
/// No clipping to the image (CrossKD's KD decoding does not clip). Differentiable w.r.t.
/// `deltas` (and anchors); the gradient of `d_wh` is zero where the clamp is active.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use crosskd_sdk::nn::coders::delta_xywh::{decode, default_max_ratio, RETINANET_STDS, ZERO_MEANS};
/// let dev = Default::default();
/// let anchors = Tensor::<Flex, 2>::from_floats([[0.0, 0.0, 10.0, 20.0]], &dev);
/// let deltas = Tensor::<Flex, 2>::from_floats([[0.1, 0.2, 2f32.ln(), 0.0]], &dev);
/// let b = decode(anchors, deltas, ZERO_MEANS, RETINANET_STDS, default_max_ratio());
/// // centre (5 + 1, 10 + 4), size (20, 20)
/// let v = b.into_data().to_vec::<f32>().unwrap();
/// assert!(v.iter().zip([-4.0, 4.0, 16.0, 24.0]).all(|(a, e)| (a - e).abs() < 1e-5));
/// ```
pub fn decode<B: Backend>(
    anchors: Tensor<B, 2>,
    deltas: Tensor<B, 2>,
    means: [f32; 4],
    stds: [f32; 4],
    max_ratio: f32,
) -> Tensor<B, 2> {
    let device = deltas.device();
    let d = deltas
        .mul(row4::<B>(stds, &device))
        .add(row4::<B>(means, &device));
    let p_xy = head2(anchors.clone())
        .add(tail2(anchors.clone()))
        .mul_scalar(0.5);
    let p_wh = tail2(anchors.clone()).sub(head2(anchors));
    let d_xy = head2(d.clone());
    let d_wh = tail2(d).clamp(-max_ratio, max_ratio);
    let g_xy = p_xy.add(p_wh.clone().mul(d_xy));
    let half_wh = p_wh.mul(d_wh.exp()).mul_scalar(0.5);
    Tensor::cat(
        vec![g_xy.clone().sub(half_wh.clone()), g_xy.add(half_wh)],
        1,
    )
}

/// Encodes GT boxes `[M, 4]` against anchors/proposals `[M, 4]` into deltas `[M, 4]`:
/// `((g_xy − p_xy)/p_wh, ln(g_wh/p_wh))`, then `(· − means)/stds`.
///
/// Boxes must have positive width/height (a zero-size GT or anchor gives ±inf / NaN, as in
/// MMDet); this is a target computation, normally run on the plain backend.
pub fn encode<B: Backend>(
    anchors: Tensor<B, 2>,
    gt: Tensor<B, 2>,
    means: [f32; 4],
    stds: [f32; 4],
) -> Tensor<B, 2> {
    let device = gt.device();
    let p_xy = head2(anchors.clone())
        .add(tail2(anchors.clone()))
        .mul_scalar(0.5);
    let p_wh = tail2(anchors.clone()).sub(head2(anchors));
    let g_xy = head2(gt.clone()).add(tail2(gt.clone())).mul_scalar(0.5);
    let g_wh = tail2(gt.clone()).sub(head2(gt));
    let d_xy = g_xy.sub(p_xy).div(p_wh.clone());
    let d_wh = g_wh.div(p_wh).log();
    Tensor::cat(vec![d_xy, d_wh], 1)
        .sub(row4::<B>(means, &device))
        .div(row4::<B>(stds, &device))
}

#[cfg(test)]
// Reference values are pasted from float64 output; f32 rounds them, which is intended.
#[allow(clippy::excessive_precision)]
mod tests {
    use super::*;
    use crate::nn::losses::test_util::*;

    const ANCHORS: [f32; 8] = [0.0, 0.0, 10.0, 20.0, 8.0, 8.0, 24.0, 16.0];

    #[test]
    fn decode_hand_values_and_clamp() {
        // Anchor 0: centre (5, 10), size (10, 20); deltas (0.1, 0.2, ln 2, 0), stds 1:
        //   centre (5 + 1, 10 + 4) = (6, 14), size (20, 20) → [−4, 4, 16, 24]
        // Anchor 1: centre (16, 12), size (16, 8); deltas (−0.5, 0.25, 10, −10) clamped to
        //   ±ln(62.5) → size (16·62.5, 8/62.5) = (1000, 0.128); centre (8, 14)
        //   → [8 − 500, 14 − 0.064, 8 + 500, 14 + 0.064]
        let deltas = t2::<TB>(&[0.1, 0.2, 2f32.ln(), 0.0, -0.5, 0.25, 10.0, -10.0], 4);
        let b = decode(
            t2::<TB>(&ANCHORS, 4),
            deltas,
            ZERO_MEANS,
            RETINANET_STDS,
            default_max_ratio(),
        );
        assert_close(
            &vals(b),
            &[-4.0, 4.0, 16.0, 24.0, -492.0, 13.936, 508.0, 14.064],
            1e-5,
        );
        assert!((default_max_ratio() - 62.5f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn atss_stds_scale_deltas() {
        // stds (0.1, 0.1, 0.2, 0.2), means (0.5, 0, 0, 0): deltas (5, 2, 5·ln 2, 0)
        // → d = (1, 0.2, ln 2, 0) → centre (5 + 10, 10 + 4), size (20, 20)
        let deltas = t2::<TB>(&[5.0, 2.0, 5.0 * 2f32.ln(), 0.0], 4);
        let b = decode(
            t2::<TB>(&ANCHORS[..4], 4),
            deltas,
            [0.5, 0.0, 0.0, 0.0],
            ATSS_STDS,
            default_max_ratio(),
        );
        assert_close(&vals(b), &[5.0, 4.0, 25.0, 24.0], 1e-5);
    }

    #[test]
    fn encode_decode_round_trip() {
        let gt = t2::<TB>(&[1.0, 2.0, 9.0, 30.0, 10.0, 5.0, 20.0, 13.0], 4);
        let d = encode(t2::<TB>(&ANCHORS, 4), gt.clone(), ZERO_MEANS, ATSS_STDS);
        // Anchor 0 vs GT 0: centre (5,16) vs (5,10), size (8,28) vs (10,20):
        //   (0/10, 6/20, ln 0.8, ln 1.4) / stds = (0, 3, −1.115718, 1.682361)
        assert_close(
            &vals(d.clone())[..4],
            &[0.0, 3.0, -1.115_718, 1.682_361],
            1e-5,
        );
        let back = decode(
            t2::<TB>(&ANCHORS, 4),
            d,
            ZERO_MEANS,
            ATSS_STDS,
            default_max_ratio(),
        );
        assert_close(&vals(back), &vals(gt), 1e-5);
    }

    #[test]
    fn decode_gradient_and_clamped_zero_gradient() {
        // ∂/∂deltas of Σ boxes·c for anchor (0,0,10,20), stds 1, deltas (0,0,0,0) and
        // c = (1, 2, 3, 4): x1 = 5 + 10dx − 5e^{dw}, x2 = 5 + 10dx + 5e^{dw} etc.
        //   ∂/∂dx = 10(c0 + c2) = 40;  ∂/∂dy = 20(c1 + c3) = 120
        //   ∂/∂dw = 5(c2 − c0) = 10;   ∂/∂dh = 10(c3 − c1) = 20
        // Second row: dw = 10 is clamped → ∂/∂dw = 0.
        let deltas = t2::<AD>(&[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 10.0, 0.0], 4).require_grad();
        let anchors = t2::<AD>(&[0.0, 0.0, 10.0, 20.0, 0.0, 0.0, 10.0, 20.0], 4);
        let b = decode(
            anchors,
            deltas.clone(),
            ZERO_MEANS,
            RETINANET_STDS,
            default_max_ratio(),
        );
        let c = t2::<AD>(&[1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0], 4);
        let g = vals(deltas.grad(&b.mul(c).sum().backward()).unwrap());
        assert_close(&g, &[40.0, 120.0, 10.0, 20.0, 40.0, 120.0, 0.0, 20.0], 1e-5);
    }
}
