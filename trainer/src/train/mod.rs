//! Training machinery.

pub mod metrics;
pub mod plots;
pub mod step;

pub use step::{train_step, StepError, StepOutput};
