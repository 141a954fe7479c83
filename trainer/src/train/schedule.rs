//! Optimiser settings and the learning-rate schedule: linear or constant
//! warm-up (by iteration) followed by step or cosine decay, in epochs or
//! iterations — mmengine's `LinearLR`/`ConstantLR` + `MultiStepLR`/`CosineAnnealingLR`.

use serde::{Deserialize, Serialize};

/// `[schedule]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Training length in epochs (1x = 12, 2x = 24). Exactly one of `epochs`/`iters`.
    #[serde(default)]
    pub epochs: Option<usize>,
    /// Training length in iterations (iteration-based schedule).
    #[serde(default)]
    pub iters: Option<usize>,
    /// Learning rate for the configured total batch (MMDet: 0.01 for 16 images).
    pub base_lr: f64,
    /// Scale `base_lr` by `total_batch / base_batch_size` (MMDet `auto_scale_lr`).
    #[serde(default)]
    pub auto_scale_lr_base_batch: Option<usize>,
    /// SGD momentum (dampening 0, no Nesterov, as PyTorch's SGD).
    #[serde(default = "momentum")]
    pub momentum: f64,
    /// L2 weight decay on every parameter.
    #[serde(default = "weight_decay")]
    pub weight_decay: f32,
    /// Warm-up.
    #[serde(default)]
    pub warmup: WarmupConfig,
    /// Decay after warm-up.
    #[serde(default)]
    pub policy: LrPolicy,
    /// Clip the global L2 norm of all gradients to this value.
    #[serde(default)]
    pub grad_clip: Option<f32>,
    /// Evaluate every N epochs (or N iterations for iteration-based schedules); 0 = never.
    #[serde(default = "one")]
    pub eval_interval: usize,
    /// Checkpoint every N epochs (or iterations).
    #[serde(default = "one")]
    pub checkpoint_interval: usize,
    /// Write a metrics row every N iterations.
    #[serde(default = "log_interval")]
    pub log_interval: usize,
}

fn momentum() -> f64 {
    0.9
}
fn weight_decay() -> f32 {
    1e-4
}
fn one() -> usize {
    1
}
fn log_interval() -> usize {
    10
}

/// `[schedule.warmup]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmupConfig {
    /// `linear` (from `ratio·lr` to `lr`), `constant` (`ratio·lr`), or `none`.
    #[serde(default)]
    pub kind: WarmupKind,
    /// Warm-up length in iterations.
    #[serde(default = "warmup_iters")]
    pub iters: usize,
    /// Start factor (linear) or the constant factor.
    #[serde(default = "warmup_ratio")]
    pub ratio: f64,
}

fn warmup_iters() -> usize {
    500
}
fn warmup_ratio() -> f64 {
    0.001
}

impl Default for WarmupConfig {
    fn default() -> Self {
        Self {
            kind: WarmupKind::Linear,
            iters: 500,
            ratio: 0.001,
        }
    }
}

/// Warm-up shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WarmupKind {
    /// Linear ramp.
    #[default]
    Linear,
    /// Constant factor (FCOS: 1/3).
    Constant,
    /// No warm-up.
    None,
}

/// `[schedule.policy]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum LrPolicy {
    /// Multiply by `gamma` at each milestone (epochs or iterations); empty
    /// milestones mean the 1x rule: at 2/3 and 11/12 of the schedule.
    Step {
        /// Milestones.
        #[serde(default)]
        steps: Vec<usize>,
        /// Factor per milestone.
        #[serde(default = "gamma")]
        gamma: f64,
    },
    /// Cosine annealing to `min_ratio · lr` over the whole schedule (by iteration).
    Cosine {
        /// Final learning rate as a fraction of the base.
        #[serde(default)]
        min_ratio: f64,
    },
}

fn gamma() -> f64 {
    0.1
}

impl Default for LrPolicy {
    fn default() -> Self {
        LrPolicy::Step {
            steps: vec![],
            gamma: 0.1,
        }
    }
}

impl ScheduleConfig {
    /// A 1x-style epoch schedule with MMDet's defaults.
    pub fn epochs(epochs: usize, base_lr: f64) -> Self {
        Self {
            epochs: Some(epochs),
            iters: None,
            base_lr,
            auto_scale_lr_base_batch: None,
            momentum: 0.9,
            weight_decay: 1e-4,
            warmup: WarmupConfig::default(),
            policy: LrPolicy::default(),
            grad_clip: None,
            eval_interval: 1,
            checkpoint_interval: 1,
            log_interval: 10,
        }
    }

    /// Cross-field checks; messages name the key.
    pub fn validate(&self) -> Result<(), String> {
        match (self.epochs, self.iters) {
            (Some(0), _) | (_, Some(0)) => {
                return Err("schedule.epochs/iters must be positive".into())
            }
            (Some(_), Some(_)) | (None, None) => {
                return Err("schedule: set exactly one of `epochs` and `iters`".into())
            }
            _ => {}
        }
        if !(self.base_lr > 0.0 && self.base_lr.is_finite()) {
            return Err(format!(
                "schedule.base_lr = {} must be positive",
                self.base_lr
            ));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(format!(
                "schedule.momentum = {} must be in [0, 1)",
                self.momentum
            ));
        }
        if !(self.warmup.ratio > 0.0 && self.warmup.ratio <= 1.0) {
            return Err(format!(
                "schedule.warmup.ratio = {} must be in (0, 1]",
                self.warmup.ratio
            ));
        }
        if let Some(c) = self.grad_clip {
            if c.is_nan() || c <= 0.0 {
                return Err(format!("schedule.grad_clip = {c} must be positive"));
            }
        }
        if self.log_interval == 0 || self.checkpoint_interval == 0 {
            return Err("schedule.log_interval and checkpoint_interval must be positive".into());
        }
        Ok(())
    }

