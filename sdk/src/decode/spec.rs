//! What a head is: its kind ([`HeadKind`]) and everything needed to decode its
//! outputs ([`DecodeSpec`]), with the checks that a spec and a level's arrays agree.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{DecodeError, LevelOutput};
use crate::coders::DeltaXywhCoder;
use crate::priors::{AnchorGenerator, FPN_STRIDES};

/// The four dense detectors CrossKD distils. Serialised lowercase
/// (`"gfl"`, `"retinanet"`, `"fcos"`, `"atss"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadKind {
    /// GFLv1: sigmoid quality scores, 4 x (reg_max + 1)-bin distance distributions.
    Gfl,
    /// RetinaNet: 9 anchors per location, `DeltaXYWH` deltas.
    RetinaNet,
    /// FCOS: points, pixel distances `(l, t, r, b)`, centerness.
    Fcos,
    /// ATSS: one anchor per location, `DeltaXYWH` deltas, centerness.
    Atss,
}

impl HeadKind {
    /// All kinds, in declaration order.
    pub const ALL: [HeadKind; 4] = [
        HeadKind::Gfl,
        HeadKind::RetinaNet,
        HeadKind::Fcos,
        HeadKind::Atss,
    ];

    /// The serialised (lowercase) name.
    pub fn name(self) -> &'static str {
        match self {
            HeadKind::Gfl => "gfl",
            HeadKind::RetinaNet => "retinanet",
            HeadKind::Fcos => "fcos",
            HeadKind::Atss => "atss",
        }
    }

    /// Whether the head has a centerness branch whose sigmoid multiplies the scores.
    pub fn has_centerness(self) -> bool {
        matches!(self, HeadKind::Fcos | HeadKind::Atss)
    }
}

impl fmt::Display for HeadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Upper bound on `num_classes` a model may declare (COCO has 80, LVIS 1203).
pub const MAX_CLASSES: usize = 100_000;
/// Upper bound on GFL's `reg_max` (the paper uses 16).
pub const MAX_REG_MAX: usize = 1024;
/// Upper bound on anchor ratios and on scales per octave (RetinaNet: 3 and 3).
pub const MAX_ANCHOR_PARAMS: usize = 64;

/// Everything needed to decode one head's outputs, independent of the image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeSpec {
    /// Which head produced the outputs.
    pub kind: HeadKind,
    /// Number of (sigmoid) classes `C`.
    pub num_classes: usize,
    /// Stride of each level, in input pixels.
    pub strides: Vec<f32>,
    /// GFL: number of distribution bins minus one (16). Unused by other kinds.
    pub reg_max: usize,
    /// Anchors (GFL, RetinaNet, ATSS); `None` for FCOS.
    pub anchors: Option<AnchorGenerator>,
    /// Delta coder (RetinaNet, ATSS); `None` for GFL and FCOS.
    pub coder: Option<DeltaXywhCoder>,
    /// FCOS point offset in strides (0.5). Unused by other kinds.
    pub point_offset: f32,
}

impl DecodeSpec {
    /// GFLv1 with the spec's defaults: strides 8..128, `reg_max` 16, one 8·stride anchor.
    ///
    /// ```
    /// use crosskd_sdk::DecodeSpec;
    /// let spec = DecodeSpec::gfl(80);
    /// assert_eq!(spec.num_anchors(), 1);
    /// assert_eq!(spec.level_channels(), (80, 68, None));
    /// ```
    pub fn gfl(num_classes: usize) -> Self {
        Self {
            kind: HeadKind::Gfl,
            num_classes,
            strides: FPN_STRIDES.to_vec(),
            reg_max: 16,
            anchors: Some(AnchorGenerator::gfl_atss(&FPN_STRIDES)),
            coder: None,
            point_offset: 0.0,
        }
    }

    /// RetinaNet: strides 8..128, 9 anchors, `DeltaXYWH` means 0 / stds 1.
    pub fn retinanet(num_classes: usize) -> Self {
        Self {
            kind: HeadKind::RetinaNet,
            num_classes,
            strides: FPN_STRIDES.to_vec(),
            reg_max: 0,
            anchors: Some(AnchorGenerator::retinanet(&FPN_STRIDES)),
            coder: Some(DeltaXywhCoder::default()),
            point_offset: 0.0,
        }
    }

