//! One optimisation step of a training objective on a batch.

use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;

use super::grad_clip::clip_grad_norm;
use super::objective::Objective;
use crate::data::Batch;
use crate::model::detector::InputError;

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

/// Forward, the objective's loss, backward, optional global-norm clipping and
/// one optimiser update with learning rate `lr`.
///
/// A non-finite loss returns [`StepError::NonFinite`] together with the
/// untouched model, so the caller keeps its last good state.
pub fn train_step<B, O, J>(
    detector: J::Model,
    optimizer: &mut O,
    objective: &J,
    batch: &Batch<B>,
    lr: f64,
    grad_clip: Option<f32>,
) -> (J::Model, Result<StepOutput, StepError>)
where
    B: AutodiffBackend,
    J: Objective<B>,
    O: Optimizer<J::Model, B>,
{
    let losses = match objective.loss(&detector, batch) {
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
