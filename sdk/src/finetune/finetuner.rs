//! [`Finetuner`]: adapts a deployed student's head (and FPN, unless frozen) to
//! a local labelled set on the board, with the head's own GT losses plus the
//! [`kd`](super::kd) term towards the original model, then writes the new fp32
//! ONNX (and re-quantizes it when the deployed model was int8).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use burn::grad_clipping::GradientClippingConfig;
use burn::module::AutodiffModule;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde_json::json;
use tract_onnx::pb::ModelProto;

use super::data::LocalSet;
use super::features::FrozenFeatures;
use super::kd::kd_losses;
use super::net::{NetConfigs, TrainNet};
use super::weights;
use super::{FinetuneConfig, FinetuneError};
use crate::metadata::ModelMeta;
use crate::nn::heads::LevelOutput;
use crate::nn::ImageMeta;
use crate::onnx::props::{get_prop, set_prop, PRECISION_KEY};
use crate::onnx::quantize::{quantize, CalibMethod, QuantFormat, QuantizeOptions};
use crate::onnx::runner::{read_model, write_model};

/// Metadata key recording a fine-tuning run in the new model.
pub const FINETUNE_KEY: &str = "crosskd.finetune";

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Running the frozen layers over the local frames.
    Features,
    /// Optimiser steps.
    Training,
    /// Re-quantizing the fine-tuned model (calibration passes).
    Quantizing,
}

/// What the progress callback sees.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Current stage.
    pub stage: Stage,
    /// Steps (or frames, or calibration passes) done in this stage.
    pub done: usize,
    /// Steps in this stage.
    pub total: usize,
    /// Loss components of the last step (training only).
    pub losses: Vec<(String, f32)>,
    /// Time since the run started.
    pub elapsed: Duration,
}

/// Why training ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// All `iters` steps ran.
    Completed,
    /// `time_budget_s` was reached first.
    TimeBudget,
}

/// A summary of a finished run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FinetuneReport {
    /// Steps taken.
    pub iters_done: usize,
    /// Why it stopped.
    pub stopped: StopReason,
    /// Local frames (before flipping) and their objects.
    pub images: usize,
    /// Object boxes in the local set.
    pub objects: usize,
    /// Loss components of the first and the last step.
    pub first_losses: Vec<(String, f32)>,
    /// See `first_losses`.
    pub last_losses: Vec<(String, f32)>,
    /// Whether frozen features were cached (they fit `memory_mb`).
    pub cached_features: bool,
    /// Size of the feature cache (or what it would have needed), MiB.
    pub feature_cache_mb: f64,
    /// Wall time of the whole run, seconds.
    pub wall_s: f64,
}

/// The result: the new models and the run's summary.
#[derive(Debug, Clone)]
pub struct FinetuneOutcome {
    /// The fine-tuned fp32 model.
    pub fp32: ModelProto,
    /// The re-quantized model, when the deployed one was int8.
    pub int8: Option<ModelProto>,
    /// What happened.
    pub report: FinetuneReport,
}

impl FinetuneOutcome {
    /// The model to deploy: int8 when the original was int8, else fp32.
    pub fn deployable(&self) -> &ModelProto {
        self.int8.as_ref().unwrap_or(&self.fp32)
    }

    /// Writes the deployable model to `out` (atomically) and, when that is
    /// int8, the fp32 model beside it as `<stem>.fp32.onnx` (the next
    /// fine-tuning starts from it). Returns the files written.
    pub fn save(&self, out: &Path) -> Result<Vec<PathBuf>, FinetuneError> {
        let write = |p: &Path, m: &ModelProto| {
            write_model(p, m).map_err(|e| FinetuneError::Io(e.to_string()))
        };
        write(out, self.deployable())?;
        let mut files = vec![out.to_path_buf()];
        if self.int8.is_some() {
            let fp32 = fp32_sibling(out);
            write(&fp32, &self.fp32)?;
            files.push(fp32);
        }
        Ok(files)
    }
}

/// Where the fp32 source of an int8 model is looked for: `x.int8.onnx` →
/// `x.onnx`, otherwise `x.onnx` → `x.fp32.onnx`.
pub fn fp32_sibling(int8: &Path) -> PathBuf {
    let name = int8
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("model.onnx");
    let fp32 = match name.strip_suffix(".int8.onnx") {
        Some(stem) => format!("{stem}.onnx"),
        None => format!("{}.fp32.onnx", name.strip_suffix(".onnx").unwrap_or(name)),
    };
    int8.with_file_name(fp32)
}

