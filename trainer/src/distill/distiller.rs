//! The distiller: wraps a frozen teacher detector and a student
//! ([`DistillStudent`]) and computes the student's GT losses plus the KD losses
//! of the configured mode. Neither detector knows it is being distilled: the
//! distiller only calls their public forward pieces (FPN features, traced
//! towers, `forward_level_from`) and their GT-loss code.

use burn::prelude::*;

use super::adapter::{AdapterWidths, Adapters};
use super::config::{DistillConfig, KdSettings};
use super::cross_head::{cross_head_level, Held};
use super::kd_loss::prediction_kd_losses;
use super::student::DistillStudent;
use crate::data::Batch;
use crate::losses::pkd_loss;
use crate::model::detector::{Detector, DetectorConfig, InputError};
use crate::model::head::HeadConfig;
use crate::model::heads::{DenseHead, LevelOutput, TowerTrace};
use crate::model::loss_dict::LossDict;

/// Teacher and student cannot be paired.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DistillError {
    /// A structural setting differs.
    #[error("teacher and student differ in {field}: student {student}, teacher {teacher}; CrossKD needs them equal (backbone and widths may differ)")]
    Mismatch {
        /// The setting, as a config path.
        field: &'static str,
        /// Student's value.
        student: String,
        /// Teacher's value.
        teacher: String,
    },
    /// Hold point outside the towers.
    #[error("distill.reused_teacher_head_idx = {k} but the heads have {depth} tower convs: use 0..={depth}")]
    HoldIndex {
        /// Requested `k`.
        k: usize,
        /// Tower depth.
        depth: usize,
    },
    /// The mode needs a teacher and none was given.
    #[error("distill.mode = \"{0}\" needs a teacher: set distill.teacher_checkpoint to a checkpoint written by `crosskd train`")]
    NoTeacher(&'static str),
}

fn mismatch(field: &'static str, s: impl ToString, t: impl ToString) -> DistillError {
    DistillError::Mismatch {
        field,
        student: s.to_string(),
        teacher: t.to_string(),
    }
}

/// Check that `teacher` can distil into `student` under `settings`; returns the
/// widths the adapters must bridge.
///
/// ```
/// use crosskd_trainer::distill::{check_pair, DistillMode, KdSettings};
/// use crosskd_trainer::model::detector::DetectorConfig;
/// use crosskd_sdk::HeadKind;
/// let teacher = DetectorConfig::preset(HeadKind::Gfl, 50, 8);
/// let mut student = DetectorConfig::preset(HeadKind::Gfl, 18, 8);
/// let s = KdSettings::paper(HeadKind::Gfl, DistillMode::CrossKd);
/// assert!(check_pair(&student, &teacher, &s).unwrap().tower.is_some());
/// student = DetectorConfig::preset(HeadKind::Gfl, 18, 5);
/// assert!(check_pair(&student, &teacher, &s).is_err());
/// ```
pub fn check_pair(
    student: &DetectorConfig,
    teacher: &DetectorConfig,
    settings: &KdSettings,
) -> Result<AdapterWidths, DistillError> {
    if student.kind() != teacher.kind() {
        return Err(mismatch(
            "model.head.type",
            student.kind().name(),
            teacher.kind().name(),
        ));
    }
    let (sc, s_in, s_feat, s_depth, _) = student.head.dims();
    let (tc, t_in, t_feat, t_depth, _) = teacher.head.dims();
    if sc != tc {
        return Err(mismatch("model.head.num_classes", sc, tc));
    }
    if student.strides() != teacher.strides() {
        return Err(mismatch(
            "model.neck.num_outs (strides)",
            format!("{:?}", student.strides()),
            format!("{:?}", teacher.strides()),
        ));
    }
    if s_depth != t_depth {
        return Err(mismatch("model.head.stacked_convs", s_depth, t_depth));
    }
    if let (HeadConfig::Gfl(s), HeadConfig::Gfl(t)) = (&student.head, &teacher.head) {
        if s.reg_max != t.reg_max {
            return Err(mismatch("model.head.reg_max", s.reg_max, t.reg_max));
        }
    }
    let k = settings.reused_teacher_head_idx;
    let mut widths = AdapterWidths::default();
    if settings.mode.cross_head() {
        if k > t_depth {
            return Err(DistillError::HoldIndex { k, depth: t_depth });
        }
        widths.tower = Some(if k == 0 {
            (s_in, t_in)
        } else {
            (s_feat, t_feat)
        });
    }
    if settings.mode.feature_kd() {
        widths.fpn = Some((student.neck.out_channels, teacher.neck.out_channels));
    }
    Ok(widths)
}

/// A frozen teacher plus the KD settings; computes a [`DistillStudent`]'s losses.
#[derive(Debug, Clone)]
pub struct Distiller<B: Backend> {
    teacher: Option<Detector<B>>,
    settings: KdSettings,
    widths: AdapterWidths,
}

