//! Data: batches handed to detectors.

pub mod batch;
pub mod synth;

pub use batch::{Batch, ImageMeta};