/// Fine-tunes one deployed student.
///
/// ```no_run
/// use crosskd_sdk::finetune::{Finetuner, FinetuneConfig};
/// let cfg = FinetuneConfig::default();
/// let tuner = Finetuner::from_file("student.int8.onnx".as_ref(), None, &cfg)?;
/// let set = tuner.load_coco("local.json".as_ref(), "frames/".as_ref())?;
/// let outcome = tuner.run_flex(&set, &mut |p| println!("{:?} {}/{}", p.stage, p.done, p.total), None)?;
/// outcome.save("student.tuned.int8.onnx".as_ref())?;
/// # Ok::<(), crosskd_sdk::finetune::FinetuneError>(())
/// ```
pub struct Finetuner {
    fp32: ModelProto,
    quant: Option<QuantizeOptions>,
    meta: ModelMeta,
    configs: NetConfigs,
    cfg: FinetuneConfig,
}

fn model_err(path: &Path) -> impl Fn(String) -> FinetuneError + '_ {
    move |why| FinetuneError::Model(format!("{}: {why}", path.display()))
}

impl Finetuner {
    /// Loads the deployed model. For an int8 model the fp32 graph it was
    /// quantized from is needed too: `fp32`, or else [`fp32_sibling`].
    pub fn from_file(
        model: &Path,
        fp32: Option<&Path>,
        cfg: &FinetuneConfig,
    ) -> Result<Self, FinetuneError> {
        let deployed = read_model(model).map_err(|e| FinetuneError::Model(e.to_string()))?;
        let int8 = get_prop(&deployed, PRECISION_KEY) == Some("int8");
        if !int8 {
            return Self::from_models(deployed, None, cfg).map_err(|e| with_file(e, model));
        }
        let path = fp32
            .map(Path::to_path_buf)
            .unwrap_or_else(|| fp32_sibling(model));
        if !path.exists() {
            return Err(FinetuneError::Model(format!(
                "{} is int8; fine-tuning starts from the fp32 model it was quantized from, \
                 expected at {} (pass it with --fp32)",
                model.display(),
                path.display()
            )));
        }
        let source = read_model(&path).map_err(|e| FinetuneError::Model(e.to_string()))?;
        Self::from_models(source, Some(&deployed), cfg).map_err(|e| with_file(e, &path))
    }

    /// From the fp32 graph and, when deployed as int8, the int8 model (its
    /// quantization settings are reused).
    pub fn from_models(
        fp32: ModelProto,
        int8: Option<&ModelProto>,
        cfg: &FinetuneConfig,
    ) -> Result<Self, FinetuneError> {
        cfg.validate().map_err(FinetuneError::Config)?;
        if get_prop(&fp32, PRECISION_KEY) == Some("int8") {
            return Err(FinetuneError::Model(
                "the source model is int8: pass the fp32 model it was quantized from".into(),
            ));
        }
        let meta_json = get_prop(&fp32, crate::model::META_KEY).ok_or_else(|| {
            FinetuneError::Model("no `crosskd.meta` metadata: not a `crosskd export` model".into())
        })?;
        let meta =
            ModelMeta::from_json(meta_json).map_err(|e| FinetuneError::Model(e.to_string()))?;
        let configs = NetConfigs::from_props(|k| get_prop(&fp32, k))?;
        if configs.head.num_classes() != meta.class_names.len() {
            return Err(FinetuneError::Model(format!(
                "`{}` has {} classes but the model's metadata names {}",
                crate::metadata::HEAD_CONFIG_KEY,
                configs.head.num_classes(),
                meta.class_names.len()
            )));
        }
        let quant = int8.map(quant_options);
        Ok(Self {
            fp32,
            quant,
            meta,
            configs,
            cfg: cfg.clone(),
        })
    }

    /// The model's metadata.
    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    /// The settings in use.
    pub fn config(&self) -> &FinetuneConfig {
        &self.cfg
    }

    /// Loads a local COCO set with this model's classes.
    pub fn load_coco(&self, ann: &Path, images: &Path) -> Result<LocalSet, FinetuneError> {
        LocalSet::from_coco(ann, images, &self.meta.class_names)
    }

    /// [`run`](Self::run) on burn-flex (the default CPU backend).
    pub fn run_flex(
        &self,
        set: &LocalSet,
        progress: &mut dyn FnMut(&Progress),
        cancel: Option<&AtomicBool>,
    ) -> Result<FinetuneOutcome, FinetuneError> {
        self.run::<burn::backend::Autodiff<burn::backend::Flex>>(
            set,
            &Default::default(),
            progress,
            cancel,
        )
    }

