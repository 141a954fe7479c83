//! GFLv1 boxes: each side is a softmax distribution over `reg_max + 1` bins; its
//! expectation `Σ p_j · j` times the stride is the distance from the anchor centre.
//!
//! ```
//! use crosskd_sdk::decode::gfl::integral;
//! // Two equal logits on bins 2 and 3, the rest negligible: expectation 2.5.
//! let mut logits = [-1e4f32; 17];
//! logits[2] = 0.0;
//! logits[3] = 0.0;
//! assert_eq!(integral(&logits), 2.5);
//! ```

use super::PriorPos;
use crate::boxes::{center, BBox};
use crate::coders::distance2bbox;
use crate::priors::shift_anchor;

/// Expectation of the bin index under `softmax(logits)`: `Σ_j softmax(logits)_j · j`.
///
/// The softmax subtracts the maximum first (as PyTorch does), so large logits are safe.
/// Returns 0 for an empty slice.
pub fn integral(logits: &[f32]) -> f32 {
    let mut exps = logits.to_vec();
    integral_in_place(&mut exps)
}

/// [`integral`] with `logits` as scratch (overwritten by the exponentials): no
/// allocation, and each `exp` computed once — the arithmetic and its order are
/// [`integral`]'s, so the result is bit-identical.
pub(crate) fn integral_in_place(logits: &mut [f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for l in logits.iter_mut() {
        *l = (*l - max).exp();
        sum += *l;
    }
    logits
        .iter()
        .enumerate()
        .map(|(j, &e)| e / sum * j as f32)
        .sum()
}

/// Boxes of the kept priors: per side, gather the `reg_max + 1` bin logits
/// (channel `side * (reg_max + 1) + bin`), integrate, multiply by the stride and
/// step out from the anchor centre; clipped to `img_shape = (h, w)`.
pub(crate) fn decode_boxes(
    bbox_pred: &[f32],
    hw: usize,
    reg_max: usize,
    stride: f32,
    base_anchors: &[BBox],
    positions: &[PriorPos],
    img_shape: (f32, f32),
) -> Vec<BBox> {
    let bins = reg_max + 1;
    let mut logits = vec![0.0f32; bins];
    positions
        .iter()
        .map(|p| {
            let anchor = shift_anchor(&base_anchors[p.anchor], stride, p.x, p.y);
            let (cx, cy) = center(&anchor);
            let dist: [f32; 4] = std::array::from_fn(|side| {
                for (j, l) in logits.iter_mut().enumerate() {
                    *l = bbox_pred[(side * bins + j) * hw + p.cell];
                }
                integral_in_place(&mut logits) * stride
            });
            distance2bbox([cx, cy], dist, Some(img_shape))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integral_by_hand() {
        // Logits [0, ln 2, 0] → probabilities [1/4, 1/2, 1/4] → 0/4 + 1/2 + 2/4 = 1.
        assert!((integral(&[0.0, 2f32.ln(), 0.0]) - 1.0).abs() < 1e-6);
        // Uniform over 17 bins → mean index 8.
        assert!((integral(&[3.0; 17]) - 8.0).abs() < 1e-5);
        // One dominant bin (others underflow to exactly 0).
        let mut l = [-1e4f32; 17];
        l[16] = 5.0;
        assert_eq!(integral(&l), 16.0);
        // Huge logits do not overflow (max is subtracted first).
        assert!((integral(&[1000.0, 1000.0]) - 0.5).abs() < 1e-6);
    }
}

#[cfg(test)]
mod postprocess_tests {
    use crate::{postprocess, DecodeSpec, Detection, LevelOutput, TestConfig};

    const HW: usize = 4; // a 2x2 map at stride 8
    const BINS: usize = 17;

    /// One GFL level: 2 classes, cells 0..4 = (y0,x0), (y0,x1), (y1,x0), (y1,x1).
    /// Class logits are -10 (sigmoid 4.5e-5, below 0.05) except the given ones; box
    /// logits are -1e4 (exp underflows to exactly 0) except bins set to 0, so each side's
    /// distribution is uniform over its chosen bins.
    fn level_data(class_of_cell1: usize) -> (Vec<f32>, Vec<f32>) {
        let mut cls = vec![-10.0f32; 2 * HW];
        cls[HW + 2] = 2.0; // class 1 at cell 2: sigmoid(2) = 0.880797
        cls[class_of_cell1 * HW + 1] = 0.0; // cell 1: sigmoid(0) = 0.5
        let mut reg = vec![-1e4f32; 4 * BINS * HW];
        let mut set = |cell: usize, side: usize, bins: &[usize]| {
            for &b in bins {
                reg[(side * BINS + b) * HW + cell] = 0.0;
            }
        };
        // Cell 2, anchor centre (0, 8): l = 2.5*8 = 20, t = 1*8 = 8, r = 4*8 = 32, b = 0.5*8 = 4.
        set(2, 0, &[2, 3]);
        set(2, 1, &[1]);
        set(2, 2, &[4]);
        set(2, 3, &[0, 1]);
        // Cell 1, anchor centre (8, 0): l = 8, t = mean(0,1,2)*8 = 8, r = 5*8 = 40, b = 2*8 = 16.
        set(1, 0, &[1]);
        set(1, 1, &[0, 1, 2]);
        set(1, 2, &[5]);
        set(1, 3, &[2]);
        (cls, reg)
    }

    fn spec() -> DecodeSpec {
        DecodeSpec::gfl(2).with_strides(&[8.0])
    }

    fn run(class_of_cell1: usize, cfg: &TestConfig, scale: (f32, f32)) -> Vec<Detection> {
        let (cls, reg) = level_data(class_of_cell1);
        let level = LevelOutput {
            cls_score: &cls,
            bbox_pred: &reg,
            centerness: None,
            height: 2,
            width: 2,
        };
        // Resized image 30 high, 40 wide.
        postprocess(&spec(), cfg, &[level], (30.0, 40.0), scale).unwrap()
    }

    fn assert_det(d: &Detection, class_id: usize, score: f32, bbox: [f32; 4]) {
        assert_eq!(d.class_id, class_id, "{d:?}");
        assert!((d.score - score).abs() < 1e-6, "{d:?}");
        for k in 0..4 {
            assert!((d.bbox[k] - bbox[k]).abs() < 1e-4, "{d:?} vs {bbox:?}");
        }
    }

    #[test]
    fn gfl_boxes_by_hand() {
        // By hand: cell 2 → [0-20, 8-8, 0+32, 8+4] = [-20, 0, 32, 12], clipped to w=40 →
        // [0, 0, 32, 12]. Cell 1 → [8-8, 0-8, 8+40, 0+16] = [0, -8, 48, 16] → [0, 0, 40, 16].
        let cfg = TestConfig::for_kind(crate::HeadKind::Gfl);
        let dets = run(0, &cfg, (1.0, 1.0));
        assert_eq!(dets.len(), 2);
        assert_det(&dets[0], 1, 0.880_797, [0.0, 0.0, 32.0, 12.0]);
        assert_det(&dets[1], 0, 0.5, [0.0, 0.0, 40.0, 16.0]);
    }

    #[test]
    fn gfl_rescales_x_and_y_separately() {
        // scale_factor (w 2.0, h 0.5): x / 2, y / 0.5 = y * 2.
        let cfg = TestConfig::for_kind(crate::HeadKind::Gfl);
        let dets = run(0, &cfg, (2.0, 0.5));
        assert_det(&dets[0], 1, 0.880_797, [0.0, 0.0, 16.0, 24.0]);
        assert_det(&dets[1], 0, 0.5, [0.0, 0.0, 20.0, 32.0]);
    }

    #[test]
    fn gfl_same_class_nms_is_strict() {
        // Both class 1: IoU([0,0,32,12], [0,0,40,16]) = 384 / 640 = 0.6 exactly.
        let mut cfg = TestConfig::for_kind(crate::HeadKind::Gfl);
        assert_eq!(run(1, &cfg, (1.0, 1.0)).len(), 2); // 0.6 is not > 0.6
        cfg.iou_thr = 0.59;
        let dets = run(1, &cfg, (1.0, 1.0));
        assert_eq!(dets.len(), 1);
        assert_det(&dets[0], 1, 0.880_797, [0.0, 0.0, 32.0, 12.0]);
    }
}
