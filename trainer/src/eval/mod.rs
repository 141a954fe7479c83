//! Evaluation of detection results.
//!
//! [`coco`]: COCO bbox mAP with the exact semantics of pycocotools' `COCOeval`.

pub mod coco;
pub mod inference;

pub use coco::{evaluate, CocoEvaluator, CocoStats, STAT_NAMES};
