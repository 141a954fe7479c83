//! What the training loop optimises: a detector on its GT losses, or a
//! distillation student (detector + adapters) on GT + KD losses. The loop only
//! sees this trait, so `crosskd train` and `crosskd distill` share every line
//! of scheduling, checkpointing, evaluation and logging.

use burn::module::{AutodiffModule, Module};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::AutodiffBackend;

use super::checkpoint::{record_bytes, CheckpointFile};
use crate::data::Batch;
use crate::distill::{DistillStudent, Distiller};
use crate::model::detector::{Detector, InputError};
use crate::model::loss_dict::LossDict;

/// A training objective over a trainable module.
pub trait Objective<B: AutodiffBackend> {
    /// The module the optimiser updates.
    type Model: AutodiffModule<B>;

    /// The detector inside the model (evaluated, checkpointed, exported).
    fn detector<'a>(&self, model: &'a Self::Model) -> &'a Detector<B>;

    /// Named loss components of a batch; their sum is minimised.
    fn loss(&self, model: &Self::Model, batch: &Batch<B>) -> Result<LossDict<B>, InputError>;

    /// Component names, in [`loss`](Self::loss) order (the metrics header).
    fn loss_names(&self, model: &Self::Model) -> Vec<String>;

    /// Record of the training-only part, saved in the checkpoint's extra section.
    fn extra_bytes(&self, _model: &Self::Model) -> Option<Vec<u8>> {
        None
    }

    /// Load a checkpoint's detector (and extra) records into `model`.
    fn load(
        &self,
        model: Self::Model,
        file: &CheckpointFile,
        device: &B::Device,
    ) -> anyhow::Result<Self::Model>;
}

fn recorder() -> BinBytesRecorder<FullPrecisionSettings> {
    BinBytesRecorder::default()
}

/// Plain detector training on the GT losses.
#[derive(Debug, Clone, Copy, Default)]
pub struct GtObjective;

impl<B: AutodiffBackend> Objective<B> for GtObjective {
    type Model = Detector<B>;

    fn detector<'a>(&self, model: &'a Detector<B>) -> &'a Detector<B> {
        model
    }

    fn loss(&self, model: &Detector<B>, batch: &Batch<B>) -> Result<LossDict<B>, InputError> {
        model.loss(batch)
    }

    fn loss_names(&self, model: &Detector<B>) -> Vec<String> {
        super::runner::gt_loss_names(&model.config)
    }

    fn load(
        &self,
        model: Detector<B>,
        file: &CheckpointFile,
        device: &B::Device,
    ) -> anyhow::Result<Detector<B>> {
        Ok(model.load_record(recorder().load(file.model.clone(), device)?))
    }
}

impl<B: AutodiffBackend> Objective<B> for Distiller<B> {
    type Model = DistillStudent<B>;

    fn detector<'a>(&self, model: &'a DistillStudent<B>) -> &'a Detector<B> {
        &model.detector
    }

    fn loss(&self, model: &DistillStudent<B>, batch: &Batch<B>) -> Result<LossDict<B>, InputError> {
        Distiller::loss(self, model, batch)
    }

    fn loss_names(&self, model: &DistillStudent<B>) -> Vec<String> {
        Distiller::loss_names(self, &model.detector.config)
    }

    fn extra_bytes(&self, model: &DistillStudent<B>) -> Option<Vec<u8>> {
        if model.adapters.is_empty() {
            return None;
        }
        super::checkpoint::materialize(&model.adapters);
        Some(record_bytes::<B, _>(model.adapters.clone().into_record()))
    }

    fn load(
        &self,
        model: DistillStudent<B>,
        file: &CheckpointFile,
        device: &B::Device,
    ) -> anyhow::Result<DistillStudent<B>> {
        let detector = model
            .detector
            .load_record(recorder().load(file.model.clone(), device)?);
        let adapters = if model.adapters.is_empty() {
            model.adapters
        } else {
            anyhow::ensure!(
                !file.extra.is_empty(),
                "the checkpoint has no adapter weights but this distillation uses adapters: resume with the config that wrote it"
            );
            model
                .adapters
                .load_record(recorder().load(file.extra.clone(), device)?)
        };
        Ok(DistillStudent { detector, adapters })
    }
}
