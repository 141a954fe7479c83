//! The training loop behind `crosskd train`: data → steps with the schedule's
//! learning rate → periodic COCO evaluation and best-AP tracking → atomic
//! checkpoints, resumable mid-epoch, Ctrl-C safe, with a progress bar, a
//! `metrics.csv` and PNG curves in the work directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context};
use burn::module::AutodiffModule;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{Optimizer, SgdConfig};
use burn::prelude::Backend;
use burn::record::Recorder;
use burn::tensor::backend::AutodiffBackend;
use indicatif::{ProgressBar, ProgressStyle};

use super::checkpoint::{self, CheckpointHeader};
use super::metrics::MetricsWriter;
use super::objective::{GtObjective, Objective};
use super::step::{train_step, StepError};
use crate::config::TrainConfig;
use crate::data::coco::{load_gt, CocoDataset};
use crate::data::dataset::DetectionDataset;
use crate::data::loader::{collate, DataLoader, LoaderConfig};
use crate::distill::Distiller;
use crate::eval::coco::CocoStats;
use crate::eval::inference::evaluate_detector;
use crate::model::backbone::weights::{load_resnet_weights, LoadOptions};
use crate::model::detector::{Detector, DetectorConfig};

/// How a run is started.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Continue from `work_dir/last_checkpoint` when present.
    pub resume: bool,
    /// Show progress bars.
    pub progress: bool,
    /// The configuration file's text, stored in checkpoints.
    pub config_text: String,
}

/// What a finished (or interrupted) run produced.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Last checkpoint written.
    pub last_checkpoint: Option<PathBuf>,
    /// Best validation stats, if evaluated.
    pub best: Option<CocoStats>,
    /// Stats of the final evaluation.
    pub last: Option<CocoStats>,
    /// Iterations completed.
    pub iters: usize,
    /// Stopped by Ctrl-C.
    pub interrupted: bool,
}

/// Set once by the Ctrl-C handler; polled between iterations.
fn interrupt_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        // A second handler registration fails (e.g. in tests); then Ctrl-C keeps its default.
        let _ = ctrlc::set_handler(move || f.store(true, Ordering::SeqCst));
        flag
    })
    .clone()
}

/// Datasets, loaders and the validation ground truth of a config.
pub struct RunData {
    /// Training batches.
    pub train: DataLoader,
    /// Validation batches (sequential).
    pub val: DataLoader,
    /// Validation ground truth for the evaluator.
    pub val_gt: CocoDataset,
}

/// Load both datasets, report what was skipped, and check the class count.
pub fn load_data(cfg: &TrainConfig) -> anyhow::Result<RunData> {
    let d = &cfg.data;
    let (train, report) = DetectionDataset::from_coco_file(&d.train_ann, &d.train_images, true)?;
    eprintln!("train: {report}");
    let val_gt = load_gt(&d.val_ann)?;
    let (val, report) = DetectionDataset::from_coco(&val_gt, &d.val_ann, &d.val_images, false)?;
    eprintln!("val: {report}");
    let n = cfg.model.head.num_classes();
    if train.num_classes() != n {
        bail!(
            "model.head.num_classes = {n} but {} declares {} categories: make them equal",
            d.train_ann.display(),
            train.num_classes()
        );
    }
    let train = DataLoader::new(
        Arc::new(train),
        d.train_pipeline.clone(),
        LoaderConfig {
            batch_size: d.batch_size,
            shuffle: true,
            aspect_grouping: d.aspect_grouping,
            drop_last: false,
            workers: d.workers,
            seed: d.seed,
        },
    )?;
    let val = DataLoader::new(
        Arc::new(val),
        d.val_pipeline.clone(),
        LoaderConfig::sequential(d.batch_size, d.workers),
    )?;
    Ok(RunData { train, val, val_gt })
}

