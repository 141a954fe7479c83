//! Named loss components of one training step.

use burn::prelude::*;

/// Loss components in insertion order (`loss_cls`, `loss_bbox`, ...); the
/// training objective is their sum, as MMDetection's `parse_losses`.
#[derive(Debug, Clone)]
pub struct LossDict<B: Backend> {
    /// `(name, scalar tensor of shape [1])`.
    pub items: Vec<(String, Tensor<B, 1>)>,
}

impl<B: Backend> Default for LossDict<B> {
    fn default() -> Self {
        Self { items: Vec::new() }
    }
}

impl<B: Backend> LossDict<B> {
    /// Add a component.
    pub fn push(&mut self, name: impl Into<String>, value: Tensor<B, 1>) {
        self.items.push((name.into(), value));
    }

    /// Append every component of `other` (names are kept).
    pub fn extend(&mut self, other: LossDict<B>) {
        self.items.extend(other.items);
    }

    /// The training objective: sum of all components.
    pub fn total(&self) -> Tensor<B, 1> {
        let mut it = self.items.iter().map(|(_, v)| v.clone());
        let first = it.next().expect("a loss dict is never empty");
        it.fold(first, |acc, v| acc + v)
    }

    /// Component values on the host, for logging.
    pub fn values(&self) -> Vec<(String, f32)> {
        self.items
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into_scalar().elem::<f32>()))
            .collect()
    }

    /// The value of the component `name`, if present.
    pub fn get(&self, name: &str) -> Option<f32> {
        self.items
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone().into_scalar().elem::<f32>())
    }
}
