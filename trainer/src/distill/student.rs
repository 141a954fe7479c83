//! What a distillation run optimises: the student detector and its
//! training-only adapters. The teacher is not part of it.

use burn::prelude::*;

use super::adapter::Adapters;
use crate::model::detector::Detector;

/// The student and the adapters that bridge its widths to the teacher's.
#[derive(Module, Debug)]
pub struct DistillStudent<B: Backend> {
    /// The compact detector that is exported and deployed.
    pub detector: Detector<B>,
    /// Training-only 1×1 adapters (empty when widths agree).
    pub adapters: Adapters<B>,
}
