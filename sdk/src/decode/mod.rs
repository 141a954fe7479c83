//! Per-level decoding of dense-head outputs (MMDetection 3.x
//! `_predict_by_feat_single`, one level at a time).
//!
//! The head kinds differ only in how a kept prior's box is decoded; each has its
//! own file: [`gfl`] (distribution integral from the anchor centre),
//! [`anchor_delta`] (RetinaNet and ATSS deltas from anchors) and [`distance`]
//! (FCOS distances from points). What they share lives here: the head
//! description ([`DecodeSpec`]), the output layout ([`LevelOutput`]), shape
//! checks ([`DecodeError`]) and the score threshold + top-k selection
//! ([`select_candidates`]).
//!
//! Layouts are one image's `(C, H, W)` outputs, channel-major. With `A` priors per
//! location and `C` classes, prior index `p = (y * W + x) * A + a`, class score
//! channel `a * C + c`, delta channel `a * 4 + j`.

pub mod anchor_delta;
pub mod distance;
mod error;
pub mod gfl;
mod select;
mod spec;

pub use error::DecodeError;
pub use select::{select_candidates, sigmoid, Candidate};
pub use spec::{DecodeSpec, HeadKind};

use crate::boxes::BBox;
use crate::postprocess::TestConfig;

/// One image's raw head outputs at one FPN level (batch dimension removed),
/// each a `(channels, height, width)` array flattened channel-major.
///
/// | field | channels |
/// |---|---|
/// | `cls_score` | `A * C` logits, channel `a * C + c` |
/// | `bbox_pred` (RetinaNet, ATSS) | `A * 4` deltas, channel `a * 4 + j` |
/// | `bbox_pred` (GFL) | `4 * (reg_max + 1)` logits, channel `side * (reg_max + 1) + bin`, Scale already applied |
/// | `bbox_pred` (FCOS) | 4 pixel distances `(l, t, r, b)` (exp and Scale already applied) |
/// | `centerness` (FCOS, ATSS) | `A` logits |
#[derive(Clone, Copy, Debug)]
pub struct LevelOutput<'a> {
    /// Classification logits.
    pub cls_score: &'a [f32],
    /// Box-branch output.
    pub bbox_pred: &'a [f32],
    /// Centerness logits (FCOS, ATSS only).
    pub centerness: Option<&'a [f32]>,
    /// Feature-map height.
    pub height: usize,
    /// Feature-map width.
    pub width: usize,
}

/// A decoded detection of one level, in resized-image pixels (before rescaling,
/// before the centerness factor is applied, before NMS).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RawDetection {
    /// Box clipped to the resized image.
    pub bbox: BBox,
    /// Classification score `sigmoid(cls)`.
    pub score: f32,
    /// Class index.
    pub class_id: usize,
    /// `sigmoid(centerness)` of the prior for FCOS/ATSS, multiplied in later.
    pub score_factor: Option<f32>,
}

/// Where a prior sits: cell `(x, y)` and anchor `a`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PriorPos {
    pub x: usize,
    pub y: usize,
    pub anchor: usize,
    /// `y * W + x`: offset of this cell within one channel.
    pub cell: usize,
}

impl PriorPos {
    fn new(prior: usize, num_anchors: usize, width: usize) -> Self {
        let cell = prior / num_anchors;
        Self {
            x: cell % width,
            y: cell / width,
            anchor: prior % num_anchors,
            cell,
        }
    }
}

/// Decodes one level: threshold + top-k on the class scores, then the kept priors'
/// boxes (clipped to `img_shape = (h, w)`) and centerness factors.
///
/// Validates the spec ([`DecodeSpec::validate`]) and the level's shapes
/// ([`DecodeSpec::check_level`]) first: bad input is an error, never a panic.
///
/// ```
/// use crosskd_sdk::decode::decode_level;
/// use crosskd_sdk::{DecodeSpec, HeadKind, LevelOutput, TestConfig};
/// // FCOS, one class, a 1×1 map at stride 8 (level 0): the point (4, 4) (offset
/// // 0.5 stride) with distances (l, t, r, b) = (1, 2, 3, 4) pixels (the exported
/// // head already scaled them by the stride), score sigmoid(3) = 0.95.
/// let spec = DecodeSpec::fcos(1);
/// let cfg = TestConfig::for_kind(HeadKind::Fcos);
/// let level = LevelOutput {
///     cls_score: &[3.0],
///     bbox_pred: &[1.0, 2.0, 3.0, 4.0],
///     centerness: Some(&[0.0]),
///     height: 1,
///     width: 1,
/// };
/// let dets = decode_level(&spec, &cfg, 0, &level, (64.0, 64.0)).unwrap();
/// // [4 - 1, 4 - 2, 4 + 3, 4 + 4]
/// assert_eq!(dets[0].bbox, [3.0, 2.0, 7.0, 8.0]);
/// // A level of the wrong size is an error.
/// let short = LevelOutput { bbox_pred: &[1.0], ..level };
/// assert!(decode_level(&spec, &cfg, 0, &short, (64.0, 64.0)).is_err());
/// ```
pub fn decode_level(
    spec: &DecodeSpec,
    cfg: &TestConfig,
    index: usize,
    level: &LevelOutput,
    img_shape: (f32, f32),
) -> Result<Vec<RawDetection>, DecodeError> {
    spec.validate()?;
    if index >= spec.strides.len() {
        return Err(DecodeError::LevelCount {
            expected: spec.strides.len(),
            actual: index + 1,
        });
    }
    spec.check_level(index, level)?;
    Ok(decode_checked_level(spec, cfg, index, level, img_shape))
}

