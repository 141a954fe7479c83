//! Raw head outputs of one image → final detections, exactly like MMDetection 3.x
//! `_predict_by_feat_single` followed by `_bbox_post_process`:
//!
//! 1. per level ([`decode_level`](crate::decode::decode_level)): `sigmoid` scores, keep `(prior, class)` pairs
//!    with score `> score_thr`, keep the `nms_pre` best, decode only those priors'
//!    boxes, clipped to the resized image;
//! 2. concatenate the levels; rescale boxes to the original image (x / w_scale,
//!    y / h_scale); multiply scores by `sigmoid(centerness)` (FCOS, ATSS) — after
//!    the threshold and top-k, so a final score may end below `score_thr`;
//! 3. drop boxes with `w <= min_bbox_size` or `h <= min_bbox_size` (skipped when
//!    `min_bbox_size < 0`);
//! 4. class-aware NMS, then the `max_per_img` best.

use serde::{Deserialize, Serialize};

use crate::boxes::{height, width};
use crate::decode::{
    decode_checked_level, DecodeError, DecodeSpec, HeadKind, LevelOutput, RawDetection,
};
use crate::detection::Detection;
use crate::nms::batched_nms;

/// Test-time settings (`test_cfg` of the MMDetection configs).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestConfig {
    /// Minimum class probability (strict `>`) for a `(prior, class)` pair; 0.05.
    pub score_thr: f32,
    /// Pairs kept per level before NMS; 1000. Use `usize::MAX` for no limit
    /// (MMDetection's `-1`); 0 keeps nothing.
    pub nms_pre: usize,
    /// NMS IoU threshold (suppress when IoU `>` this): 0.6 GFL/ATSS, 0.5 RetinaNet/FCOS.
    pub iou_thr: f32,
    /// Detections kept per image after NMS; 100.
    pub max_per_img: usize,
    /// Boxes with width or height `<=` this (original-image pixels) are dropped; 0.
    /// A negative value disables the filter.
    pub min_bbox_size: f32,
}

impl TestConfig {
    /// The test settings of the spec (§5.8) for `kind`.
    ///
    /// ```
    /// use crosskd_sdk::{HeadKind, TestConfig};
    /// assert_eq!(TestConfig::for_kind(HeadKind::Gfl).iou_thr, 0.6);
    /// assert_eq!(TestConfig::for_kind(HeadKind::Fcos).iou_thr, 0.5);
    /// ```
    pub fn for_kind(kind: HeadKind) -> Self {
        let iou_thr = match kind {
            HeadKind::Gfl | HeadKind::Atss => 0.6,
            HeadKind::RetinaNet | HeadKind::Fcos => 0.5,
        };
        Self {
            score_thr: 0.05,
            nms_pre: 1000,
            iou_thr,
            max_per_img: 100,
            min_bbox_size: 0.0,
        }
    }
}

/// Decodes one image's per-level head outputs into detections in original-image
/// pixels, sorted by descending score.
///
/// * `levels`: one [`LevelOutput`] per stride of `spec`, in stride order;
/// * `img_shape = (h, w)`: the resized image before padding (boxes are clipped to it);
/// * `scale_factor = (w_scale, h_scale)`: resized size / original size.
///
/// Every shape is checked before any work: a mismatch returns a [`DecodeError`]
/// naming the level and the expected and actual lengths; nothing panics.
///
/// ```
/// use crosskd_sdk::{postprocess, DecodeSpec, LevelOutput, TestConfig};
/// // FCOS, 2 classes, one 1x1 level at stride 8: the point is (4, 4).
/// let spec = DecodeSpec::fcos(2).with_strides(&[8.0]);
/// let cls = [-5.0, 3.0]; // class 1: sigmoid(3) = 0.9526
/// let dist = [4.0, 4.0, 6.0, 2.0]; // l, t, r, b in pixels
/// let ctr = [0.0]; // sigmoid(0) = 0.5
/// let level = LevelOutput { cls_score: &cls, bbox_pred: &dist, centerness: Some(&ctr), height: 1, width: 1 };
/// let cfg = TestConfig::for_kind(spec.kind);
/// // Resized image 100x100 from a 200x200 original: scale factor 0.5.
/// let dets = postprocess(&spec, &cfg, &[level], (100.0, 100.0), (0.5, 0.5)).unwrap();
/// assert_eq!(dets.len(), 1);
/// assert_eq!(dets[0].class_id, 1);
/// assert_eq!(dets[0].bbox, [0.0, 0.0, 20.0, 12.0]); // [0, 0, 10, 6] / 0.5
/// assert!((dets[0].score - 0.952_574 * 0.5).abs() < 1e-6);
/// ```
pub fn postprocess(
    spec: &DecodeSpec,
    cfg: &TestConfig,
    levels: &[LevelOutput],
    img_shape: (f32, f32),
    scale_factor: (f32, f32),
) -> Result<Vec<Detection>, DecodeError> {
    spec.validate()?;
    let (h, w) = img_shape;
    if !(h.is_finite() && w.is_finite() && h >= 0.0 && w >= 0.0) {
        return Err(DecodeError::InvalidImageShape {
            height: h,
            width: w,
        });
    }
    let (w_scale, h_scale) = scale_factor;
    if !(w_scale.is_finite() && h_scale.is_finite() && w_scale > 0.0 && h_scale > 0.0) {
        return Err(DecodeError::InvalidScaleFactor { w_scale, h_scale });
    }
    if levels.len() != spec.strides.len() {
        return Err(DecodeError::LevelCount {
            expected: spec.strides.len(),
            actual: levels.len(),
        });
    }
    for (i, level) in levels.iter().enumerate() {
        spec.check_level(i, level)?;
    }
    let mut raw = Vec::new();
    for (i, level) in levels.iter().enumerate() {
        raw.extend(decode_checked_level(spec, cfg, i, level, img_shape));
    }
    Ok(bbox_post_process(raw, cfg, scale_factor))
}

