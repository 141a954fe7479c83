//! One optimisation step of a detector on a batch.

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;

use super::grad_clip::clip_grad_norm;
use crate::data::Batch;
use crate::model::detector::{Detector, InputError};

/// Loss values of a finished step.
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// `(name, value)` per loss component.
    pub losses: Vec<(String, f32)>,
    /// Their sum.
    pub total: f32,
    /// Global L2 norm of the gradients before clipping (when clipping is on).
    pub grad_norm: Option<f64>,
}

/// A step that must not be applied.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The batch does not fit the model.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A loss component is NaN or infinite; the parameters were not updated.
    #[error("loss `{name}` is {value}: the step was not applied (lower the learning rate, enable gradient clipping, or check the annotations)")]
    NonFinite {
        /// Component name.
        name: String,
        /// Its value.
        value: f32,
    },
}

/// Forward, GT loss, backward, optional global-norm clipping and one optimiser
/// update with learning rate `lr`.
///
/// A non-finite loss returns [`StepError::NonFinite`] together with the
/// untouched detector, so the caller keeps its last good state.
pub fn train_step<B, O>(
    detector: Detector<B>,
    optimizer: &mut O,
    batch: &Batch<B>,
    lr: f64,
    grad_clip: Option<f32>,
) -> (Detector<B>, Result<StepOutput, StepError>)
where
    B: AutodiffBackend,
    O: Optimizer<Detector<B>, B>,
    Detector<B>: AutodiffModule<B>,
{
    let losses = match detector.loss(batch) {
        Ok(l) => l,
        Err(e) => return (detector, Err(e.into())),
    };
    let values = losses.values();
    if let Some((name, value)) = values.iter().find(|(_, v)| !v.is_finite()) {
        let err = StepError::NonFinite {
            name: name.clone(),
            value: *value,
        };
        return (detector, Err(err));
    }
    let total: f32 = values.iter().map(|(_, v)| v).sum();
    let mut grads = GradientsParams::from_grads(losses.total().backward(), &detector);
    let grad_norm = grad_clip.map(|max| clip_grad_norm(&detector, &mut grads, max));
    let detector = optimizer.step(lr, detector, grads);
    (
        detector,
        Ok(StepOutput {
            losses: values,
            total,
            grad_norm,
        }),
    )
}
