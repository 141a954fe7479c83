//! `crosskd bench train-step`: forward and forward+backward time of a detector.

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Distribution;
use crosskd_sdk::HeadKind;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::median_p90;
use crate::data::{Batch, ImageMeta};
use crate::distill::{DistillConfig, DistillMode, Distiller};
use crate::model::detector::DetectorConfig;

/// What to benchmark.
#[derive(Debug, Clone)]
pub struct TrainStepBench {
    /// Detector family.
    pub kind: HeadKind,
    /// ResNet depth.
    pub depth: usize,
    /// Backbone width multiplier.
    pub width_mult: f32,
    /// Square input size.
    pub size: usize,
    /// Images per batch.
    pub batch: usize,
    /// Classes of the head.
    pub num_classes: usize,
    /// Untimed warm-up iterations.
    pub warmup: usize,
    /// Timed iterations.
    pub iters: usize,
    /// Seed of the random inputs and boxes.
    pub seed: u64,
    /// Distillation modes to time against the student-only step (`none` is that step).
    pub modes: Vec<DistillMode>,
    /// Teacher ResNet depth for the distillation modes (full width).
    pub teacher_depth: usize,
}

/// Timings in milliseconds (median, p90).
#[derive(Debug, Clone, Serialize)]
pub struct TrainStepReport {
    /// Backend name.
    pub backend: String,
    /// Detector family.
    pub detector: String,
    /// ResNet depth.
    pub depth: usize,
    /// Input size.
    pub size: usize,
    /// Batch size.
    pub batch: usize,
    /// Forward only (training-mode graph).
    pub forward_ms: (f64, f64),
    /// Forward + Σ(outputs²) + backward: the same work PyTorch's reference script times.
    pub forward_backward_ms: (f64, f64),
    /// Forward + detector GT loss (targets on the CPU) + backward.
    pub train_step_ms: (f64, f64),
    /// Per distillation mode: `(mode, (median, p90) ms, median / train_step median)`.
    pub distill_ms: Vec<(String, (f64, f64), f64)>,
}

fn random_batch<B: Backend>(b: &TrainStepBench, device: &B::Device) -> Batch<B> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(b.seed);
    let s = b.size as f32;
    let metas = (0..b.batch)
        .map(|i| {
            let boxes: Vec<[f32; 4]> = (0..4)
                .map(|_| {
                    let w = rng.random_range(0.05..0.6) * s;
                    let h = rng.random_range(0.05..0.6) * s;
                    let x = rng.random_range(0.0..(s - w));
                    let y = rng.random_range(0.0..(s - h));
                    [x, y, x + w, y + h]
                })
                .collect();
            let labels = (0..4).map(|_| rng.random_range(0..b.num_classes)).collect();
            ImageMeta::new(i as u64, b.size, b.size, boxes, labels)
        })
        .collect();
    Batch {
        images: Tensor::random(
            [b.batch, 3, b.size, b.size],
            Distribution::Normal(0.0, 1.0),
            device,
        ),
        metas,
    }
}

fn time_ms(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64() * 1e3
}

/// Run the benchmark on backend `B`.
pub fn run_train_step_bench<B: AutodiffBackend>(
    b: &TrainStepBench,
    device: &B::Device,
) -> anyhow::Result<TrainStepReport> {
    let mut cfg = DetectorConfig::preset(b.kind, b.depth, b.num_classes);
    cfg.backbone.width_mult = b.width_mult;
    let det = cfg.init::<B>(device)?;
    let batch = random_batch::<B>(b, device);
    det.check_batch(&batch)?;
    let sync = |t: Tensor<B, 1>| {
        // Reading a scalar waits for queued work on asynchronous backends.
        let _ = t.into_scalar();
        let _ = B::sync(device);
    };
    let sum_sq = |outs: Vec<crate::model::heads::LevelOutput<B>>| {
        outs.into_iter()
            .map(|o| {
                let mut t = o.cls_score.powi_scalar(2).sum() + o.bbox_pred.powi_scalar(2).sum();
                if let Some(c) = o.centerness {
                    t = t + c.powi_scalar(2).sum();
                }
                t
            })
            .reduce(|a, c| a + c)
            .expect("at least one level")
    };
    let (mut fwd, mut fb, mut step) = (vec![], vec![], vec![]);
    for i in 0..b.warmup + b.iters {
        let keep = i >= b.warmup;
        let t = time_ms(|| sync(sum_sq(det.forward(batch.images.clone())).detach()));
        if keep {
            fwd.push(t);
        }
        let t = time_ms(|| {
            let loss = sum_sq(det.forward(batch.images.clone()));
            let grads = loss.backward();
            drop(grads);
            let _ = B::sync(device);
        });
        if keep {
            fb.push(t);
        }
        let t = time_ms(|| {
            let losses = det.loss(&batch).expect("checked batch");
            let grads = losses.total().backward();
            drop(grads);
            let _ = B::sync(device);
        });
        if keep {
            step.push(t);
        }
    }
    let train_step_ms = median_p90(&mut step);
    let mut distill_ms = Vec::new();
    for &mode in b.modes.iter().filter(|m| **m != DistillMode::None) {
        let mut tcfg = DetectorConfig::preset(b.kind, b.teacher_depth, b.num_classes);
        tcfg.neck.relu_before_extra_convs = cfg.neck.relu_before_extra_convs;
        let teacher = tcfg.init::<B>(device)?;
        let distiller = Distiller::new(Some(teacher), &cfg, &DistillConfig::new(mode, None))?;
        let model = distiller.student(det.clone(), device);
        let mut times = Vec::new();
        for i in 0..b.warmup + b.iters {
            let t = time_ms(|| {
                let losses = distiller.loss(&model, &batch).expect("checked batch");
                let grads = losses.total().backward();
                drop(grads);
                let _ = B::sync(device);
            });
            if i >= b.warmup {
                times.push(t);
            }
        }
        let m = median_p90(&mut times);
        distill_ms.push((mode.name().to_string(), m, m.0 / train_step_ms.0));
    }
    Ok(TrainStepReport {
        backend: B::name(device),
        detector: b.kind.name().to_string(),
        depth: b.depth,
        size: b.size,
        batch: b.batch,
        forward_ms: median_p90(&mut fwd),
        forward_backward_ms: median_p90(&mut fb),
        train_step_ms,
        distill_ms,
    })
}
