//! Cross-head knowledge distillation (CrossKD) and the baselines it is compared
//! with: PKD on FPN features, vanilla prediction mimicking, and none.
//!
//! A [`Distiller`] wraps a frozen teacher [`Detector`](crate::model::detector::Detector)
//! and computes the losses of a [`DistillStudent`] (the student detector plus
//! training-only [`Adapters`]); the training loop runs it through the
//! [`Objective`](crate::train::objective::Objective) trait like plain training.

pub mod adapter;
pub mod config;
pub mod cross_head;
pub mod distiller;
pub mod kd_loss;
pub mod student;

pub use adapter::{AdapterWidths, Adapters};
pub use config::{DistillConfig, DistillMode, KdSettings};
pub use cross_head::{cross_head_level, Held};
pub use distiller::{check_pair, DistillError, Distiller};
pub use kd_loss::prediction_kd_losses;
pub use student::DistillStudent;

#[cfg(test)]
mod tests;
