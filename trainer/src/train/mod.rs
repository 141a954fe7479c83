//! Training machinery: schedule, optimiser step, gradient clipping, checkpoints.

pub mod checkpoint;
pub mod grad_clip;
pub mod metrics;
pub mod objective;
#[cfg(feature = "collective")]
pub mod parallel;
pub mod parallel_cluster;
pub mod plots;
pub mod runner;
pub mod schedule;
pub mod step;

pub use objective::{GtObjective, Objective};
pub use step::{train_step, StepError, StepOutput};
