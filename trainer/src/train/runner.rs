//! The training loop behind `crosskd train`: data → steps with the schedule's
//! learning rate → periodic COCO evaluation and best-AP tracking → atomic
//! checkpoints, resumable mid-epoch, Ctrl-C safe, with a progress bar, a
//! `metrics.csv` and PNG curves in the work directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context};
use burn::module::{AutodiffModule, Module};
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
#[cfg(feature = "collective")]
use super::parallel::{parallel_step, ParallelOutcome, ReplicaGroup, ReplicaSpec, SgdRecord};
use super::parallel_cluster::Placement;
use super::step::{train_step, StepError, StepOutput};
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

/// Load both datasets, report what was skipped, and check the class count and
/// that validation declares training's categories.
pub fn load_data(cfg: &TrainConfig) -> anyhow::Result<RunData> {
    let d = &cfg.data;
    let (train, report) = DetectionDataset::from_coco_file(&d.train_ann, &d.train_images, true)?;
    eprintln!("train: {report}");
    let val_gt = load_gt(&d.val_ann)?;
    let (val, report) = DetectionDataset::from_coco(&val_gt, &d.val_ann, &d.val_images, false)?;
    eprintln!("val: {report}");
    // Evaluation turns model labels (training's categories) into val category
    // ids: with other categories, AP would silently score the wrong classes.
    train.check_same_categories(&d.train_ann, &val, &d.val_ann)?;
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
    train_on(cfg, work_dir, &Placement::<B>::single(device.clone()), opts)
}

/// [`train`] data-parallel over `placement`'s devices (and nodes).
///
/// ```no_run
/// # use std::path::Path;
/// use crosskd_trainer::backend::{Flex, FlexAutodiff};
/// use crosskd_trainer::train::parallel_cluster::{ClusterConfig, Placement};
/// use crosskd_trainer::train::runner::{train_on, RunOptions};
/// # let cfg: crosskd_trainer::config::TrainConfig = todo!();
/// // Two replicas: each step sees 2 × data.batch_size images.
/// let placement = Placement::<FlexAutodiff> {
///     devices: vec![Default::default(), Default::default()],
///     cluster: ClusterConfig::default(),
/// };
/// train_on(&cfg, Path::new("work"), &placement, &RunOptions::default())?;
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn train_on<B: AutodiffBackend>(
    cfg: &TrainConfig,
    work_dir: &Path,
    placement: &Placement<B>,
    opts: &RunOptions,
) -> anyhow::Result<TrainSummary> {
    if cfg.distill.is_some() {
        bail!("the config has a [distill] section: run it with `crosskd distill`");
    }
    std::fs::create_dir_all(work_dir)
        .with_context(|| format!("creating {}", work_dir.display()))?;
    let det = init_detector::<B>(cfg, &placement.devices[0])?;
    let objectives = vec![GtObjective; placement.devices.len()];
    train_objective_on(cfg, work_dir, placement, opts, objectives, det)
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
    distill_on(cfg, work_dir, &Placement::<B>::single(device.clone()), opts)
}

/// [`distill`] data-parallel over `placement`'s devices (and nodes); every
/// replica holds its own copy of the frozen teacher on its device.
pub fn distill_on<B: AutodiffBackend>(
    cfg: &TrainConfig,
    work_dir: &Path,
    placement: &Placement<B>,
    opts: &RunOptions,
) -> anyhow::Result<TrainSummary> {
    let device = &placement.devices[0];
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
    // One distiller per replica, its teacher forked to the replica's device.
    let distillers = placement
        .devices
        .iter()
        .map(|d| Distiller::new(teacher.clone().map(|t| t.fork(d)), &cfg.model, dcfg))
        .collect::<Result<Vec<_>, _>>()?;
    std::fs::create_dir_all(work_dir)
        .with_context(|| format!("creating {}", work_dir.display()))?;
    let student = distillers[0].student(init_detector::<B>(cfg, device)?, device);
    train_objective_on(cfg, work_dir, placement, opts, distillers, student)
}

/// Builds this node's other replicas once the main replica's state is known
/// (after a resume): `(model, optimiser state, iteration)`.
#[cfg(feature = "collective")]
type GroupFactory<'a, B, M> =
    Box<dyn FnOnce(&M, Option<SgdRecord<B, M>>, usize) -> anyhow::Result<ReplicaGroup> + 'a>;

