//! Data: batches handed to detectors.

pub mod batch;

pub use batch::{Batch, ImageMeta};