    /// Whether lengths, milestones and intervals count iterations.
    pub fn by_iter(&self) -> bool {
        self.iters.is_some()
    }

    /// Total iterations given the epoch length.
    pub fn total_iters(&self, iters_per_epoch: usize) -> usize {
        self.iters
            .unwrap_or_else(|| self.epochs.unwrap_or(1) * iters_per_epoch)
    }

    /// Learning rate after auto-scaling for a total batch of `total_batch` images.
    pub fn scaled_base_lr(&self, total_batch: usize) -> f64 {
        match self.auto_scale_lr_base_batch {
            Some(base) if base > 0 => self.base_lr * total_batch as f64 / base as f64,
            _ => self.base_lr,
        }
    }

    /// Learning rate at global iteration `iter` (0-based) for a base `lr`.
    ///
    /// ```
    /// use crosskd_trainer::train::schedule::ScheduleConfig;
    /// let s = ScheduleConfig::epochs(12, 0.01);
    /// // 100 iterations per epoch: warm-up from 0.001·lr over 500 iterations, ×0.1 at epochs 8 and 11.
    /// assert!((s.lr_at(0, 100, 0.01) - 1e-5).abs() < 1e-12);
    /// assert!((s.lr_at(600, 100, 0.01) - 0.01).abs() < 1e-12);
    /// assert!((s.lr_at(800, 100, 0.01) - 0.001).abs() < 1e-12);
    /// assert!((s.lr_at(1100, 100, 0.01) - 0.0001).abs() < 1e-12);
    /// ```
    pub fn lr_at(&self, iter: usize, iters_per_epoch: usize, lr: f64) -> f64 {
        let total = self.total_iters(iters_per_epoch).max(1);
        let unit = if self.by_iter() {
            1
        } else {
            iters_per_epoch.max(1)
        };
        let decayed = match &self.policy {
            LrPolicy::Step { steps, gamma } => {
                let length = total / unit;
                let default_steps;
                let steps = if steps.is_empty() {
                    default_steps = vec![length * 2 / 3, length * 11 / 12];
                    &default_steps
                } else {
                    steps
                };
                let passed = steps.iter().filter(|&&m| iter / unit >= m && m > 0).count();
                lr * gamma.powi(passed as i32)
            }
            LrPolicy::Cosine { min_ratio } => {
                let t = (iter as f64 / total as f64).min(1.0);
                let min = lr * min_ratio;
                min + (lr - min) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        };
        let w = &self.warmup;
        let factor = if iter >= w.iters {
            1.0
        } else {
            match w.kind {
                WarmupKind::None => 1.0,
                WarmupKind::Constant => w.ratio,
                WarmupKind::Linear => w.ratio + (1.0 - w.ratio) * iter as f64 / w.iters as f64,
            }
        };
        decayed * factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_warmup_and_default_1x_steps() {
        let s = ScheduleConfig::epochs(12, 0.01);
        // Linear from 0.001 at iter 0 to 1 at iter 500: iter 250 → 0.001 + 0.999·0.5 = 0.5005.
        assert!((s.lr_at(250, 1000, 0.01) - 0.005005).abs() < 1e-12);
        // Default milestones for 12 epochs: 8 and 11.
        assert!((s.lr_at(7999, 1000, 0.01) - 0.01).abs() < 1e-12);
        assert!((s.lr_at(8000, 1000, 0.01) - 0.001).abs() < 1e-12);
        assert!((s.lr_at(11000, 1000, 0.01) - 0.0001).abs() < 1e-12);
        // 2x: 16 and 22.
        let s = ScheduleConfig::epochs(24, 0.01);
        assert!((s.lr_at(15999, 1000, 0.01) - 0.01).abs() < 1e-12);
        assert!((s.lr_at(16000, 1000, 0.01) - 0.001).abs() < 1e-12);
        assert!((s.lr_at(22000, 1000, 0.01) - 0.0001).abs() < 1e-12);
    }

    #[test]
    fn constant_warmup_and_cosine_by_iteration() {
        let mut s = ScheduleConfig::epochs(12, 0.01);
        s.warmup.kind = WarmupKind::Constant;
        s.warmup.ratio = 1.0 / 3.0;
        // 1000 iterations per epoch: iteration 499 is in epoch 0, before any milestone.
        assert!((s.lr_at(499, 1000, 0.01) - 0.01 / 3.0).abs() < 1e-12);
        assert!((s.lr_at(500, 1000, 0.01) - 0.01).abs() < 1e-12);
        s.epochs = None;
        s.iters = Some(1000);
        s.warmup.kind = WarmupKind::None;
        s.policy = LrPolicy::Cosine { min_ratio: 0.0 };
        assert!((s.lr_at(0, 10, 0.01) - 0.01).abs() < 1e-12);
        assert!((s.lr_at(500, 10, 0.01) - 0.005).abs() < 1e-12);
        assert!(s.lr_at(1000, 10, 0.01).abs() < 1e-12);
    }

    #[test]
    fn auto_scale_and_validation() {
        let mut s = ScheduleConfig::epochs(12, 0.01);
        s.auto_scale_lr_base_batch = Some(16);
        assert!((s.scaled_base_lr(64) - 0.04).abs() < 1e-12);
        s.iters = Some(10);
        assert!(s.validate().unwrap_err().contains("exactly one"));
        let mut s = ScheduleConfig::epochs(12, 0.01);
        s.grad_clip = Some(-1.0);
        assert!(s.validate().unwrap_err().contains("grad_clip"));
    }
}
