//! The dense heads and everything that trains them, in burn (feature `finetune`).
//!
//! The trainer builds its detectors from these parts and the on-device
//! [`crate::finetune`] trains the deployed student's head with them, so the losses
//! a model is fine-tuned with on the board are the ones it was trained with.
//! Split as MMDetection splits a head: [`heads`] (towers and predictors, one file
//! per kind), [`head_loss`] (target assignment → per-kind loss assembly),
//! [`losses`] and [`coders`] (differentiable burn tensor code), [`neck`] (FPN), [`layers`]
//! (conv, norm, scale building blocks). Assigners are plain Rust in
//! [`crate::targets`].

pub mod coders;
pub mod head;
pub mod head_loss;
pub mod heads;
pub mod image_meta;
pub mod layers;
pub mod loss_dict;
pub mod losses;
pub mod neck;

pub use head::{Head, HeadConfig};
pub use image_meta::ImageMeta;
pub use loss_dict::LossDict;