    /// FCOS: strides 8..128, points at `(x + 0.5) * stride`.
    pub fn fcos(num_classes: usize) -> Self {
        Self {
            kind: HeadKind::Fcos,
            num_classes,
            strides: FPN_STRIDES.to_vec(),
            reg_max: 0,
            anchors: None,
            coder: None,
            point_offset: 0.5,
        }
    }

    /// ATSS: strides 8..128, one 8·stride anchor, `DeltaXYWH` stds `[0.1, 0.1, 0.2, 0.2]`.
    pub fn atss(num_classes: usize) -> Self {
        Self {
            kind: HeadKind::Atss,
            num_classes,
            strides: FPN_STRIDES.to_vec(),
            reg_max: 0,
            anchors: Some(AnchorGenerator::gfl_atss(&FPN_STRIDES)),
            coder: Some(DeltaXywhCoder::atss()),
            point_offset: 0.0,
        }
    }

    /// This spec on other levels: sets `strides` and, when present, the anchor
    /// generator's strides (they must agree, see [`validate`](Self::validate)).
    ///
    /// ```
    /// use crosskd_sdk::DecodeSpec;
    /// let spec = DecodeSpec::atss(80).with_strides(&[8.0, 16.0, 32.0]);
    /// assert_eq!(spec.anchors.unwrap().strides, vec![8.0, 16.0, 32.0]);
    /// ```
    pub fn with_strides(mut self, strides: &[f32]) -> Self {
        self.strides = strides.to_vec();
        if let Some(anchors) = self.anchors.as_mut() {
            anchors.strides = strides.to_vec();
        }
        self
    }

    /// The default spec of `kind`.
    pub fn for_kind(kind: HeadKind, num_classes: usize) -> Self {
        match kind {
            HeadKind::Gfl => Self::gfl(num_classes),
            HeadKind::RetinaNet => Self::retinanet(num_classes),
            HeadKind::Fcos => Self::fcos(num_classes),
            HeadKind::Atss => Self::atss(num_classes),
        }
    }

    /// Priors per location `A` (anchors per location, 1 for FCOS).
    pub fn num_anchors(&self) -> usize {
        self.anchors
            .as_ref()
            .map_or(1, AnchorGenerator::num_base_anchors)
    }

    /// Channel counts `(cls_score, bbox_pred, centerness)` of every level.
    pub fn level_channels(&self) -> (usize, usize, Option<usize>) {
        let a = self.num_anchors();
        let bbox = match self.kind {
            HeadKind::Gfl => 4 * (self.reg_max + 1),
            HeadKind::RetinaNet | HeadKind::Atss => a * 4,
            HeadKind::Fcos => 4,
        };
        let ctr = self.kind.has_centerness().then_some(a);
        (a * self.num_classes, bbox, ctr)
    }