impl<B: Backend> Distiller<B> {
    /// Pair `teacher` with a student of `student_cfg`. The teacher is frozen
    /// (no gradients for its parameters; its BatchNorms always use running
    /// statistics). Mode `none` needs no teacher.
    pub fn new(
        teacher: Option<Detector<B>>,
        student_cfg: &DetectorConfig,
        cfg: &DistillConfig,
    ) -> Result<Self, DistillError> {
        let settings = cfg.settings(student_cfg.kind());
        let teacher = if settings.mode.needs_teacher() {
            Some(teacher.ok_or(DistillError::NoTeacher(settings.mode.name()))?)
        } else {
            None
        };
        let widths = match &teacher {
            Some(t) => check_pair(student_cfg, &t.config, &settings)?,
            None => AdapterWidths::default(),
        };
        Ok(Self {
            teacher: teacher.map(|t| t.no_grad()),
            settings,
            widths,
        })
    }

    /// The resolved settings.
    pub fn settings(&self) -> &KdSettings {
        &self.settings
    }

    /// The frozen teacher, if the mode uses one.
    pub fn teacher(&self) -> Option<&Detector<B>> {
        self.teacher.as_ref()
    }

    /// Wrap a freshly built `student` with the adapters this pairing needs.
    ///
    /// The adapters are initialised here (burn creates parameters lazily), so a
    /// seeded run draws the same weights whatever runs first afterwards.
    pub fn student(&self, detector: Detector<B>, device: &B::Device) -> DistillStudent<B> {
        let adapters = Adapters::new(self.widths, device);
        crate::train::checkpoint::materialize(&adapters);
        DistillStudent { detector, adapters }
    }

    /// Names of the loss components, in the order [`loss`](Self::loss) returns them.
    pub fn loss_names(&self, student: &DetectorConfig) -> Vec<String> {
        let mut names: Vec<String> = crate::train::runner::gt_loss_names(student);
        let mode = self.settings.mode;
        if mode.prediction_kd() {
            names.push("loss_cls_kd".into());
            names.push("loss_reg_kd".into());
            if matches!(student.head, HeadConfig::Atss(_)) {
                names.push("loss_center_kd".into());
            }
        }
        if mode.feature_kd() {
            names.push("loss_feat_kd".into());
        }
        names
    }

    /// GT losses of the student plus the mode's KD losses for `batch`.
    pub fn loss(
        &self,
        model: &DistillStudent<B>,
        batch: &Batch<B>,
    ) -> Result<LossDict<B>, InputError> {
        let student = &model.detector;
        student.check_batch(batch)?;
        let mode = self.settings.mode;
        let k = self.settings.reused_teacher_head_idx;
        let stu_x = student.extract_feat(batch.images.clone());
        let (stu_out, stu_trace) = forward_traced(&student.head, &stu_x);
        let targets = student.targets(&stu_out, &batch.metas);
        let mut losses = student.loss_from_targets(&stu_out, &targets);
        let Some(teacher) = &self.teacher else {
            return Ok(losses);
        };
        // The teacher's own forward: nothing in it requires grad, so no graph is built.
        let tea_x: Vec<Tensor<B, 4>> = teacher
            .extract_feat(batch.images.clone())
            .into_iter()
            .map(|x| x.detach())
            .collect();
        if mode.prediction_kd() {
            let (tea_out, tea_trace) = forward_traced(&teacher.head, &tea_x);
            let tea_out: Vec<LevelOutput<B>> = tea_out.into_iter().map(detach_level).collect();
            let pred = if mode.cross_head() {
                (0..stu_x.len())
                    .map(|l| {
                        let held_t = Held::at(&tea_trace[l], &tea_x[l], k);
                        let held_t = Held {
                            cls: held_t.cls.detach(),
                            reg: held_t.reg.detach(),
                        };
                        cross_head_level(
                            &teacher.head,
                            Held::at(&stu_trace[l], &stu_x[l], k),
                            &held_t,
                            &model.adapters,
                            k,
                            l,
                        )
                    })
                    .collect()
            } else {
                stu_out
            };
            losses.extend(prediction_kd_losses(
                &student.config.head,
                &self.settings,
                &pred,
                &tea_out,
                &targets,
            ));
        }
        if mode.feature_kd() {
            let pkd = stu_x
                .iter()
                .zip(&tea_x)
                .map(|(s, t)| {
                    pkd_loss(
                        super::adapter::adapt(&model.adapters.fpn, s.clone()),
                        t.clone(),
                    )
                })
                .reduce(|a, b| a + b)
                .expect("at least one FPN level");
            losses.push("loss_feat_kd", pkd.mul_scalar(self.settings.loss_feat_kd));
        }
        Ok(losses)
    }
}

/// Every level's outputs and tower traces.
fn forward_traced<B: Backend, H: DenseHead<B>>(
    head: &H,
    feats: &[Tensor<B, 4>],
) -> (Vec<LevelOutput<B>>, Vec<TowerTrace<B>>) {
    feats
        .iter()
        .enumerate()
        .map(|(l, x)| head.forward_level_traced(x.clone(), l))
        .unzip()
}

fn detach_level<B: Backend>(o: LevelOutput<B>) -> LevelOutput<B> {
    LevelOutput {
        cls_score: o.cls_score.detach(),
        bbox_pred: o.bbox_pred.detach(),
        centerness: o.centerness.map(|c| c.detach()),
    }
}
