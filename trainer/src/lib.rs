//! CrossKD trainer: dense detectors (GFL, RetinaNet, FCOS, ATSS) in burn, their
//! target assignment and losses, and cross-head knowledge distillation.
//!
//! The crate is split the way MMDetection splits a detector: `model` (backbone,
//! neck, heads, detector), `targets` (assigners, CPU, no autograd), `coders`
//! (differentiable box decoding), `losses` (burn tensor code). Box math, priors,
//! decoding and NMS shared with the edge runtime live in [`crosskd_sdk`].

pub mod backend;
pub mod bench;
pub mod cli;
pub mod config;
pub mod data;
pub mod distill;
pub mod eval;
pub mod export;
pub mod model;
pub mod train;

// Shared with the SDK's on-device fine-tuning: one copy, in the SDK (feature
// `finetune`); re-exported so trainer paths read as before.
pub use crosskd_sdk::nn::{coders, losses};
pub use crosskd_sdk::targets;