/// Steps 2-4 of [`postprocess`] on already decoded detections of all levels:
/// rescale by `1 / scale_factor`, apply score factors, drop small boxes, class-aware
/// NMS, keep `max_per_img`.
///
/// The reciprocal of each scale is taken in `f64` and rounded to `f32` before the
/// multiply, as MMDetection does (`scale_boxes` with `1 / s`).
pub fn bbox_post_process(
    raw: Vec<RawDetection>,
    cfg: &TestConfig,
    scale_factor: (f32, f32),
) -> Vec<Detection> {
    let inv_w = (1.0 / scale_factor.0 as f64) as f32;
    let inv_h = (1.0 / scale_factor.1 as f64) as f32;
    let mut dets: Vec<Detection> = raw
        .into_iter()
        .map(|r| Detection {
            bbox: [
                r.bbox[0] * inv_w,
                r.bbox[1] * inv_h,
                r.bbox[2] * inv_w,
                r.bbox[3] * inv_h,
            ],
            score: r.score * r.score_factor.unwrap_or(1.0),
            class_id: r.class_id,
            label: None,
        })
        .collect();
    if cfg.min_bbox_size >= 0.0 {
        dets.retain(|d| width(&d.bbox) > cfg.min_bbox_size && height(&d.bbox) > cfg.min_bbox_size);
    }
    let boxes: Vec<_> = dets.iter().map(|d| d.bbox).collect();
    let scores: Vec<_> = dets.iter().map(|d| d.score).collect();
    let labels: Vec<_> = dets.iter().map(|d| d.class_id).collect();
    let keep = batched_nms(&boxes, &scores, &labels, cfg.iou_thr);
    keep.into_iter()
        .take(cfg.max_per_img)
        .map(|i| dets[i].clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boxes::iou;
    use crate::priors::FPN_STRIDES;

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// FCOS spec with the given strides (points at (x + 0.5) * stride).
    fn fcos(num_classes: usize, strides: &[f32]) -> DecodeSpec {
        DecodeSpec::fcos(num_classes).with_strides(strides)
    }

    /// Pseudo-random `(cls, bbox, centerness, h, w)` arrays of each level, drawn in
    /// that order: cls in `cls_range`, bbox in `reg_range`, centerness in [-3, 3).
    type LevelData = (Vec<f32>, Vec<f32>, Option<Vec<f32>>, usize, usize);

    fn random_levels(
        spec: &DecodeSpec,
        seed: u32,
        sizes: &[(usize, usize)],
        cls_range: (f32, f32),
        reg_range: (f32, f32),
    ) -> Vec<LevelData> {
        let (cls_ch, box_ch, ctr_ch) = spec.level_channels();
        let mut s = seed;
        sizes
            .iter()
            .map(|&(h, w)| {
                let cls = fill(&mut s, cls_ch * h * w, cls_range.0, cls_range.1);
                let reg = fill(&mut s, box_ch * h * w, reg_range.0, reg_range.1);
                let ctr = ctr_ch.map(|c| fill(&mut s, c * h * w, -3.0, 3.0));
                (cls, reg, ctr, h, w)
            })
            .collect()
    }

    fn as_levels(data: &[LevelData]) -> Vec<LevelOutput<'_>> {
        data.iter()
            .map(|(cls, reg, ctr, h, w)| LevelOutput {
                cls_score: cls,
                bbox_pred: reg,
                centerness: ctr.as_deref(),
                height: *h,
                width: *w,
            })
            .collect()
    }

    #[test]
    fn levels_are_concatenated_before_class_aware_nms() {
        // Two 1x1 FCOS levels: stride 8 → point (4, 4); stride 16 → point (8, 8).
        // Level 0 class 0: (4,4,12,12) → [0, 0, 16, 16], score sigmoid(1) * 0.5 = 0.365529.
        // Level 1 class 0: (8,8,8,8) → [0, 0, 16, 16], score sigmoid(2) * 0.5 = 0.440399.
        // Level 1 class 1: same box, score sigmoid(0) * 0.5 = 0.25.
        // Same box, same class → IoU 1: level 0's detection is suppressed by level 1's.
        let spec = fcos(2, &[8.0, 16.0]);
        let (c0, r0, t0) = ([1.0, -10.0], [4.0, 4.0, 12.0, 12.0], [0.0]);
        let (c1, r1, t1) = ([2.0, 0.0], [8.0, 8.0, 8.0, 8.0], [0.0]);
        let levels = [
            LevelOutput {
                cls_score: &c0,
                bbox_pred: &r0,
                centerness: Some(&t0),
                height: 1,
                width: 1,
            },
            LevelOutput {
                cls_score: &c1,
                bbox_pred: &r1,
                centerness: Some(&t1),
                height: 1,
                width: 1,
            },
        ];
        let mut cfg = TestConfig::for_kind(HeadKind::Fcos);
        let dets = postprocess(&spec, &cfg, &levels, (100.0, 100.0), (1.0, 1.0)).unwrap();
        let got: Vec<(usize, f64)> = dets.iter().map(|d| (d.class_id, d.score as f64)).collect();
        assert_eq!(got.len(), 2, "{dets:?}");
        assert_eq!((got[0].0, got[1].0), (0, 1));
        assert!((got[0].1 - sig(2.0) * 0.5).abs() < 1e-6);
        assert!((got[1].1 - 0.25).abs() < 1e-6);
        assert!(dets.iter().all(|d| d.bbox == [0.0, 0.0, 16.0, 16.0]));
        // max_per_img keeps the best one only.
        cfg.max_per_img = 1;
        let dets = postprocess(&spec, &cfg, &levels, (100.0, 100.0), (1.0, 1.0)).unwrap();
        assert_eq!(dets.len(), 1);
        assert_eq!(dets[0].class_id, 0);
    }

    #[test]
    fn min_bbox_size_applies_to_rescaled_boxes() {
        // One 1x2 FCOS level, stride 8: points (4, 4) and (12, 4).
        // Cell 0 (class 0): (0, 2, 0, 2) → zero width [4, 2, 4, 6]: dropped at min size 0.
        // Cell 1 (class 1): (2, 2, 2, 2) → [10, 2, 14, 6], 4x4 resized; scale 0.5 → 8x8.
        let spec = fcos(2, &[8.0]);
        let cls = [3.0, -10.0, -10.0, 3.0];
        let reg = [0.0, 2.0, 2.0, 2.0, 0.0, 2.0, 2.0, 2.0];
        let ctr = [0.0, 0.0];
        let level = LevelOutput {
            cls_score: &cls,
            bbox_pred: &reg,
            centerness: Some(&ctr),
            height: 1,
            width: 2,
        };
        let mut cfg = TestConfig::for_kind(HeadKind::Fcos);
        let run = |cfg: &TestConfig| {
            postprocess(&spec, cfg, &[level], (100.0, 100.0), (0.5, 0.5)).unwrap()
        };
        let dets = run(&cfg);
        assert_eq!(dets.len(), 1);
        assert_eq!(
            (dets[0].class_id, dets[0].bbox),
            (1, [20.0, 4.0, 28.0, 12.0])
        );
        // Negative min size disables the filter: the degenerate box comes back.
        cfg.min_bbox_size = -1.0;
        assert_eq!(run(&cfg).len(), 2);
        // The 8x8 original-size box survives min size 7.9 and not 8 (strict >).
        cfg.min_bbox_size = 7.9;
        assert_eq!(run(&cfg).len(), 1);
        cfg.min_bbox_size = 8.0;
        assert!(run(&cfg).is_empty());
    }

    #[test]
    fn shape_errors_name_level_and_lengths() {
        let spec = fcos(2, &[8.0, 16.0]);
        let cfg = TestConfig::for_kind(HeadKind::Fcos);
        let (cls, reg, ctr) = (vec![0.0; 2 * 6], vec![0.0; 4 * 6], vec![0.0; 6]);
        let good = LevelOutput {
            cls_score: &cls,
            bbox_pred: &reg,
            centerness: Some(&ctr),
            height: 2,
            width: 3,
        };
        let short_cls = vec![0.0; 11];
        let bad = LevelOutput {
            cls_score: &short_cls,
            ..good
        };
        // Wrong number of levels.
        assert_eq!(
            postprocess(&spec, &cfg, &[good], (64.0, 64.0), (1.0, 1.0)),
            Err(DecodeError::LevelCount {
                expected: 2,
                actual: 1
            })
        );
        // A short slice on level 1 is reported as level 1, with both lengths.
        let err = postprocess(&spec, &cfg, &[good, bad], (64.0, 64.0), (1.0, 1.0)).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::ShapeMismatch {
                    level: 1,
                    tensor: "cls_score",
                    expected: 12,
                    actual: 11,
                    ..
                }
            ),
            "{err:?}"
        );
        // Height/width that disagree with the slices.
        let wrong_hw = LevelOutput { height: 3, ..good };
        assert!(matches!(
            postprocess(&spec, &cfg, &[good, wrong_hw], (64.0, 64.0), (1.0, 1.0)),
            Err(DecodeError::ShapeMismatch { level: 1, .. })
        ));
        // Centerness on a GFL head is a wiring error.
        let gfl_spec = DecodeSpec::gfl(2).with_strides(&[8.0]);
        let reg68 = vec![0.0; 68 * 6];
        let gfl_level = LevelOutput {
            bbox_pred: &reg68,
            ..good
        };
        assert_eq!(
            postprocess(&gfl_spec, &cfg, &[gfl_level], (64.0, 64.0), (1.0, 1.0)),
            Err(DecodeError::UnexpectedCenterness {
                level: 0,
                kind: HeadKind::Gfl
            })
        );
        // Bad image shape / scale factor.
        assert!(matches!(
            postprocess(&spec, &cfg, &[good, good], (-1.0, 64.0), (1.0, 1.0)),
            Err(DecodeError::InvalidImageShape { .. })
        ));
        assert!(matches!(
            postprocess(&spec, &cfg, &[good, good], (64.0, 64.0), (0.0, 1.0)),
            Err(DecodeError::InvalidScaleFactor { .. })
        ));
        // An invalid spec is reported, not panicked on.
        let mut broken = DecodeSpec::retinanet(2);
        broken.anchors = None;
        assert!(matches!(
            postprocess(&broken, &cfg, &[], (64.0, 64.0), (1.0, 1.0)),
            Err(DecodeError::InvalidSpec {
                field: "anchors",
                ..
            })
        ));
    }

    #[test]
    fn empty_levels_and_no_scores_give_no_detections() {
        let spec = fcos(3, &[8.0]);
        let cfg = TestConfig::for_kind(HeadKind::Fcos);
        let empty = LevelOutput {
            cls_score: &[],
            bbox_pred: &[],
            centerness: Some(&[]),
            height: 0,
            width: 5,
        };
        assert!(postprocess(&spec, &cfg, &[empty], (64.0, 64.0), (1.0, 1.0))
            .unwrap()
            .is_empty());
        let cls = [-10.0; 3];
        let quiet = LevelOutput {
            cls_score: &cls,
            bbox_pred: &[1.0; 4],
            centerness: Some(&[0.0]),
            height: 1,
            width: 1,
        };
        assert!(postprocess(&spec, &cfg, &[quiet], (64.0, 64.0), (1.0, 1.0))
            .unwrap()
            .is_empty());
    }

    /// Deterministic pseudo-random values in [lo, hi) (32-bit LCG).
    fn fill(seed: &mut u32, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                lo + (hi - lo) * ((*seed >> 8) as f32 / (1u32 << 24) as f32)
            })
            .collect()
    }

    #[test]
    fn invariants_on_random_outputs_of_every_kind() {
        // Properties that must hold whatever the values: sorted scores, at most
        // max_per_img, boxes inside the original image, no same-class pair left with
        // IoU above the threshold, scores above score_thr for heads without centerness.
        let sizes = crate::featmap_sizes(96, 128, &FPN_STRIDES);
        for kind in HeadKind::ALL {
            let spec = DecodeSpec::for_kind(kind, 4);
            let mut cfg = TestConfig::for_kind(kind);
            cfg.nms_pre = 50;
            cfg.max_per_img = 30;
            let reg_range = match kind {
                HeadKind::Fcos => (0.0, 60.0),
                HeadKind::Gfl => (-4.0, 4.0),
                _ => (-1.0, 1.0),
            };
            let data = random_levels(&spec, 7, &sizes, (-6.0, 1.0), reg_range);
            let levels = as_levels(&data);
            // Resized 90 x 120 (padded to 96 x 128), original 180 x 360: scale (w 1/3, h 1/2).
            let dets = postprocess(&spec, &cfg, &levels, (90.0, 120.0), (1.0 / 3.0, 0.5)).unwrap();
            assert!(
                !dets.is_empty() && dets.len() <= 30,
                "{kind}: {}",
                dets.len()
            );
            for pair in dets.windows(2) {
                assert!(pair[0].score >= pair[1].score, "{kind}: not sorted");
            }
            for (i, a) in dets.iter().enumerate() {
                assert!(a.class_id < 4);
                assert!(
                    a.bbox[0] >= 0.0
                        && a.bbox[2] <= 360.001
                        && a.bbox[1] >= 0.0
                        && a.bbox[3] <= 180.001
                );
                assert!(a.bbox[2] > a.bbox[0] && a.bbox[3] > a.bbox[1]);
                if !kind.has_centerness() {
                    assert!(a.score > cfg.score_thr);
                }
                for b in &dets[i + 1..] {
                    if a.class_id == b.class_id {
                        assert!(iou(&a.bbox, &b.bbox) <= cfg.iou_thr, "{kind}: overlap left");
                    }
                }
            }
        }
    }

    /// Expected detections written by `testdata/mmdet_reference.py`: an independent
    /// numpy re-statement of MMDetection 3.x inference written tensor-style
    /// (permute(1,2,0).reshape, row-major nonzero, stable argsort, mmcv's
    /// offset-trick batched NMS), fed the same LCG inputs as below. Two levels
    /// (strides 8, 16; maps 25x32 and 13x16), 3 classes, nms_pre 20, max_per_img 12,
    /// resized image 197 x 250, scale factor (w 0.75, h 0.6).
    mod reference {
        include!("testdata/mmdet_reference_expected.rs");
    }

    #[test]
    fn matches_the_numpy_mmdet_reference() {
        let cases = [
            (HeadKind::Gfl, 11u32, reference::GFL),
            (HeadKind::RetinaNet, 12, reference::RETINANET),
            (HeadKind::Fcos, 13, reference::FCOS),
            (HeadKind::Atss, 14, reference::ATSS),
        ];
        for (kind, seed, expected) in cases {
            let spec = DecodeSpec::for_kind(kind, 3).with_strides(&[8.0, 16.0]);
            let mut cfg = TestConfig::for_kind(kind);
            cfg.nms_pre = 20;
            cfg.max_per_img = 12;
            let reg_range = match kind {
                HeadKind::Gfl => (-10.0, 10.0),
                HeadKind::Fcos => (0.0, 30.0),
                _ => (-1.0, 1.0),
            };
            let data = random_levels(&spec, seed, &[(25, 32), (13, 16)], (-4.0, 2.0), reg_range);
            let levels = as_levels(&data);
            let dets = postprocess(&spec, &cfg, &levels, (197.0, 250.0), (0.75, 0.6)).unwrap();
            assert_eq!(dets.len(), expected.len(), "{kind}: {dets:?}");
            for (d, (class_id, score, bbox)) in dets.iter().zip(expected.iter()) {
                assert_eq!(d.class_id, *class_id, "{kind}: {d:?}");
                assert!((d.score - score).abs() < 2e-6, "{kind}: {d:?} vs {score}");
                for k in 0..4 {
                    assert!(
                        (d.bbox[k] - bbox[k]).abs() < 1e-3,
                        "{kind}: {d:?} vs {bbox:?}"
                    );
                }
            }
        }
    }
}
