//! `[distill]` section of a config: which distillation, from which teacher,
//! with which loss weights (defaults: the paper's, spec §3.5).

use std::path::PathBuf;

use crosskd_sdk::HeadKind;
use serde::{Deserialize, Serialize};

/// What the student learns from the teacher besides its GT losses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DistillMode {
    /// No distillation: the student baseline (the teacher is not even loaded).
    #[serde(rename = "none")]
    None,
    /// CrossKD: student tower features through the teacher's remaining head layers.
    #[serde(rename = "crosskd")]
    CrossKd,
    /// CrossKD plus PKD on the FPN outputs.
    #[serde(rename = "crosskd+pkd")]
    CrossKdPkd,
    /// PKD on the FPN outputs only.
    #[serde(rename = "pkd")]
    Pkd,
    /// Vanilla prediction mimicking: the same KD losses on the student's own predictions.
    #[serde(rename = "pred-mimic")]
    PredMimic,
}

impl DistillMode {
    /// Every mode, in the order of the paper's comparison.
    pub const ALL: [DistillMode; 5] = [
        DistillMode::None,
        DistillMode::PredMimic,
        DistillMode::Pkd,
        DistillMode::CrossKd,
        DistillMode::CrossKdPkd,
    ];

    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DistillMode::None => "none",
            DistillMode::CrossKd => "crosskd",
            DistillMode::CrossKdPkd => "crosskd+pkd",
            DistillMode::Pkd => "pkd",
            DistillMode::PredMimic => "pred-mimic",
        }
    }

    /// Parses a [`name`](Self::name).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == s)
    }

    /// Runs the cross-head path.
    pub fn cross_head(self) -> bool {
        matches!(self, DistillMode::CrossKd | DistillMode::CrossKdPkd)
    }

    /// Has prediction-level KD losses (cross-head or on the student's own head).
    pub fn prediction_kd(self) -> bool {
        self.cross_head() || self == DistillMode::PredMimic
    }

    /// Has PKD on the FPN outputs.
    pub fn feature_kd(self) -> bool {
        matches!(self, DistillMode::Pkd | DistillMode::CrossKdPkd)
    }

    /// Needs a teacher at all.
    pub fn needs_teacher(self) -> bool {
        self != DistillMode::None
    }
}

/// `[distill]`: the teacher and the KD settings. Unset weights take the paper's
/// values for the student's head (spec §3.5).
///
/// ```
/// use crosskd_trainer::distill::{DistillConfig, DistillMode};
/// use crosskd_sdk::HeadKind;
/// let cfg: DistillConfig = toml::from_str(r#"
///     mode = "crosskd"
///     teacher_checkpoint = "work_dirs/teacher/best.ckpt"
/// "#).unwrap();
/// assert_eq!(cfg.mode, DistillMode::CrossKd);
/// let s = cfg.settings(HeadKind::Fcos);
/// assert_eq!((s.reused_teacher_head_idx, s.loss_cls_kd), (2, 0.4));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillConfig {
    /// Which distillation.
    pub mode: DistillMode,
    /// A checkpoint written by `crosskd train` (its header holds the teacher's model).
    #[serde(default)]
    pub teacher_checkpoint: Option<PathBuf>,
    /// Hold point `k`: the student's tower conv `k` output (pre-ReLU) enters the
    /// teacher tower at conv `k + 1`; `0` = the FPN feature.
    #[serde(default)]
    pub reused_teacher_head_idx: Option<usize>,
    /// Classification KD (KDQFL, β = 1) weight.
    #[serde(default)]
    pub loss_cls_kd_weight: Option<f32>,
    /// Regression KD weight (KL for GFL, GIoU for RetinaNet/ATSS, −log IoU for FCOS).
    #[serde(default)]
    pub loss_reg_kd_weight: Option<f32>,
    /// Centerness KD weight (ATSS only).
    #[serde(default)]
    pub loss_center_kd_weight: Option<f32>,
    /// PKD weight (modes with PKD).
    #[serde(default)]
    pub loss_feat_kd_weight: Option<f32>,
}

/// Resolved KD settings of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KdSettings {
    /// Which distillation.
    pub mode: DistillMode,
    /// Hold point `k`.
    pub reused_teacher_head_idx: usize,
    /// Classification KD weight.
    pub loss_cls_kd: f32,
    /// Regression KD weight.
    pub loss_reg_kd: f32,
    /// Centerness KD weight (ATSS; 0 elsewhere).
    pub loss_center_kd: f32,
    /// PKD weight.
    pub loss_feat_kd: f32,
}

