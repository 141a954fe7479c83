//! On-device fine-tuning of the deployed student (feature `finetune`).
//!
//! A board meets a new scene; the app collects a few dozen labelled frames
//! ([`LocalSet`]: a COCO file, or [`Sample`]s pushed in) and the
//! [`Finetuner`] adapts the model on the board's CPU with burn:
//!
//! 1. the frozen layers — the backbone, and the FPN with `freeze_neck` — run in
//!    tract on the fp32 graph, once per frame (cached up to `memory_mb`);
//! 2. the trainable part — FPN and head — is rebuilt in burn from the configs and
//!    weights in the ONNX file ([`net`], [`weights`]) and trained with the head's
//!    own GT losses ([`crate::nn::head_loss`], the code the trainer uses) plus a
//!    distillation term towards the original model's predictions ([`kd`]), so
//!    the old scene is not forgotten;
//! 3. the weights go back into a copy of the fp32 graph; an int8 deployment is
//!    re-quantized with calibration frames from the local set.
//!
//! The running [`Detector`](crate::Detector) then swaps to the new model
//! without a restart and can roll back
//! ([`Detector::swap_model`](crate::Detector::swap_model)).
//!
//! The settings ([`FinetuneConfig`], a board config's `[finetune]` section:
//! steps, time budget, memory cap, …) parse without the feature.

pub mod config;

pub use config::FinetuneConfig;

#[cfg(feature = "finetune")]
pub mod data;
#[cfg(feature = "finetune")]
pub mod features;
#[cfg(feature = "finetune")]
pub mod finetuner;
#[cfg(feature = "finetune")]
pub mod kd;
#[cfg(feature = "finetune")]
pub mod net;
#[cfg(feature = "finetune")]
pub mod weights;

#[cfg(feature = "finetune")]
pub use data::{LocalSet, Sample};
#[cfg(feature = "finetune")]
pub use finetuner::{
    fp32_sibling, FinetuneOutcome, FinetuneReport, Finetuner, Progress, Stage, StopReason,
};

/// Why fine-tuning could not run. The deployed model is never touched on error.
#[derive(Debug, thiserror::Error)]
pub enum FinetuneError {
    /// The model cannot be fine-tuned (not a `crosskd export`, missing metadata…).
    #[error("model: {0}")]
    Model(String),
    /// The local labelled set is unusable (names the file and entry).
    #[error("local data: {0}")]
    Data(String),
    /// A `[finetune]` setting is out of range (names the key).
    #[error("config: {0}")]
    Config(String),
    /// The loss became NaN/inf: the learning rate is likely too high.
    #[error(
        "the loss is not finite at step {iter} ({losses:?}); lower finetune.lr or check the labels"
    )]
    NonFinite {
        /// Step index.
        iter: usize,
        /// Loss components of that step.
        losses: Vec<(String, f32)>,
    },
    /// The run was cancelled; no model was produced.
    #[error("cancelled")]
    Cancelled,
    /// Writing a result failed.
    #[error("{0}")]
    Io(String),
}
