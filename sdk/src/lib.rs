//! `crosskd-sdk`: the edge runtime for CrossKD-distilled dense detectors.
//!
//! Everything the trainer and the deployed model share lives here, in plain
//! Rust on `&[f32]`: box math, anchor/point generation, box coders, decoding of
//! the four head kinds, NMS and the model-metadata schema. The trainer calls the
//! same code for evaluation that the board runs for inference.

pub mod boxes;
