//! `[finetune]` section of a board's config: how much the board may spend on
//! adapting the deployed student, and how. Plain serde, compiled without the
//! `finetune` feature too, so every board config parses everywhere.

use serde::{Deserialize, Serialize};

/// On-device fine-tuning settings (all keys optional).
///
/// ```
/// use crosskd_sdk::DeviceConfig;
/// let cfg = DeviceConfig::from_toml_str(
///     "[finetune]\niters = 200\ntime_budget_s = 120\nmemory_mb = 512\n",
///     "board.toml",
/// )?;
/// assert_eq!(cfg.finetune.iters, 200);
/// assert!(!cfg.finetune.freeze_neck);
/// # Ok::<(), crosskd_sdk::SdkError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FinetuneConfig {
    /// Optimiser steps (the run stops earlier at `time_budget_s`).
    pub iters: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Peak SGD learning rate (after warm-up; cosine decay to 0).
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Linear warm-up steps.
    pub warmup_iters: usize,
    /// Gradient-norm clip (MMDetection's 35 for GFL/ATSS); 0 disables it.
    pub grad_clip: f32,
    /// Train the head only (the FPN stays as deployed, like the backbone).
    pub freeze_neck: bool,
    /// Weight of the distillation term that keeps the head's predictions close to
    /// the original model's, so the old scene is not forgotten; 0 disables it.
    pub kd_weight: f32,
    /// Also train on horizontally flipped copies of the local images.
    pub flip: bool,
    /// Wall-clock budget in seconds: training stops after the step that crosses it.
    pub time_budget_s: f64,
    /// Memory cap in MiB for the cached frozen features: above it the features are
    /// recomputed every step instead (slower, bounded memory).
    pub memory_mb: usize,
    /// Calibration images (from the local set) when re-quantizing an int8 model.
    pub calib_images: usize,
    /// Seed of the batch order.
    pub seed: u64,
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        Self {
            iters: 300,
            batch_size: 4,
            lr: 0.005,
            momentum: 0.9,
            weight_decay: 1e-4,
            warmup_iters: 20,
            grad_clip: 35.0,
            freeze_neck: false,
            kd_weight: 1.0,
            flip: true,
            time_budget_s: 900.0,
            memory_mb: 1024,
            calib_images: 32,
            seed: 0,
        }
    }
}

impl FinetuneConfig {
    /// Checks every value's range; the error names the key (`finetune.key`).
    pub fn validate(&self) -> Result<(), String> {
        let checks: [(&str, f64, f64, f64); 10] = [
            ("finetune.iters", self.iters as f64, 1.0, 1e7),
            ("finetune.batch_size", self.batch_size as f64, 1.0, 256.0),
            ("finetune.lr", self.lr, 1e-8, 1.0),
            ("finetune.momentum", self.momentum, 0.0, 0.999),
            ("finetune.weight_decay", self.weight_decay, 0.0, 0.1),
            ("finetune.warmup_iters", self.warmup_iters as f64, 0.0, 1e7),
            ("finetune.grad_clip", self.grad_clip as f64, 0.0, 1e6),
            ("finetune.kd_weight", self.kd_weight as f64, 0.0, 1e3),
            ("finetune.time_budget_s", self.time_budget_s, 1.0, 1e7),
            ("finetune.memory_mb", self.memory_mb as f64, 16.0, 1e7),
        ];
        for (key, v, lo, hi) in checks {
            if !(v >= lo && v <= hi) {
                return Err(format!("{key} = {v} is out of range {lo}..={hi}"));
            }
        }
        if !(1..=10_000).contains(&self.calib_images) {
            return Err(format!(
                "finetune.calib_images = {} is out of range 1..=10000",
                self.calib_images
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_ranges_name_the_key() {
        assert_eq!(FinetuneConfig::default().validate(), Ok(()));
        let bad = FinetuneConfig {
            lr: 0.0,
            ..Default::default()
        };
        let e = bad.validate().unwrap_err();
        assert!(e.starts_with("finetune.lr = 0"), "{e}");
        let nan = FinetuneConfig {
            time_budget_s: f64::NAN,
            ..Default::default()
        };
        assert!(nan
            .validate()
            .unwrap_err()
            .contains("finetune.time_budget_s"));
    }
}