    /// Fine-tunes on `set`. `progress` is called after every step; setting
    /// `cancel` stops the run with [`FinetuneError::Cancelled`] and no model.
    pub fn run<B: AutodiffBackend>(
        &self,
        set: &LocalSet,
        device: &B::Device,
        progress: &mut dyn FnMut(&Progress),
        cancel: Option<&AtomicBool>,
    ) -> Result<FinetuneOutcome, FinetuneError> {
        let t0 = Instant::now();
        let cfg = &self.cfg;
        if set.is_empty() {
            return Err(FinetuneError::Data("the local set is empty".into()));
        }
        let cancelled = || cancel.is_some_and(|c| c.load(Ordering::Relaxed));
        let train_neck = !cfg.freeze_neck;
        let strides = self.configs.strides();
        let num_levels = strides.len();
        let mut frozen = FrozenFeatures::new(
            &self.fp32,
            &self.meta,
            train_neck,
            self.configs.neck.in_channels.len(),
            num_levels,
        )?;
        let mut net: TrainNet<B> = self.configs.init(train_neck, device);
        weights::load(&mut net, &self.fp32, num_levels, device)?;
        let original = net.valid();

        // Every (frame, mirrored?) pair is one training item.
        let flips: &[bool] = if cfg.flip { &[false, true] } else { &[false] };
        let items: Vec<(usize, bool)> = (0..set.len())
            .flat_map(|i| flips.iter().map(move |&f| (i, f)))
            .collect();
        let prepare = |frozen: &mut FrozenFeatures,
                       (i, flip): (usize, bool)|
         -> Result<Prepared<B::InnerBackend>, FinetuneError> {
            let (chw, meta) = frozen.input(&set.samples()[i], flip, i as u64);
            let feats: Vec<Tensor<B::InnerBackend, 4>> = frozen
                .run(&chw)?
                .into_iter()
                .map(|(shape, data)| Tensor::from_data(TensorData::new(data, shape), device))
                .collect();
            let teacher = original.forward(feats.clone());
            Ok(Prepared {
                feats,
                teacher,
                meta,
            })
        };
        let first = prepare(&mut frozen, items[0])?;
        let item_bytes = first.bytes();
        let cache_mb = (item_bytes * items.len()) as f64 / (1024.0 * 1024.0);
        let cache = if cache_mb <= cfg.memory_mb as f64 {
            let mut all = vec![first];
            for (k, &item) in items.iter().enumerate().skip(1) {
                if cancelled() {
                    return Err(FinetuneError::Cancelled);
                }
                all.push(prepare(&mut frozen, item)?);
                progress(&Progress {
                    stage: Stage::Features,
                    done: k + 1,
                    total: items.len(),
                    losses: Vec::new(),
                    elapsed: t0.elapsed(),
                });
            }
            Some(all)
        } else {
            None
        };

        let mut optim = SgdConfig::new()
            .with_weight_decay(Some(WeightDecayConfig::new(cfg.weight_decay as f32)))
            .with_momentum(Some(MomentumConfig {
                momentum: cfg.momentum,
                dampening: 0.0,
                nesterov: false,
            }))
            .with_gradient_clipping(
                (cfg.grad_clip > 0.0).then_some(GradientClippingConfig::Norm(cfg.grad_clip)),
            )
            .init::<B, TrainNet<B>>();
        let mut order = Shuffler::new(items.len(), cfg.seed);
        let batch = cfg.batch_size.min(items.len());
        let budget = Duration::from_secs_f64(cfg.time_budget_s);
        let (mut first_losses, mut last_losses) = (Vec::new(), Vec::new());
        let mut stopped = StopReason::Completed;
        let mut iters_done = 0;
        for it in 0..cfg.iters {
            if cancelled() {
                return Err(FinetuneError::Cancelled);
            }
            if t0.elapsed() >= budget {
                stopped = StopReason::TimeBudget;
                break;
            }
            let picked: Vec<usize> = (0..batch).map(|_| order.next()).collect();
            let owned;
            let parts: Vec<&Prepared<B::InnerBackend>> = match &cache {
                Some(all) => picked.iter().map(|&k| &all[k]).collect(),
                None => {
                    owned = picked
                        .iter()
                        .map(|&k| prepare(&mut frozen, items[k]))
                        .collect::<Result<Vec<_>, _>>()?;
                    owned.iter().collect()
                }
            };
            let (feats, teacher, metas) = collate::<B>(&parts);
            let outputs = net.forward(feats);
            let targets = self.configs.head.targets(&strides, &outputs, &metas);
            let gt = self.configs.head.loss_from_targets(&outputs, &targets);
            let mut losses = gt.values();
            let mut total = gt.total();
            if cfg.kd_weight > 0.0 {
                for (name, l) in kd_losses(&self.configs.head, &outputs, &teacher) {
                    let l = l.mul_scalar(cfg.kd_weight);
                    losses.push((name.to_string(), l.clone().into_scalar().elem::<f32>()));
                    total = total + l;
                }
            }
            let value = total.clone().into_scalar().elem::<f32>();
            if !value.is_finite() {
                return Err(FinetuneError::NonFinite {
                    iter: it,
                    losses: losses.clone(),
                });
            }
            let grads = GradientsParams::from_grads(total.backward(), &net);
            net = optim.step(lr_at(cfg, it), net, grads);
            if it == 0 {
                first_losses = losses.clone();
            }
            iters_done = it + 1;
            progress(&Progress {
                stage: Stage::Training,
                done: iters_done,
                total: cfg.iters,
                losses: losses.clone(),
                elapsed: t0.elapsed(),
            });
            last_losses = losses;
        }

        let mut fp32 = self.fp32.clone();
        weights::store(&mut net, &mut fp32, num_levels)?;
        let report = FinetuneReport {
            iters_done,
            stopped,
            images: set.len(),
            objects: set.num_objects(),
            first_losses,
            last_losses,
            cached_features: cache.is_some(),
            feature_cache_mb: cache_mb,
            wall_s: t0.elapsed().as_secs_f64(),
        };
        set_prop(
            &mut fp32,
            FINETUNE_KEY,
            &json!({
                "iters": report.iters_done,
                "stopped": report.stopped,
                "images": report.images,
                "objects": report.objects,
                "freeze_neck": cfg.freeze_neck,
                "kd_weight": cfg.kd_weight,
                "lr": cfg.lr,
            })
            .to_string(),
        );
        let int8 = match &self.quant {
            None => None,
            Some(opts) => {
                if cancelled() {
                    return Err(FinetuneError::Cancelled);
                }
                let n = cfg.calib_images.min(set.len());
                let mut input = |i: usize| Ok(frozen.input(&set.samples()[i], false, i as u64).0);
                let mut report_calib = |done: usize, total: usize| {
                    progress(&Progress {
                        stage: Stage::Quantizing,
                        done,
                        total,
                        losses: Vec::new(),
                        elapsed: t0.elapsed(),
                    })
                };
                let (q, _) = quantize(&fp32, n, &mut input, opts, &mut report_calib)
                    .map_err(|e| FinetuneError::Model(format!("re-quantizing: {e}")))?;
                Some(q)
            }
        };
        let mut report = report;
        report.wall_s = t0.elapsed().as_secs_f64();
        Ok(FinetuneOutcome { fp32, int8, report })
    }
}

