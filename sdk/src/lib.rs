//! `crosskd-sdk`: the edge runtime for CrossKD-distilled dense detectors.
//!
//! Everything the trainer and the deployed model share lives here, in plain
//! Rust on `&[f32]`: box math, anchor/point generation, box coders, decoding of
//! the four head kinds, NMS and the model-metadata schema. The trainer calls the
//! same code for evaluation that the board runs for inference.
//!
//! For applications the entry point is [`Detector`]: an exported ONNX model
//! (with its `crosskd.meta` metadata) loaded into a typed, optimised tract plan
//! for one board's [`DeviceConfig`], turning images into [`Detection`]s in image
//! pixels. Frames come from a [`source::FrameSource`] (file, folder, camera with
//! the `camera` feature); [`draw`] renders results.
//!
//! ```no_run
//! use crosskd_sdk::{Detector, DeviceConfig};
//! let cfg = DeviceConfig::from_file("firmware-configs/raspberry-pi-5.toml")?;
//! let mut detector = Detector::from_file("student.onnx", &cfg)?;
//! let img = image::open("frame.jpg").expect("an image");
//! let dets = detector.detect(&img)?;
//! # Ok::<(), crosskd_sdk::SdkError>(())
//! ```
//!
//! Underneath, [`postprocess()`] turns one image's raw per-level head outputs
//! ([`LevelOutput`]) plus a [`DecodeSpec`] and a [`TestConfig`] into the final
//! [`Detection`]s, exactly as MMDetection 3.x predicts them; the trainer calls it
//! too.

#![warn(missing_docs)]

pub mod boxes;
pub mod coco;
pub mod coders;
pub mod config;
pub mod decode;
pub mod detection;
pub mod detector;
pub mod draw;
pub mod error;
pub mod finetune;
pub mod letterbox;
pub mod metadata;
pub mod model;
pub mod nms;
pub mod onnx;
pub mod postprocess;
pub mod preprocess;
pub mod priors;
pub mod rgb;
pub mod source;
pub mod targets;
pub mod testing;

#[cfg(feature = "finetune")]
pub mod nn;

pub use boxes::BBox;
pub use coders::{bbox2distance, distance2bbox, DeltaXywhCoder};
pub use config::{DeviceConfig, Precision};
pub use decode::{DecodeError, DecodeSpec, HeadKind, LevelOutput};
pub use detection::{CocoResult, Detection};
pub use detector::{Detector, StageTimes};
pub use error::{Result, SdkError};
pub use metadata::{MetaError, ModelMeta, FORMAT_VERSION};
pub use nms::{batched_nms, nms};
pub use postprocess::{postprocess, TestConfig};
pub use priors::{featmap_sizes, grid_points, valid_flags, AnchorGenerator};