/// [`train_objective`] over several devices and nodes: `objectives[i]`
/// belongs to `placement.devices[i]` (same objective, its tensors on that
/// device); `model` lives on the first device.
pub fn train_objective_on<B, J>(
    cfg: &TrainConfig,
    work_dir: &Path,
    placement: &Placement<B>,
    opts: &RunOptions,
    objectives: Vec<J>,
    model: J::Model,
) -> anyhow::Result<TrainSummary>
where
    B: AutodiffBackend,
    J: Objective<B> + Send + 'static,
    J::Model: Send + 'static,
{
    anyhow::ensure!(
        !placement.devices.is_empty() && objectives.len() == placement.devices.len(),
        "one objective per device is needed ({} devices, {} objectives)",
        placement.devices.len(),
        objectives.len()
    );
    placement.cluster.validate()?;
    let world = placement.world();
    let mut objectives = objectives.into_iter();
    let main = objectives.next().expect("checked non-empty");
    if world.size() == 1 {
        return run_loop(cfg, work_dir, placement, opts, &main, model, Parallel::None);
    }
    #[cfg(not(feature = "collective"))]
    return {
        let _ = (main, objectives, model);
        Err(anyhow::anyhow!(
            "{} replicas requested but this build has no multi-device support: rebuild crosskd with the `collective` feature (on by default)",
            world.size()
        ))
    };
    #[cfg(feature = "collective")]
    return {
        if placement.cluster.serve_orchestrator {
            super::parallel_cluster::collective::serve_orchestrator(
                placement.cluster.orchestrator_port()?,
            )?;
        }
        let replicas: Vec<_> = placement.devices[1..]
            .iter()
            .zip(objectives)
            .enumerate()
            .map(|(i, (device, objective))| ReplicaSpec {
                local: i + 1,
                device: device.clone(),
                objective,
            })
            .collect();
        let cluster = placement.cluster.clone();
        let sgd_cfg = sgd(cfg);
        let (pad, clip) = (cfg.data.train_pipeline.pad_divisor, cfg.schedule.grad_clip);
        let factory: GroupFactory<'_, B, J::Model> = Box::new(move |model, record, iter| {
            ReplicaGroup::spawn::<B, J>(
                world, &cluster, replicas, model, &sgd_cfg, record, iter, pad, clip,
            )
        });
        run_loop(
            cfg,
            work_dir,
            placement,
            opts,
            &main,
            model,
            Parallel::Replicas(factory),
        )
    };
}