    /// Checks the spec is consistent with its kind.
    pub fn validate(&self) -> Result<(), DecodeError> {
        let bad =
            |field: &'static str, reason: String| Err(DecodeError::InvalidSpec { field, reason });
        if self.num_classes == 0 {
            return bad("num_classes", "must be at least 1".into());
        }
        if self.strides.is_empty() {
            return bad("strides", "must not be empty".into());
        }
        if self.num_classes > MAX_CLASSES {
            return bad(
                "num_classes",
                format!("{} is above the limit {MAX_CLASSES}", self.num_classes),
            );
        }
        if let Some(s) = self.strides.iter().find(|s| !(s.is_finite() && **s >= 1.0)) {
            return bad("strides", format!("stride {s} is not finite and >= 1"));
        }
        if self.kind == HeadKind::Gfl && self.reg_max > MAX_REG_MAX {
            return bad(
                "reg_max",
                format!("{} is above the limit {MAX_REG_MAX}", self.reg_max),
            );
        }
        if !self.point_offset.is_finite() {
            return bad(
                "point_offset",
                format!("{} is not finite", self.point_offset),
            );
        }
        let uses_anchors = self.kind != HeadKind::Fcos;
        match (&self.anchors, uses_anchors) {
            (None, true) => return bad("anchors", format!("{} needs anchors", self.kind)),
            (Some(_), false) => {
                return bad("anchors", format!("{} uses points, not anchors", self.kind))
            }
            (Some(g), true) => {
                if g.strides != self.strides {
                    return bad(
                        "anchors",
                        format!(
                            "anchor strides {:?} differ from strides {:?}",
                            g.strides, self.strides
                        ),
                    );
                }
                if g.ratios.len() > MAX_ANCHOR_PARAMS || g.scales_per_octave > MAX_ANCHOR_PARAMS {
                    return bad(
                        "anchors",
                        format!(
                            "{} ratios x {} scales per octave: at most {MAX_ANCHOR_PARAMS} each",
                            g.ratios.len(),
                            g.scales_per_octave
                        ),
                    );
                }
                let finite = |v: f32| v.is_finite() && v > 0.0;
                if !(g.ratios.iter().all(|r| finite(*r))
                    && finite(g.octave_base_scale)
                    && g.center_offset.is_finite())
                {
                    return bad(
                        "anchors",
                        format!(
                            "ratios {:?}, octave_base_scale {} and center_offset {} must be finite (and the first two positive)",
                            g.ratios, g.octave_base_scale, g.center_offset
                        ),
                    );
                }
                if g.num_base_anchors() == 0 {
                    return bad(
                        "anchors",
                        "no anchors per location (empty ratios or scales)".into(),
                    );
                }
                if matches!(self.kind, HeadKind::Gfl) && g.num_base_anchors() != 1 {
                    return bad("anchors", "gfl has exactly one anchor per location".into());
                }
            }
            (None, false) => {}
        }
        let uses_coder = matches!(self.kind, HeadKind::RetinaNet | HeadKind::Atss);
        match (&self.coder, uses_coder) {
            (None, true) => return bad("coder", format!("{} needs a delta coder", self.kind)),
            (Some(_), false) => return bad("coder", format!("{} has no delta coder", self.kind)),
            (Some(c), true) if c.max_ratio.is_nan() || c.max_ratio < 0.0 => {
                return bad("coder", format!("max_ratio {} must be >= 0", c.max_ratio))
            }
            (Some(c), true)
                if !(c.means.iter().all(|m| m.is_finite())
                    && c.stds.iter().all(|s| s.is_finite() && *s > 0.0)) =>
            {
                return bad(
                    "coder",
                    format!(
                        "means {:?} must be finite and stds {:?} finite and positive",
                        c.means, c.stds
                    ),
                )
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks that `level` (index `index`) holds `(A * C, H, W)`, box and centerness
    /// arrays of the sizes this spec implies.
    pub fn check_level(&self, index: usize, level: &LevelOutput) -> Result<(), DecodeError> {
        let (cls_ch, box_ch, ctr_ch) = self.level_channels();
        let hw = level.height.saturating_mul(level.width);
        let check = |tensor: &'static str, channels: usize, actual: usize| {
            let expected = channels.saturating_mul(hw);
            if expected == actual {
                Ok(())
            } else {
                Err(DecodeError::ShapeMismatch {
                    level: index,
                    tensor,
                    expected,
                    actual,
                    channels,
                    height: level.height,
                    width: level.width,
                })
            }
        };
        check("cls_score", cls_ch, level.cls_score.len())?;
        check("bbox_pred", box_ch, level.bbox_pred.len())?;
        match (ctr_ch, level.centerness) {
            (Some(ch), Some(c)) => check("centerness", ch, c.len()),
            (Some(_), None) => Err(DecodeError::MissingCenterness {
                level: index,
                kind: self.kind,
            }),
            (None, Some(_)) => Err(DecodeError::UnexpectedCenterness {
                level: index,
                kind: self.kind,
            }),
            (None, None) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_kind_serialises_lowercase() {
        for (k, name) in HeadKind::ALL
            .iter()
            .zip(["gfl", "retinanet", "fcos", "atss"])
        {
            assert_eq!(serde_json::to_string(k).unwrap(), format!("\"{name}\""));
            assert_eq!(
                serde_json::from_str::<HeadKind>(&format!("\"{name}\"")).unwrap(),
                *k
            );
            assert_eq!(k.to_string(), name);
        }
        assert!(serde_json::from_str::<HeadKind>("\"RetinaNet\"").is_err());
    }

    #[test]
    fn default_specs_validate_and_have_the_spec_channels() {
        // Channel counts by hand from spec §5.4-5.7 (80 classes).
        let expect = [
            (HeadKind::Gfl, (80, 68, None)),
            (HeadKind::RetinaNet, (720, 36, None)),
            (HeadKind::Fcos, (80, 4, Some(1))),
            (HeadKind::Atss, (80, 4, Some(1))),
        ];
        for (kind, ch) in expect {
            let spec = DecodeSpec::for_kind(kind, 80);
            assert_eq!(spec.kind, kind);
            spec.validate().unwrap();
            assert_eq!(spec.level_channels(), ch, "{kind}");
        }
    }

    #[test]
    fn validate_names_the_bad_field() {
        let mut s = DecodeSpec::gfl(3);
        s.strides.clear();
        assert!(matches!(
            s.validate(),
            Err(DecodeError::InvalidSpec {
                field: "strides",
                ..
            })
        ));
        let mut s = DecodeSpec::retinanet(3);
        s.coder = None;
        assert!(matches!(
            s.validate(),
            Err(DecodeError::InvalidSpec { field: "coder", .. })
        ));
        let mut s = DecodeSpec::fcos(3);
        s.anchors = Some(AnchorGenerator::gfl_atss(&FPN_STRIDES));
        assert!(matches!(
            s.validate(),
            Err(DecodeError::InvalidSpec {
                field: "anchors",
                ..
            })
        ));
        let mut s = DecodeSpec::atss(3);
        s.anchors = Some(AnchorGenerator::gfl_atss(&[8.0]));
        assert!(matches!(
            s.validate(),
            Err(DecodeError::InvalidSpec {
                field: "anchors",
                ..
            })
        ));
        let mut s = DecodeSpec::gfl(3);
        s.anchors = Some(AnchorGenerator::retinanet(&FPN_STRIDES));
        assert!(matches!(
            s.validate(),
            Err(DecodeError::InvalidSpec {
                field: "anchors",
                ..
            })
        ));
        let s = DecodeSpec::gfl(0);
        assert!(matches!(
            s.validate(),
            Err(DecodeError::InvalidSpec {
                field: "num_classes",
                ..
            })
        ));
    }

    #[test]
    fn check_level_reports_level_and_lengths() {
        let spec = DecodeSpec::retinanet(2);
        let cls = vec![0.0; 18 * 6];
        let bbox = vec![0.0; 36 * 6 - 1];
        let lvl = LevelOutput {
            cls_score: &cls,
            bbox_pred: &bbox,
            centerness: None,
            height: 2,
            width: 3,
        };
        let err = spec.check_level(3, &lvl).unwrap_err();
        assert_eq!(
            err,
            DecodeError::ShapeMismatch {
                level: 3,
                tensor: "bbox_pred",
                expected: 216,
                actual: 215,
                channels: 36,
                height: 2,
                width: 3
            }
        );
        let msg = err.to_string();
        assert!(
            msg.contains("level 3") && msg.contains("216") && msg.contains("215"),
            "{msg}"
        );

        let fcos = DecodeSpec::fcos(2);
        let cls = vec![0.0; 12];
        let bbox = vec![0.0; 24];
        let lvl = LevelOutput {
            cls_score: &cls,
            bbox_pred: &bbox,
            centerness: None,
            height: 2,
            width: 3,
        };
        assert_eq!(
            fcos.check_level(0, &lvl),
            Err(DecodeError::MissingCenterness {
                level: 0,
                kind: HeadKind::Fcos
            })
        );
    }
}