/// [`decode_level`] without the checks. Precondition: `spec.validate()` and
/// `spec.check_level(index, level)` passed and `index < spec.strides.len()`.
pub(crate) fn decode_checked_level(
    spec: &DecodeSpec,
    cfg: &TestConfig,
    index: usize,
    level: &LevelOutput,
    img_shape: (f32, f32),
) -> Vec<RawDetection> {
    let stride = spec.strides[index];
    let a = spec.num_anchors();
    let hw = level.height * level.width;
    let cands = select_candidates(
        level.cls_score,
        a,
        spec.num_classes,
        hw,
        cfg.score_thr,
        cfg.nms_pre,
    );
    // A prior often passes for several classes: decode each prior's box once.
    let mut priors: Vec<usize> = cands.iter().map(|c| c.prior).collect();
    priors.sort_unstable();
    priors.dedup();
    let positions: Vec<PriorPos> = priors
        .iter()
        .map(|&p| PriorPos::new(p, a, level.width))
        .collect();
    let boxes: Vec<BBox> = match (spec.kind, &spec.anchors, &spec.coder) {
        (HeadKind::Gfl, Some(anchors), _) => gfl::decode_boxes(
            level.bbox_pred,
            hw,
            spec.reg_max,
            stride,
            &anchors.base_anchors(index),
            &positions,
            img_shape,
        ),
        (HeadKind::RetinaNet | HeadKind::Atss, Some(anchors), Some(coder)) => {
            anchor_delta::decode_boxes(
                level.bbox_pred,
                hw,
                coder,
                stride,
                &anchors.base_anchors(index),
                &positions,
                img_shape,
            )
        }
        (HeadKind::Fcos, _, _) => distance::decode_boxes(
            level.bbox_pred,
            hw,
            stride,
            spec.point_offset,
            &positions,
            img_shape,
        ),
        _ => unreachable!("decode_checked_level: spec was not validated"),
    };
    cands
        .iter()
        .map(|c| {
            // `priors` holds every candidate's prior, sorted.
            let k = priors.binary_search(&c.prior).unwrap_or_default();
            let p = positions[k];
            RawDetection {
                bbox: boxes[k],
                score: c.score,
                class_id: c.class_id,
                score_factor: level
                    .centerness
                    .map(|ctr| sigmoid(ctr[p.anchor * hw + p.cell])),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_level_returns_unrescaled_boxes_and_factors() {
        // FCOS level 1 of strides [8, 16], 1x1 map: point (8, 8). By hand:
        // (l,t,r,b) = (3, 2, 5, 4) → [5, 6, 13, 12]; score sigmoid(0) = 0.5 for class 1;
        // factor sigmoid(0) = 0.5 (not multiplied in yet).
        let mut spec = DecodeSpec::fcos(2).with_strides(&[8.0, 16.0]);
        let cfg = TestConfig::for_kind(HeadKind::Fcos);
        let level = LevelOutput {
            cls_score: &[-9.0, 0.0],
            bbox_pred: &[3.0, 2.0, 5.0, 4.0],
            centerness: Some(&[0.0]),
            height: 1,
            width: 1,
        };
        let raw = decode_level(&spec, &cfg, 1, &level, (100.0, 100.0)).unwrap();
        assert_eq!(
            raw,
            vec![RawDetection {
                bbox: [5.0, 6.0, 13.0, 12.0],
                score: 0.5,
                class_id: 1,
                score_factor: Some(0.5)
            }]
        );
        // Level index past the strides, or a bad spec, is an error.
        assert_eq!(
            decode_level(&spec, &cfg, 2, &level, (100.0, 100.0)),
            Err(DecodeError::LevelCount {
                expected: 2,
                actual: 3
            })
        );
        spec.num_classes = 0;
        assert!(decode_level(&spec, &cfg, 0, &level, (100.0, 100.0)).is_err());
    }
}