/// How [`run_loop`] steps: alone, or in lock-step with other replicas.
enum Parallel<'a, B: AutodiffBackend, M: AutodiffModule<B>> {
    None,
    #[cfg(feature = "collective")]
    Replicas(GroupFactory<'a, B, M>),
    #[allow(dead_code)]
    _Marker(std::marker::PhantomData<(&'a (), B, M)>),
}

/// What one iteration's step did, whichever way it ran.
enum Stepped {
    Applied(StepOutput),
    Skipped,
    Stopped,
}

/// The training loop shared by [`train`] and [`distill`] (one device).
pub fn train_objective<B: AutodiffBackend, J: Objective<B>>(
    cfg: &TrainConfig,
    work_dir: &Path,
    device: &B::Device,
    opts: &RunOptions,
    objective: &J,
    model: J::Model,
) -> anyhow::Result<TrainSummary> {
    let placement = Placement::<B>::single(device.clone());
    run_loop(
        cfg,
        work_dir,
        &placement,
        opts,
        objective,
        model,
        Parallel::None,
    )
}

/// The loop itself. With several replicas, this thread runs this node's
/// first one; only node 0 logs metrics, evaluates and writes checkpoints.
fn run_loop<B: AutodiffBackend, J: Objective<B>>(
    cfg: &TrainConfig,
    work_dir: &Path,
    placement: &Placement<B>,
    opts: &RunOptions,
    objective: &J,
    model: J::Model,
    parallel: Parallel<'_, B, J::Model>,
) -> anyhow::Result<TrainSummary> {
    let device = &placement.devices[0];
    let world = placement.world();
    let replicas = world.size();
    let is_main = world.is_main_node();
    let data = load_data(cfg)?;
    let mut det = model;
    let mut optim = sgd(cfg).init::<B, J::Model>();
    let num_batches = data.train.num_batches();
    // Each iteration consumes one batch per replica (a DistributedSampler-like
    // split of the epoch's batches), so an epoch has 1/replicas the iterations.
    let iters_per_epoch = num_batches.div_ceil(replicas);
    let total = cfg.schedule.total_iters(iters_per_epoch);
    // MMDet semantics: data.batch_size is images per replica; the lr auto-scales
    // with the effective batch (when schedule.auto_scale_lr_base_batch is set).
    let base_lr = cfg.schedule.scaled_base_lr(cfg.data.batch_size * replicas);
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
    #[cfg(feature = "collective")]
    let group = match parallel {
        Parallel::Replicas(factory) => {
            use super::parallel::join_run;
            use super::parallel_cluster::collective;
            let record = (world.local > 1).then(|| optim.to_record());
            let group = factory(&det, record, iter)?;
            let config = collective::config(&placement.cluster, world)?;
            collective::register::<B::InnerBackend>(
                world.global_rank(0),
                device.clone(),
                config,
                &placement.cluster,
            )?;
            det = join_run::<B, J::Model>(world.global_rank(0), world, det, iter, device)?;
            group.collect()?;
            if replicas > 1 {
                eprintln!(
                    "data-parallel: {replicas} replicas ({} node(s) x {} device(s)), {} images per step, base lr {base_lr}",
                    world.nodes,
                    world.local,
                    replicas * cfg.data.batch_size
                );
            }
            Some(group)
        }
        _ => None,
    };
    #[cfg(not(feature = "collective"))]
    let _ = parallel;
    let components = objective.loss_names(&det);
    // Only node 0 writes the work directory (metrics, checkpoints, plots).
    let mut metrics = if is_main {
        Some(MetricsWriter::open(
            work_dir,
            &components,
            opts.resume.then_some(iter as u64),
        )?)
    } else {
        None
    };
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
        let batches = data.train.batch_indices(epoch);
        for step in in_epoch..iters_per_epoch {
            if iter >= total {
                break;
            }
            let stop = flag.load(Ordering::SeqCst);
            // Alone, stop right here; replicas first agree on it in their step.
            if stop && replicas == 1 {
                let p = save(
                    format!("iter_{iter}.ckpt"),
                    &det,
                    checkpoint::record_bytes::<B, _>(optim.to_record()),
                    header(epoch, iter, best_ap),
                )?;
                bar.abandon_with_message(format!("interrupted: saved {}", p.display()));
                summary.last_checkpoint = Some(p);
                summary.interrupted = true;
                summary.iters = iter;
                return Ok(summary);
            }
            // Local replica i takes the epoch's batch (step × replicas + rank),
            // wrapping round at the end of the epoch as a distributed sampler pads.
            let mut local_samples = Vec::with_capacity(world.local);
            for i in 0..world.local {
                let idx = &batches[(step * replicas + world.global_rank(i)) % batches.len()];
                let loaded = data.train.load(epoch, idx);
                for (p, why) in &loaded.skipped {
                    skipped_images += 1;
                    bar.println(format!("skipped {}: {why}", p.display()));
                }
                local_samples.push(loaded.samples);
            }
            let lr = cfg.schedule.lr_at(iter, iters_per_epoch, base_lr);
            let stepped = if replicas == 1 {
                let samples = local_samples.pop().expect("one replica");
                if samples.is_empty() {
                    Stepped::Skipped
                } else {
                    let batch = collate::<B>(samples, data.train.pad_divisor(), device);
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
                        Ok(out) => Stepped::Applied(out),
                        Err(e @ StepError::NonFinite { .. }) => {
                            bar.abandon();
                            bail!(
                                "iteration {iter} (epoch {epoch}): {e}; {}",
                                last_good(&summary)
                            );
                        }
                        Err(e) => bail!("iteration {iter}: {e}"),
                    }
                }
            } else {
                #[cfg(feature = "collective")]
                let stepped = {
                    let group = group.as_ref().expect("replicas > 1 run with a group");
                    let mine = local_samples.remove(0);
                    group.dispatch(local_samples, lr, stop)?;
                    let (d, outcome) = parallel_step::<B, _, J>(
                        world.global_rank(0),
                        replicas,
                        det,
                        &mut optim,
                        objective,
                        mine,
                        data.train.pad_divisor(),
                        device,
                        lr,
                        cfg.schedule.grad_clip,
                        stop,
                    )
                    .with_context(|| format!("iteration {iter}"))?;
                    det = d;
                    let others = group.collect()?;
                    match outcome {
                        ParallelOutcome::Applied(out) => Stepped::Applied(out),
                        ParallelOutcome::Skipped => Stepped::Skipped,
                        ParallelOutcome::Stopped => Stepped::Stopped,
                        ParallelOutcome::Failed(e) => {
                            bar.abandon();
                            bail!(
                                "iteration {iter} (epoch {epoch}): {e}; {}",
                                last_good(&summary)
                            );
                        }
                        ParallelOutcome::BadInput { own } => {
                            let mut why: Vec<String> = own
                                .map(|m| format!("rank {}: {m}", world.global_rank(0)))
                                .into_iter()
                                .chain(others)
                                .collect();
                            if why.is_empty() {
                                why.push("a batch on another node does not fit the model (see that node's log)".into());
                            }
                            bail!("iteration {iter}: {}", why.join("; "));
                        }
                    }
                };
                #[cfg(not(feature = "collective"))]
                let stepped: Stepped = unreachable!(
                    "train_objective_on rejects several replicas without `collective`"
                );
                stepped
            };
            match stepped {
                Stepped::Applied(out) => {
                    if let Some(m) = metrics.as_mut() {
                        if iter % cfg.schedule.log_interval == 0 || iter + 1 == total {
                            m.log_step(epoch as u64, iter as u64, lr, &out.losses)?;
                        }
                    }
                    bar.set_message(format_losses(epoch, lr, &out.losses));
                }
                Stepped::Skipped => {}
                Stepped::Stopped => {
                    if is_main {
                        let p = save(
                            format!("iter_{iter}.ckpt"),
                            &det,
                            checkpoint::record_bytes::<B, _>(optim.to_record()),
                            header(epoch, iter, best_ap),
                        )?;
                        bar.abandon_with_message(format!("interrupted: saved {}", p.display()));
                        summary.last_checkpoint = Some(p);
                    } else {
                        bar.abandon_with_message("interrupted (node 0 saves the checkpoint)");
                    }
                    summary.interrupted = true;
                    summary.iters = iter;
                    #[cfg(feature = "collective")]
                    leave::<B, J::Model>(group, world, &det, device)?;
                    return Ok(summary);
                }
            }
            iter += 1;
            bar.set_position(iter as u64);
            if !is_main {
                continue;
            }
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
                let eval = evaluate_detector(
                    &objective.detector(&det).valid(),
                    &data.val,
                    &data.val_gt,
                    &test_cfg,
                    device,
                    false,
                )?;
                let note = eval.note().map(|n| format!(" ({n})")).unwrap_or_default();
                let stats = eval.stats;
                if let Some(m) = metrics.as_mut() {
                    m.log_eval(epoch as u64, iter as u64, lr, &stats.stats)?;
                }
                bar.println(format!(
                    "epoch {done_epochs} iter {iter}: AP {:.4} AP50 {:.4} AP75 {:.4}{note}",
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
    #[cfg(feature = "collective")]
    leave::<B, J::Model>(group, world, &det, device)?;
    bar.finish_and_clear();
    if skipped_images > 0 {
        eprintln!("{skipped_images} training images could not be read and were skipped");
    }
    summary.iters = iter;
    if !is_main {
        return Ok(summary);
    }
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

/// The end of a NaN message: where the last good state is.
fn last_good(summary: &TrainSummary) -> String {
    summary
        .last_checkpoint
        .as_ref()
        .map(|p| format!("the last good checkpoint is {}", p.display()))
        .unwrap_or_else(|| "no checkpoint was written yet".into())
}

/// Close this node's replica threads and leave the collective.
#[cfg(feature = "collective")]
fn leave<B: AutodiffBackend, M: AutodiffModule<B>>(
    group: Option<ReplicaGroup>,
    world: super::parallel_cluster::World,
    model: &M,
    device: &B::Device,
) -> anyhow::Result<()> {
    let Some(mut g) = group else {
        return Ok(());
    };
    g.close();
    let rank = world.global_rank(0);
    let digest = super::parallel::verify_in_sync::<B, M>(rank, world.size(), model, device);
    g.shutdown();
    super::parallel_cluster::collective::finish::<B::InnerBackend>(rank);
    eprintln!(
        "replicas in sync: rank {rank} weights fingerprint {}",
        digest?
    );
    Ok(())
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
