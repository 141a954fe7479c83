//! Data: COCO annotations → dataset → per-image transforms → batches.

pub mod batch;
pub use crosskd_sdk::coco;
pub mod dataset;
pub mod loader;
pub mod pipeline;
pub mod synth;

pub use batch::{Batch, ImageMeta};
