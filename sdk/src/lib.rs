//! `crosskd-sdk`: the edge runtime for CrossKD-distilled dense detectors.
//!
//! Everything the trainer and the deployed model share lives here, in plain
//! Rust on `&[f32]`: box math, anchor/point generation, box coders, decoding of
//! the four head kinds, NMS and the model-metadata schema. The trainer calls the
//! same code for evaluation that the board runs for inference.
//!
//! The main entry point is [`postprocess()`]: one image's raw per-level head outputs
//! ([`LevelOutput`]) plus a [`DecodeSpec`] and a [`TestConfig`] give the final
//! [`Detection`]s, exactly as MMDetection 3.x predicts them.

#![warn(missing_docs)]

pub mod boxes;
pub mod coders;
pub mod decode;
pub mod detection;
pub mod metadata;
pub mod nms;
pub mod postprocess;
pub mod preprocess;
pub mod priors;

pub use boxes::BBox;
pub use coders::{bbox2distance, distance2bbox, DeltaXywhCoder};
pub use decode::{DecodeError, DecodeSpec, HeadKind, LevelOutput};
pub use detection::{CocoResult, Detection};
pub use metadata::{MetaError, ModelMeta, FORMAT_VERSION};
pub use nms::{batched_nms, nms};
pub use postprocess::{postprocess, TestConfig};
pub use priors::{featmap_sizes, grid_points, valid_flags, AnchorGenerator};
