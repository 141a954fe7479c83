//! FCOS boxes: pixel distances `(l, t, r, b)` from the prior's point
//! `((x + offset) * stride, (y + offset) * stride)`.

use super::PriorPos;
use crate::boxes::BBox;
use crate::coders::distance2bbox;
use crate::priors::grid_point;

/// Boxes of the kept priors: distances are channels 0..4, already in pixels
/// (the network applied `exp` and the level Scale); clipped to `img_shape = (h, w)`.
pub(crate) fn decode_boxes(
    bbox_pred: &[f32],
    hw: usize,
    stride: f32,
    offset: f32,
    positions: &[PriorPos],
    img_shape: (f32, f32),
) -> Vec<BBox> {
    positions
        .iter()
        .map(|p| {
            let point = grid_point(stride, p.x, p.y, offset);
            let dist: [f32; 4] = std::array::from_fn(|j| bbox_pred[j * hw + p.cell]);
            distance2bbox(point, dist, Some(img_shape))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::{postprocess, DecodeSpec, Detection, HeadKind, LevelOutput, TestConfig};

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    fn assert_det(d: &Detection, class_id: usize, score: f64, bbox: [f32; 4]) {
        assert_eq!(d.class_id, class_id, "{d:?}");
        assert!(
            (d.score as f64 - score).abs() < 1e-6,
            "{d:?} expected score {score}"
        );
        assert_eq!(d.bbox, bbox, "{d:?}");
    }

    #[test]
    fn fcos_centerness_reorders_after_top_k() {
        // 1x2 map at stride 8: points (4, 4) and (12, 4). 2 classes.
        let low = ((0.055f64 / 0.945).ln()) as f32; // sigmoid = 0.055, just above 0.05
        let cls = [2.0, low, /* class 1: */ -10.0, 0.0];
        // Cell 0: (l,t,r,b) = (4,4,10,6) → [0, 0, 14, 10]; cell 1: (2,3,4,5) → [10, 1, 16, 9].
        let reg = [4.0, 2.0, 4.0, 3.0, 10.0, 4.0, 6.0, 5.0];
        let ctr = [-2.0, 2.0];
        let spec = DecodeSpec::fcos(2).with_strides(&[8.0]);
        let level = LevelOutput {
            cls_score: &cls,
            bbox_pred: &reg,
            centerness: Some(&ctr),
            height: 1,
            width: 2,
        };
        let mut cfg = TestConfig::for_kind(HeadKind::Fcos);
        let dets = postprocess(&spec, &cfg, &[level], (100.0, 100.0), (1.0, 1.0)).unwrap();
        // By hand: final scores sigmoid(cls) * sigmoid(ctr):
        //   (cell 1, class 1) 0.5 * 0.880797 = 0.440399
        //   (cell 0, class 0) 0.880797 * 0.119203 = 0.104994 (best class score, ranked second)
        //   (cell 1, class 0) 0.055 * 0.880797 = 0.048444 (below score_thr after the
        //   factor, still kept: the threshold applies before it).
        // Class 0 boxes overlap by 4x8 = 32 / (140 + 48 - 32) = 0.205 < 0.5: no suppression.
        assert_eq!(dets.len(), 3);
        assert_det(&dets[0], 1, 0.5 * sig(2.0), [10.0, 1.0, 16.0, 9.0]);
        assert_det(&dets[1], 0, sig(2.0) * sig(-2.0), [0.0, 0.0, 14.0, 10.0]);
        assert_det(&dets[2], 0, 0.055 * sig(2.0), [10.0, 1.0, 16.0, 9.0]);
        // nms_pre 1 ranks by class score alone: only (cell 0, class 0) survives.
        cfg.nms_pre = 1;
        let dets = postprocess(&spec, &cfg, &[level], (100.0, 100.0), (1.0, 1.0)).unwrap();
        assert_eq!(dets.len(), 1);
        assert_det(&dets[0], 0, sig(2.0) * sig(-2.0), [0.0, 0.0, 14.0, 10.0]);
    }
}
