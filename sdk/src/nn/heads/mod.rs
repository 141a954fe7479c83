//! Dense detection heads and the [`DenseHead`] trait.
//!
//! Every head has a cls tower and a reg tower of `stacked_convs` ConvModules
//! followed by predictor convs. The trait exposes the towers layer by layer so
//! a distiller can take one head's tower feature at layer `k` and push it
//! through another head's remaining layers (`forward_level_from`), without the
//! heads knowing about distillation.

pub mod atss;
pub mod fcos;
pub mod gfl;
pub mod retinanet;
pub mod tower;

use burn::prelude::*;

pub use atss::{AtssHead, AtssHeadConfig};
pub use fcos::{FcosHead, FcosHeadConfig};
pub use gfl::{GflHead, GflHeadConfig};
pub use retinanet::{RetinaHead, RetinaHeadConfig};
pub use tower::Tower;

/// Raw predictions of one FPN level, `[N, channels, H, W]`.
#[derive(Debug, Clone)]
pub struct LevelOutput<B: Backend> {
    /// Classification logits (`A·C` channels).
    pub cls_score: Tensor<B, 4>,
    /// Box regression: deltas (RetinaNet/ATSS), 17-bin logits per side (GFL),
    /// or pixel distances (FCOS), after the level `Scale`.
    pub bbox_pred: Tensor<B, 4>,
    /// Centerness logits (FCOS, ATSS).
    pub centerness: Option<Tensor<B, 4>>,
}

/// Pre-activation outputs (after conv + norm, before ReLU) of every tower conv.
#[derive(Debug, Clone)]
pub struct TowerTrace<B: Backend> {
    /// Cls tower, conv 1 first.
    pub cls: Vec<Tensor<B, 4>>,
    /// Reg tower, conv 1 first.
    pub reg: Vec<Tensor<B, 4>>,
}

/// A dense head: towers + predictors, per FPN level.
pub trait DenseHead<B: Backend> {
    /// The cls and reg towers.
    fn towers(&self) -> (&Tower<B>, &Tower<B>);

    /// Predictor convs (+ Scale, + exp for FCOS) on the final tower features of `level`.
    fn predict_level(
        &self,
        cls_feat: Tensor<B, 4>,
        reg_feat: Tensor<B, 4>,
        level: usize,
    ) -> LevelOutput<B>;

    /// Number of convs per tower.
    fn stacked_convs(&self) -> usize {
        self.towers().0.convs.len()
    }

    /// Full forward of one level.
    fn forward_level(&self, x: Tensor<B, 4>, level: usize) -> LevelOutput<B> {
        let (cls, reg) = self.towers();
        self.predict_level(cls.forward(x.clone()), reg.forward(x), level)
    }

    /// Forward one level and keep every tower layer's pre-activation output.
    fn forward_level_traced(
        &self,
        x: Tensor<B, 4>,
        level: usize,
    ) -> (LevelOutput<B>, TowerTrace<B>) {
        let (cls, reg) = self.towers();
        let (cls_feat, cls_trace) = cls.forward_traced(x.clone());
        let (reg_feat, reg_trace) = reg.forward_traced(x);
        let out = self.predict_level(cls_feat, reg_feat, level);
        (
            out,
            TowerTrace {
                cls: cls_trace,
                reg: reg_trace,
            },
        )
    }

    /// Run tower convs `k..` on given cls/reg inputs (what conv `k` normally
    /// receives: the FPN feature when `k = 0`, else a post-ReLU feature), then
    /// the predictors of `level`.
    fn forward_level_from(
        &self,
        cls_in: Tensor<B, 4>,
        reg_in: Tensor<B, 4>,
        k: usize,
        level: usize,
    ) -> LevelOutput<B> {
        let (cls, reg) = self.towers();
        self.predict_level(
            cls.forward_from(cls_in, k),
            reg.forward_from(reg_in, k),
            level,
        )
    }

    /// Forward every level.
    fn forward(&self, feats: &[Tensor<B, 4>]) -> Vec<LevelOutput<B>> {
        feats
            .iter()
            .enumerate()
            .map(|(l, x)| self.forward_level(x.clone(), l))
            .collect()
    }
}

/// Classification bias so that σ(bias) = `prior_prob` (MMDet: 0.01 → −4.595).
pub fn prior_bias(prior_prob: f64) -> f64 {
    -((1.0 - prior_prob) / prior_prob).ln()
}
