//! Point ↔ (left, top, right, bottom) distance coding (FCOS, GFL).

use burn::tensor::{backend::Backend, Tensor};

use super::columns::{head2, tail2};

/// MMDet's `bbox2distance` eps: with `max_dis = Some(m)` distances are clamped to
/// `[0, m − 0.1]`.
pub const BBOX2DISTANCE_EPS: f32 = 0.1;

/// Decodes distances `[M, 4]` (l, t, r, b) at points `[M, 2]` (x, y) into xyxy boxes
/// `[M, 4]`: `(x − l, y − t, x + r, y + b)`. No clipping to the image. Differentiable.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use crosskd_sdk::nn::coders::distance2bbox;
/// let dev = Default::default();
/// let p = Tensor::<Flex, 2>::from_floats([[5.0, 5.0]], &dev);
/// let d = Tensor::<Flex, 2>::from_floats([[1.0, 2.0, 3.0, 4.0]], &dev);
/// let b = distance2bbox(p, d).into_data().to_vec::<f32>().unwrap();
/// assert_eq!(b, vec![4.0, 3.0, 8.0, 9.0]);
/// ```
pub fn distance2bbox<B: Backend>(points: Tensor<B, 2>, distances: Tensor<B, 2>) -> Tensor<B, 2> {
    let lt = points.clone().sub(head2(distances.clone()));
    let rb = points.add(tail2(distances));
    Tensor::cat(vec![lt, rb], 1)
}

/// Encodes xyxy boxes `[M, 4]` as distances `[M, 4]` from points `[M, 2]`:
/// `(x − x1, y − y1, x2 − x, y2 − y)`; with `max_dis = Some(m)` each distance is clamped to
/// `[0, m − 0.1]` (GFL: `m = reg_max = 16`, distances in stride units). `None` leaves them
/// unclamped (negative for points outside the box).
pub fn bbox2distance<B: Backend>(
    points: Tensor<B, 2>,
    boxes: Tensor<B, 2>,
    max_dis: Option<f32>,
) -> Tensor<B, 2> {
    let lt = points.clone().sub(head2(boxes.clone()));
    let rb = tail2(boxes).sub(points);
    let d = Tensor::cat(vec![lt, rb], 1);
    match max_dis {
        Some(m) => d.clamp(0.0, m - BBOX2DISTANCE_EPS),
        None => d,
    }
}

#[cfg(test)]
// Reference values are pasted from float64 output; f32 rounds them, which is intended.
#[allow(clippy::excessive_precision)]
mod tests {
    use super::*;
    use crate::nn::losses::test_util::*;

    #[test]
    fn decode_values_and_gradient() {
        // (5,5) + (1,2,3,4) → (4, 3, 8, 9); (0,10) + (0.5,0,2,1) → (−0.5, 10, 2, 11)
        let p = t2::<AD>(&[5.0, 5.0, 0.0, 10.0], 2);
        let d = t2::<AD>(&[1.0, 2.0, 3.0, 4.0, 0.5, 0.0, 2.0, 1.0], 4).require_grad();
        let b = distance2bbox(p, d.clone());
        assert_close(
            &vals(b.clone()),
            &[4.0, 3.0, 8.0, 9.0, -0.5, 10.0, 2.0, 11.0],
            1e-6,
        );
        // ∂Σb/∂d = (−1, −1, 1, 1) per row
        let g = vals(d.grad(&b.sum().backward()).unwrap());
        assert_close(&g, &[-1.0, -1.0, 1.0, 1.0, -1.0, -1.0, 1.0, 1.0], 1e-6);
    }

    #[test]
    fn encode_with_and_without_clamp() {
        // point (5,5), box (4,3,30,9): (1, 2, 25, 4); max 16 → (1, 2, 15.9, 4)
        // point (0,0), box (1,1,2,2) (point outside): (−1, −1, 2, 2); clamped → (0, 0, 2, 2)
        let p = t2::<TB>(&[5.0, 5.0, 0.0, 0.0], 2);
        let b = t2::<TB>(&[4.0, 3.0, 30.0, 9.0, 1.0, 1.0, 2.0, 2.0], 4);
        let raw = bbox2distance(p.clone(), b.clone(), None);
        assert_close(
            &vals(raw.clone()),
            &[1.0, 2.0, 25.0, 4.0, -1.0, -1.0, 2.0, 2.0],
            1e-6,
        );
        let clamped = bbox2distance(p.clone(), b, Some(16.0));
        assert_close(
            &vals(clamped),
            &[1.0, 2.0, 15.9, 4.0, 0.0, 0.0, 2.0, 2.0],
            1e-6,
        );
        // Round trip without clamp.
        let back = distance2bbox(p, raw);
        assert_close(
            &vals(back),
            &[4.0, 3.0, 30.0, 9.0, 1.0, 1.0, 2.0, 2.0],
            1e-6,
        );
    }
}