impl KdSettings {
    /// The paper's settings for a head family (spec §3.5).
    pub fn paper(kind: HeadKind, mode: DistillMode) -> Self {
        let (k, cls, reg, center, feat) = match kind {
            HeadKind::Gfl => (3, 1.0, 4.0, 0.0, 6.0),
            HeadKind::RetinaNet => (3, 1.0, 1.0, 0.0, 2.0),
            HeadKind::Atss => (3, 1.0, 1.0, 1.0, 1.0),
            HeadKind::Fcos => (2, 0.4, 0.75, 0.0, 2.0),
        };
        Self {
            mode,
            reused_teacher_head_idx: k,
            loss_cls_kd: cls,
            loss_reg_kd: reg,
            loss_center_kd: center,
            loss_feat_kd: feat,
        }
    }
}

impl DistillConfig {
    /// A config of `mode` from `teacher_checkpoint` with the paper's settings.
    pub fn new(mode: DistillMode, teacher_checkpoint: Option<PathBuf>) -> Self {
        Self {
            mode,
            teacher_checkpoint,
            reused_teacher_head_idx: None,
            loss_cls_kd_weight: None,
            loss_reg_kd_weight: None,
            loss_center_kd_weight: None,
            loss_feat_kd_weight: None,
        }
    }

    /// The settings for a student of head family `kind`: the paper's values,
    /// overridden by whatever this config sets.
    pub fn settings(&self, kind: HeadKind) -> KdSettings {
        let p = KdSettings::paper(kind, self.mode);
        KdSettings {
            mode: self.mode,
            reused_teacher_head_idx: self
                .reused_teacher_head_idx
                .unwrap_or(p.reused_teacher_head_idx),
            loss_cls_kd: self.loss_cls_kd_weight.unwrap_or(p.loss_cls_kd),
            loss_reg_kd: self.loss_reg_kd_weight.unwrap_or(p.loss_reg_kd),
            loss_center_kd: self.loss_center_kd_weight.unwrap_or(p.loss_center_kd),
            loss_feat_kd: self.loss_feat_kd_weight.unwrap_or(p.loss_feat_kd),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_through_toml_and_names() {
        for m in DistillMode::ALL {
            assert_eq!(DistillMode::parse(m.name()), Some(m));
            let text = format!("mode = \"{}\"", m.name());
            let cfg: DistillConfig = toml::from_str(&text).unwrap();
            assert_eq!(cfg.mode, m);
        }
        assert!(toml::from_str::<DistillConfig>("mode = \"crosskd-pkd\"").is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = toml::from_str::<DistillConfig>("mode = \"crosskd\"\nloss_kd = 1.0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("loss_kd"), "{e}");
    }

    #[test]
    fn paper_defaults_match_the_spec_table() {
        // spec §3.5: GFL k3 1.0/4.0 PKD 6; RetinaNet k3 1/1 PKD 2; ATSS k3 1/1 +ctr 1 PKD 1;
        // FCOS k2 0.4/0.75 PKD 2.
        let cfg = DistillConfig::new(DistillMode::CrossKdPkd, None);
        let g = cfg.settings(HeadKind::Gfl);
        assert_eq!(
            (
                g.reused_teacher_head_idx,
                g.loss_cls_kd,
                g.loss_reg_kd,
                g.loss_feat_kd
            ),
            (3, 1.0, 4.0, 6.0)
        );
        let r = cfg.settings(HeadKind::RetinaNet);
        assert_eq!(
            (r.reused_teacher_head_idx, r.loss_reg_kd, r.loss_feat_kd),
            (3, 1.0, 2.0)
        );
        let a = cfg.settings(HeadKind::Atss);
        assert_eq!((a.loss_center_kd, a.loss_feat_kd), (1.0, 1.0));
        let f = cfg.settings(HeadKind::Fcos);
        assert_eq!(
            (f.reused_teacher_head_idx, f.loss_cls_kd, f.loss_reg_kd),
            (2, 0.4, 0.75)
        );
        let over = DistillConfig {
            reused_teacher_head_idx: Some(1),
            loss_reg_kd_weight: Some(2.5),
            ..cfg
        };
        let s = over.settings(HeadKind::Gfl);
        assert_eq!(
            (s.reused_teacher_head_idx, s.loss_reg_kd, s.loss_cls_kd),
            (1, 2.5, 1.0)
        );
    }
}