fn with_file(e: FinetuneError, path: &Path) -> FinetuneError {
    match e {
        FinetuneError::Model(why) => model_err(path)(why),
        other => other,
    }
}

/// The deployed int8 model's quantization settings (defaults where unreadable).
fn quant_options(int8: &ModelProto) -> QuantizeOptions {
    let mut opts = QuantizeOptions::default();
    let Some(v) = get_prop(int8, "crosskd.quantization")
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
    else {
        return opts;
    };
    if let Some(f) = v["format"]
        .as_str()
        .and_then(|s| s.parse::<QuantFormat>().ok())
    {
        opts.format = f;
    }
    if let Some(m) = v["method"]
        .as_str()
        .and_then(|s| s.parse::<CalibMethod>().ok())
    {
        opts.method = m;
    }
    if let Some(k) = v["keep_float_outputs"].as_bool() {
        opts.keep_float_outputs = k;
    }
    opts
}

/// Linear warm-up from 10 % of `lr`, then cosine decay to 0.
fn lr_at(cfg: &FinetuneConfig, it: usize) -> f64 {
    if it < cfg.warmup_iters {
        let f = (it + 1) as f64 / cfg.warmup_iters as f64;
        return cfg.lr * (0.1 + 0.9 * f);
    }
    let span = (cfg.iters - cfg.warmup_iters).max(1) as f64;
    let t = (it - cfg.warmup_iters) as f64 / span;
    0.5 * cfg.lr * (1.0 + (std::f64::consts::PI * t).cos())
}