/// SGD with momentum (dampening 0, as PyTorch) and L2 weight decay.
pub fn sgd(cfg: &TrainConfig) -> SgdConfig {
    SgdConfig::new()
        .with_momentum(Some(
            MomentumConfig::new()
                .with_momentum(cfg.schedule.momentum)
                .with_dampening(0.0),
        ))
        .with_weight_decay(Some(WeightDecayConfig::new(cfg.schedule.weight_decay)))
}

/// Build `cfg`'s detector and load its `[init]` backbone weights.
pub fn init_detector<B: Backend>(
    cfg: &TrainConfig,
    device: &B::Device,
) -> anyhow::Result<Detector<B>> {
    // Weight initialisation follows the data seed, so runs are reproducible.
    B::seed(device, cfg.data.seed);
    let mut det: Detector<B> = cfg.model.init(device)?;
    checkpoint::materialize(&det);
    if let Some(w) = &cfg.init.backbone {
        let (backbone, report) = load_resnet_weights(det.backbone, w, &LoadOptions::default())?;
        eprintln!("backbone weights: {report}");
        det.backbone = backbone;
    }
    Ok(det)
}

/// Train `cfg`'s detector on its GT losses (`crosskd train`) into `work_dir`.
pub fn train<B: AutodiffBackend>(
    cfg: &TrainConfig,
    work_dir: &Path,
    device: &B::Device,
    opts: &RunOptions,
) -> anyhow::Result<TrainSummary> {
    if cfg.distill.is_some() {
        bail!("the config has a [distill] section: run it with `crosskd distill`");
    }
    std::fs::create_dir_all(work_dir)
        .with_context(|| format!("creating {}", work_dir.display()))?;
    let det = init_detector::<B>(cfg, device)?;
    train_objective(cfg, work_dir, device, opts, &GtObjective, det)
}

/// Distil into `cfg`'s detector (`crosskd distill`): loads the frozen teacher
/// named in `[distill]`, checks the pairing before anything is trained, and
/// trains the student (plus adapters) on GT + KD losses.
pub fn distill<B: AutodiffBackend>(
    cfg: &TrainConfig,
    work_dir: &Path,
    device: &B::Device,
    opts: &RunOptions,
) -> anyhow::Result<TrainSummary> {
    let dcfg = cfg
        .distill
        .as_ref()
        .context("the config has no [distill] section: add one (mode, teacher_checkpoint) or use `crosskd train`")?;
    let teacher = match (&dcfg.teacher_checkpoint, dcfg.mode.needs_teacher()) {
        (Some(path), true) => {
            let (t, header) = checkpoint::load_detector::<B>(path, device)
                .with_context(|| "loading distill.teacher_checkpoint".to_string())?;
            eprintln!(
                "teacher: {} (iteration {}, best AP {})",
                path.display(),
                header.iter,
                header
                    .best_ap
                    .map(|a| format!("{a:.4}"))
                    .unwrap_or_else(|| "n/a".into())
            );
            Some(t)
        }
        _ => None,
    };
    let distiller = Distiller::new(teacher, &cfg.model, dcfg)?;
    std::fs::create_dir_all(work_dir)
        .with_context(|| format!("creating {}", work_dir.display()))?;
    let student = distiller.student(init_detector::<B>(cfg, device)?, device);
    train_objective(cfg, work_dir, device, opts, &distiller, student)
}

