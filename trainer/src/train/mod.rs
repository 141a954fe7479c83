//! Training machinery.

pub mod step;

pub use step::{train_step, StepError, StepOutput};
