//! RetinaNet and ATSS boxes: `DeltaXYWH` deltas applied to the prior's anchor.

use super::PriorPos;
use crate::boxes::BBox;
use crate::coders::DeltaXywhCoder;
use crate::priors::shift_anchor;

/// Boxes of the kept priors: deltas of anchor `a` are channels `a * 4 + j`;
/// decoded against anchor `base_anchors[a]` moved to the prior's cell, clipped to
/// `img_shape = (h, w)`.
pub(crate) fn decode_boxes(
    bbox_pred: &[f32],
    hw: usize,
    coder: &DeltaXywhCoder,
    stride: f32,
    base_anchors: &[BBox],
    positions: &[PriorPos],
    img_shape: (f32, f32),
) -> Vec<BBox> {
    positions
        .iter()
        .map(|p| {
            let anchor = shift_anchor(&base_anchors[p.anchor], stride, p.x, p.y);
            let delta: [f32; 4] =
                std::array::from_fn(|j| bbox_pred[(p.anchor * 4 + j) * hw + p.cell]);
            coder.decode(&anchor, &delta, Some(img_shape))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::{postprocess, DecodeSpec, Detection, HeadKind, LevelOutput, TestConfig};

    fn assert_det(d: &Detection, class_id: usize, score: f64, bbox: [f64; 4]) {
        assert_eq!(d.class_id, class_id, "{d:?}");
        assert!((d.score as f64 - score).abs() < 1e-6, "{d:?}");
        for k in 0..4 {
            assert!(
                (d.bbox[k] as f64 - bbox[k]).abs() < 1e-3,
                "{d:?} vs {bbox:?}"
            );
        }
    }

    #[test]
    fn retinanet_picks_the_right_anchor_of_nine() {
        // 5x5 map at stride 8, 3 classes, 9 anchors: cls channel a*3 + c, deltas a*4 + j.
        let (h, w, a_n, c_n) = (5usize, 5usize, 9usize, 3usize);
        let hw = h * w;
        let mut cls = vec![-10.0f32; a_n * c_n * hw];
        // Decoy deltas everywhere: a wrong anchor or channel would move the box a lot.
        let mut reg = vec![3.0f32; a_n * 4 * hw];
        // Prior 1: cell (y3, x4) = 19, anchor 7 (ratio 2, scale 4*2^(1/3)), class 2.
        cls[(7 * c_n + 2) * hw + 19] = 1.5; // sigmoid(1.5) = 0.8175745
        let d7 = [0.1, 0.2, 2f32.ln(), 0.0];
        for (j, d) in d7.iter().enumerate() {
            reg[(7 * 4 + j) * hw + 19] = *d;
        }
        // Prior 2: cell (y1, x1) = 6, anchor 1 (ratio 0.5, scale 4*2^(1/3)), class 0, zero deltas.
        cls[(c_n) * hw + 6] = 0.0; // sigmoid(0) = 0.5
        for j in 0..4 {
            reg[(4 + j) * hw + 6] = 0.0;
        }
        let spec = DecodeSpec::retinanet(3).with_strides(&[8.0]);
        let level = LevelOutput {
            cls_score: &cls,
            bbox_pred: &reg,
            centerness: None,
            height: h,
            width: w,
        };
        let cfg = TestConfig::for_kind(HeadKind::RetinaNet);
        let dets = postprocess(&spec, &cfg, &[level], (60.0, 100.0), (1.0, 1.0)).unwrap();
        assert_eq!(dets.len(), 2);

        // By hand (closed forms): s = 4 * 2^(1/3). Anchor 7 has ratio h/w = 2:
        // w = 8 s / sqrt 2 = 28.508767, h = 8 s sqrt 2 = 57.017534, centre (4*8, 3*8) = (32, 24).
        // gx = 32 + 0.1 w, gy = 24 + 0.2 h, gw = 2 w, gh = h; y2 = 63.91 clipped to 60.
        let s = 4.0 * 2f64.powf(1.0 / 3.0);
        let (w7, h7) = (8.0 * s / 2f64.sqrt(), 8.0 * s * 2f64.sqrt());
        let (gx, gy) = (32.0 + 0.1 * w7, 24.0 + 0.2 * h7);
        let sig15 = 1.0 / (1.0 + (-1.5f64).exp());
        assert_det(&dets[0], 2, sig15, [gx - w7, gy - h7 / 2.0, gx + w7, 60.0]);
        // Anchor 1 has ratio 0.5: w = 8 s sqrt 2, h = 8 s / sqrt 2 around (8, 8), clipped at 0.
        let (w1, h1) = (8.0 * s * 2f64.sqrt(), 8.0 * s / 2f64.sqrt());
        assert_det(&dets[1], 0, 0.5, [0.0, 0.0, 8.0 + w1 / 2.0, 8.0 + h1 / 2.0]);
    }

    #[test]
    fn atss_uses_stds_and_centerness() {
        // 2x2 map at stride 8, 1 class; cell (y1, x1) = 3 has anchor [-24, -24, 40, 40]
        // (side 64, centre (8, 8)).
        let hw = 4;
        let mut cls = vec![-10.0f32; hw];
        cls[3] = 1.0; // sigmoid(1) = 0.7310586
        let mut reg = vec![0.0f32; 4 * hw];
        // Deltas × stds [0.1, 0.1, 0.2, 0.2] = (0.1, -0.05, 0, ln 0.5):
        // gx = 8 + 6.4 = 14.4, gy = 8 - 3.2 = 4.8, gw = 64, gh = 32
        // → [-17.6, -11.2, 46.4, 20.8], clipped to w=40, h=50 → [0, 0, 40, 20.8].
        let d = [1.0, -0.5, 0.0, 0.5f32.ln() / 0.2];
        for (j, v) in d.iter().enumerate() {
            reg[j * hw + 3] = *v;
        }
        let ctr = [5.0, 5.0, 5.0, 0.0]; // sigmoid(0) = 0.5 at cell 3
        let spec = DecodeSpec::atss(1).with_strides(&[8.0]);
        let level = LevelOutput {
            cls_score: &cls,
            bbox_pred: &reg,
            centerness: Some(&ctr),
            height: 2,
            width: 2,
        };
        let cfg = TestConfig::for_kind(HeadKind::Atss);
        let sig1 = 1.0 / (1.0 + (-1f64).exp());
        let dets = postprocess(&spec, &cfg, &[level], (50.0, 40.0), (1.0, 1.0)).unwrap();
        assert_eq!(dets.len(), 1);
        assert_det(&dets[0], 0, sig1 * 0.5, [0.0, 0.0, 40.0, 20.8]);
        // Original image twice as wide and four times as high: x * 2, y * 4.
        let dets = postprocess(&spec, &cfg, &[level], (50.0, 40.0), (0.5, 0.25)).unwrap();
        assert_det(&dets[0], 0, sig1 * 0.5, [0.0, 0.0, 80.0, 83.2]);
    }
}