/// The training loop shared by [`train`] and [`distill`].
pub fn train_objective<B: AutodiffBackend, J: Objective<B>>(
    cfg: &TrainConfig,
    work_dir: &Path,
    device: &B::Device,
    opts: &RunOptions,
    objective: &J,
    model: J::Model,
) -> anyhow::Result<TrainSummary> {
    let data = load_data(cfg)?;
    let mut det = model;
    let mut optim = sgd(cfg).init::<B, J::Model>();
    let iters_per_epoch = data.train.num_batches();
    let total = cfg.schedule.total_iters(iters_per_epoch);
    let base_lr = cfg.schedule.scaled_base_lr(cfg.data.batch_size);
    let (mut iter, mut best_ap) = (0usize, None::<f64>);
    if opts.resume {
        if let Some(path) = checkpoint::latest(work_dir) {
            let file = checkpoint::read(&path)?;
            anyhow::ensure!(
                file.header.model == cfg.model,
                "{}: the checkpoint's model differs from the config; resume with the same config or start a new work_dir",
                path.display()
            );
            let rec =
                burn::record::BinBytesRecorder::<burn::record::FullPrecisionSettings>::default();
            det = objective
                .load(det, &file, device)
                .with_context(|| format!("resuming from {}", path.display()))?;
            if !file.optimizer.is_empty() {
                optim = optim.load_record(rec.load(file.optimizer, device)?);
            }
            iter = file.header.iter;
            best_ap = file.header.best_ap;
            eprintln!("resumed from {} at iteration {iter}", path.display());
        }
    }
    let components = objective.loss_names(&det);
    let mut metrics =
        MetricsWriter::open(work_dir, &components, opts.resume.then_some(iter as u64))?;
    let flag = interrupt_flag();
    let bar = progress_bar(opts.progress, total as u64, iter as u64);
    let header = |epoch: usize, iter: usize, best_ap: Option<f64>| CheckpointHeader {
        model: cfg.model.clone(),
        epoch,
        iter,
        best_ap,
        class_names: data.train.dataset().class_names.clone(),
        category_ids: data.train.dataset().category_ids.clone(),
        train_config: Some(opts.config_text.clone()),
    };
    let save = |name: String,
                model: &J::Model,
                optim_bytes: Vec<u8>,
                h: CheckpointHeader|
     -> anyhow::Result<PathBuf> {
        let path = work_dir.join(name);
        checkpoint::save_with_extra(
            &path,
            &h,
            objective.detector(model),
            Some(optim_bytes),
            objective.extra_bytes(model),
        )?;
        checkpoint::mark_latest(work_dir, &path)?;
        Ok(path)
    };
    let test_cfg = cfg.test_cfg();
    let mut summary = TrainSummary {
        last_checkpoint: checkpoint::latest(work_dir),
        best: None,
        last: None,
        iters: iter,
        interrupted: false,
    };
    let by_iter = cfg.schedule.by_iter();
    let mut skipped_images = 0usize;
    while iter < total {
        let epoch = iter / iters_per_epoch.max(1);
        let in_epoch = iter % iters_per_epoch.max(1);
        for idx in data.train.batch_indices(epoch).into_iter().skip(in_epoch) {
            if iter >= total {
                break;
            }
            if flag.load(Ordering::SeqCst) {
                let bytes = checkpoint::record_bytes::<B, _>(optim.to_record());
                let p = save(
                    format!("iter_{iter}.ckpt"),
                    &det,
                    bytes,
                    header(epoch, iter, best_ap),
                )?;
                bar.abandon_with_message(format!("interrupted: saved {}", p.display()));
                summary.last_checkpoint = Some(p);
                summary.interrupted = true;
                summary.iters = iter;
                return Ok(summary);
            }
            let loaded = data.train.load(epoch, &idx);
            for (p, why) in &loaded.skipped {
                skipped_images += 1;
                bar.println(format!("skipped {}: {why}", p.display()));
            }
            let lr = cfg.schedule.lr_at(iter, iters_per_epoch, base_lr);
            if !loaded.samples.is_empty() {
                let batch = collate::<B>(loaded.samples, data.train.pad_divisor(), device);
                let (d, out) = train_step(
                    det,
                    &mut optim,
                    objective,
                    &batch,
                    lr,
                    cfg.schedule.grad_clip,
                );
                det = d;
                match out {
                    Ok(out) => {
                        if iter % cfg.schedule.log_interval == 0 || iter + 1 == total {
                            metrics.log_step(epoch as u64, iter as u64, lr, &out.losses)?;
                        }
                        bar.set_message(format_losses(epoch, lr, &out.losses));
                    }
                    Err(e @ StepError::NonFinite { .. }) => {
                        bar.abandon();
                        let last = summary
                            .last_checkpoint
                            .as_ref()
                            .map(|p| format!("the last good checkpoint is {}", p.display()))
                            .unwrap_or_else(|| "no checkpoint was written yet".into());
                        bail!("iteration {iter} (epoch {epoch}): {e}; {last}");
                    }
                    Err(e) => bail!("iteration {iter}: {e}"),
                }
            }
            iter += 1;
            bar.set_position(iter as u64);
            let epoch_end = iter % iters_per_epoch.max(1) == 0;
            let done_epochs = iter / iters_per_epoch.max(1);
            let due = |interval: usize| {
                interval > 0
                    && (iter == total
                        || if by_iter {
                            iter % interval == 0
                        } else {
                            epoch_end && done_epochs % interval == 0
                        })
            };
            let mut new_best = false;
            if due(cfg.schedule.eval_interval) {
                let stats = evaluate_detector(
                    &objective.detector(&det).valid(),
                    &data.val,
                    &data.val_gt,
                    &test_cfg,
                    device,
                    false,
                )?;
                metrics.log_eval(epoch as u64, iter as u64, lr, &stats.stats)?;
                bar.println(format!(
                    "epoch {done_epochs} iter {iter}: AP {:.4} AP50 {:.4} AP75 {:.4}",
                    stats.stats[0], stats.stats[1], stats.stats[2]
                ));
                if best_ap.is_none_or(|b| stats.stats[0] > b) {
                    best_ap = Some(stats.stats[0]);
                    summary.best = Some(stats.clone());
                    new_best = true;
                }
                summary.last = Some(stats);
            }
            if due(cfg.schedule.checkpoint_interval) || new_best {
                let bytes = checkpoint::record_bytes::<B, _>(optim.to_record());
                let name = if by_iter {
                    format!("iter_{iter}.ckpt")
                } else {
                    format!("epoch_{done_epochs}.ckpt")
                };
                let h = header(done_epochs, iter, best_ap);
                if new_best {
                    checkpoint::save(
                        &work_dir.join("best.ckpt"),
                        &h,
                        objective.detector(&det),
                        None,
                    )?;
                }
                if due(cfg.schedule.checkpoint_interval) {
                    summary.last_checkpoint = Some(save(name, &det, bytes, h)?);
                }
            }
        }
    }
    bar.finish_and_clear();
    if skipped_images > 0 {
        eprintln!("{skipped_images} training images could not be read and were skipped");
    }
    summary.iters = iter;
    match super::plots::render_plots(work_dir) {
        Ok(files) => eprintln!(
            "plots: {}",
            files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(e) => eprintln!("warning: could not render plots: {e}"),
    }
    Ok(summary)
}

/// The GT loss component names of a detector (for the metrics header).
pub fn gt_loss_names(model: &DetectorConfig) -> Vec<String> {
    use crate::model::head::HeadConfig;
    let names: &[&str] = match &model.head {
        HeadConfig::Gfl(_) => &["loss_cls", "loss_bbox", "loss_dfl"],
        HeadConfig::Retinanet(_) => &["loss_cls", "loss_bbox"],
        HeadConfig::Fcos(_) | HeadConfig::Atss(_) => &["loss_cls", "loss_bbox", "loss_centerness"],
    };
    names.iter().map(|s| s.to_string()).collect()
}

fn progress_bar(show: bool, total: u64, start: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "train [{elapsed_precise}] {bar:30} {pos}/{len} it ETA {eta} | {msg}",
        )
        .expect("valid template"),
    );
    bar.set_position(start);
    bar
}

fn format_losses(epoch: usize, lr: f64, losses: &[(String, f32)]) -> String {
    let total: f32 = losses.iter().map(|(_, v)| v).sum();
    let parts: Vec<String> = losses
        .iter()
        .map(|(k, v)| format!("{} {v:.3}", k.trim_start_matches("loss_")))
        .collect();
    format!(
        "ep {epoch} lr {lr:.2e} loss {total:.3} ({})",
        parts.join(" ")
    )
}