/// One training item with its frozen features and the original head's outputs.
struct Prepared<B: Backend> {
    feats: Vec<Tensor<B, 4>>,
    teacher: Vec<LevelOutput<B>>,
    meta: ImageMeta,
}

impl<B: Backend> Prepared<B> {
    fn bytes(&self) -> usize {
        let n4 = |t: &Tensor<B, 4>| t.shape().num_elements();
        let feats: usize = self.feats.iter().map(n4).sum();
        let outs: usize = self
            .teacher
            .iter()
            .map(|o| n4(&o.cls_score) + n4(&o.bbox_pred) + o.centerness.as_ref().map_or(0, n4))
            .sum();
        4 * (feats + outs)
    }
}

/// Stacks items into a batch on the autodiff backend.
fn collate<B: AutodiffBackend>(
    parts: &[&Prepared<B::InnerBackend>],
) -> (Vec<Tensor<B, 4>>, Vec<LevelOutput<B>>, Vec<ImageMeta>) {
    let lift = |ts: Vec<Tensor<B::InnerBackend, 4>>| Tensor::<B, 4>::from_inner(Tensor::cat(ts, 0));
    let levels = parts[0].feats.len();
    let feats = (0..levels)
        .map(|l| lift(parts.iter().map(|p| p.feats[l].clone()).collect()))
        .collect();
    let teacher = (0..parts[0].teacher.len())
        .map(|l| LevelOutput {
            cls_score: lift(
                parts
                    .iter()
                    .map(|p| p.teacher[l].cls_score.clone())
                    .collect(),
            ),
            bbox_pred: lift(
                parts
                    .iter()
                    .map(|p| p.teacher[l].bbox_pred.clone())
                    .collect(),
            ),
            centerness: parts[0].teacher[l].centerness.as_ref().map(|_| {
                lift(
                    parts
                        .iter()
                        .filter_map(|p| p.teacher[l].centerness.clone())
                        .collect(),
                )
            }),
        })
        .collect();
    let metas = parts.iter().map(|p| p.meta.clone()).collect();
    (feats, teacher, metas)
}

/// Epoch-wise random order of the items (SplitMix64; no extra dependency).
struct Shuffler {
    order: Vec<usize>,
    pos: usize,
    state: u64,
}

impl Shuffler {
    fn new(n: usize, seed: u64) -> Self {
        let mut s = Self {
            order: (0..n).collect(),
            pos: n,
            state: seed ^ 0x9E37_79B9_7F4A_7C15,
        };
        s.reshuffle();
        s
    }

    fn rand(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn reshuffle(&mut self) {
        for i in (1..self.order.len()).rev() {
            let j = (self.rand() % (i as u64 + 1)) as usize;
            self.order.swap(i, j);
        }
        self.pos = 0;
    }

    fn next(&mut self) -> usize {
        if self.pos == self.order.len() {
            self.reshuffle();
        }
        self.pos += 1;
        self.order[self.pos - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lr_warms_up_then_decays_to_zero() {
        let cfg = FinetuneConfig {
            iters: 110,
            warmup_iters: 10,
            lr: 0.01,
            ..Default::default()
        };
        // Warm-up: 10 % + 90 % · (it+1)/10 → step 0 at 0.19·lr, step 9 at lr.
        assert!((lr_at(&cfg, 0) - 0.0019).abs() < 1e-12);
        assert!((lr_at(&cfg, 9) - 0.01).abs() < 1e-12);
        // Cosine from lr at it = 10 through lr/2 halfway (it = 60) to ~0.
        assert!((lr_at(&cfg, 10) - 0.01).abs() < 1e-12);
        assert!((lr_at(&cfg, 60) - 0.005).abs() < 1e-12);
        assert!(lr_at(&cfg, 109) < 1e-4);
    }

    #[test]
    fn shuffler_visits_every_item_once_per_epoch() {
        let mut s = Shuffler::new(7, 3);
        for _ in 0..3 {
            let mut seen: Vec<usize> = (0..7).map(|_| s.next()).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..7).collect::<Vec<_>>());
        }
    }

    #[test]
    fn fp32_sibling_names() {
        assert_eq!(
            fp32_sibling(Path::new("/m/s.int8.onnx")),
            Path::new("/m/s.onnx")
        );
        assert_eq!(fp32_sibling(Path::new("s.onnx")), Path::new("s.fp32.onnx"));
    }
}
