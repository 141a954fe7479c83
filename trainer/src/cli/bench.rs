//! `crosskd bench`: performance measurements.

use clap::{Args, Subcommand, ValueEnum};
use crosskd_sdk::HeadKind;

use crate::backend::{DeviceSpec, FlexAutodiff};
use crate::bench::train_step::{run_train_step_bench, TrainStepBench, TrainStepReport};
use crate::distill::DistillMode;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Forward and forward+backward time of one training step.
    TrainStep(TrainStepArgs),
    /// Data loader throughput (decode + resize + flip + normalise) at several worker counts.
    Loader(LoaderArgs),
}

/// `crosskd bench loader` arguments.
#[derive(Debug, Args)]
pub struct LoaderArgs {
    /// COCO annotation file.
    #[arg(long)]
    pub ann: std::path::PathBuf,
    /// Image folder.
    #[arg(long)]
    pub images: std::path::PathBuf,
    /// Long edge of the training resize (short edge = 3/5 of it, as 1333×800).
    #[arg(long, default_value_t = 640)]
    pub size: usize,
    /// Images to load per measurement.
    #[arg(long, default_value_t = 200)]
    pub count: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Comma-separated worker counts.
    #[arg(long, default_value = "1,2")]
    pub workers: String,
}

/// Detector family on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DetectorArg {
    /// GFL.
    Gfl,
    /// RetinaNet.
    Retinanet,
    /// FCOS.
    Fcos,
    /// ATSS.
    Atss,
}

impl From<DetectorArg> for HeadKind {
    fn from(d: DetectorArg) -> Self {
        match d {
            DetectorArg::Gfl => HeadKind::Gfl,
            DetectorArg::Retinanet => HeadKind::RetinaNet,
            DetectorArg::Fcos => HeadKind::Fcos,
            DetectorArg::Atss => HeadKind::Atss,
        }
    }
}

/// `crosskd bench train-step` arguments.
#[derive(Debug, Args)]
pub struct TrainStepArgs {
    /// Detector family.
    #[arg(long, value_enum, default_value = "gfl")]
    pub detector: DetectorArg,
    /// Backbone: r18, r34, r50 or r101.
    #[arg(long, default_value = "r18")]
    pub backbone: String,
    /// Backbone width multiplier.
    #[arg(long, default_value_t = 1.0)]
    pub width: f32,
    /// Square input size in pixels.
    #[arg(long, default_value_t = 320)]
    pub size: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 2)]
    pub batch: usize,
    /// Number of classes.
    #[arg(long, default_value_t = 80)]
    pub num_classes: usize,
    /// Warm-up iterations (not timed).
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Timed iterations (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    /// Device: flex, ndarray or cuda:N.
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// CPU threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Distillation modes to time against the student-only step, comma-separated
    /// (none, crosskd, crosskd+pkd, pkd, pred-mimic).
    #[arg(long, default_value = "none")]
    pub mode: String,
    /// Teacher backbone for the distillation modes.
    #[arg(long, default_value = "r50")]
    pub teacher: String,
}

fn parse_depth(s: &str) -> anyhow::Result<usize> {
    let d = s.trim_start_matches(['r', 'R']).parse::<usize>().ok();
    match d {
        Some(d @ (18 | 34 | 50 | 101)) => Ok(d),
        _ => anyhow::bail!("--backbone {s}: expected r18, r34, r50 or r101"),
    }
}

/// Run a bench verb.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Loader(a) => {
            let workers: Vec<usize> = a
                .workers
                .split(',')
                .map(|w| w.trim().parse())
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("--workers {}: {e}", a.workers))?;
            let scale = (a.size, a.size * 3 / 5);
            let rows = crate::bench::loader::run_loader_bench(
                &a.ann, &a.images, scale, a.batch, a.count, &workers,
            )?;
            println!("{:>8} {:>8} {:>10}", "workers", "images", "images/s");
            for r in rows {
                println!("{:>8} {:>8} {:>10.1}", r.workers, r.images, r.images_per_s);
            }
            Ok(())
        }
        BenchCommand::TrainStep(a) => {
            let device: DeviceSpec = a.device.parse()?;
            device.check_available()?;
            crate::backend::set_cpu_threads(a.threads);
            let spec = TrainStepBench {
                kind: a.detector.into(),
                depth: parse_depth(&a.backbone)?,
                width_mult: a.width,
                size: a.size,
                batch: a.batch,
                num_classes: a.num_classes,
                warmup: a.warmup,
                iters: a.iters.max(1),
                seed: 0,
                modes: a
                    .mode
                    .split(',')
                    .map(|m| {
                        DistillMode::parse(m.trim()).ok_or_else(|| {
                            anyhow::anyhow!(
                                "--mode {m}: expected one of {}",
                                DistillMode::ALL.map(|m| m.name()).join(", ")
                            )
                        })
                    })
                    .collect::<anyhow::Result<_>>()?,
                teacher_depth: parse_depth(&a.teacher)?,
            };
            let report = match device {
                DeviceSpec::Flex => {
                    run_train_step_bench::<FlexAutodiff>(&spec, &Default::default())?
                }
                DeviceSpec::NdArray => run_train_step_bench::<
                    burn::backend::Autodiff<crate::backend::NdArray>,
                >(&spec, &Default::default())?,
                #[cfg(feature = "cuda")]
                DeviceSpec::Cuda(i) => run_train_step_bench::<
                    burn::backend::Autodiff<crate::backend::Cuda>,
                >(
                    &spec, &burn::backend::cuda::CudaDevice::new(i)
                )?,
                #[cfg(not(feature = "cuda"))]
                DeviceSpec::Cuda(_) => {
                    unreachable!("check_available rejects CUDA without the feature")
                }
            };
            print_report(&report, a.json)
        }
    }
}

fn print_report(r: &TrainStepReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
        return Ok(());
    }
    println!(
        "{} R{} {}x{} batch {} on {}",
        r.detector, r.depth, r.size, r.size, r.batch, r.backend
    );
    println!("  {:<34} {:>10} {:>10}", "", "median ms", "p90 ms");
    for (name, (m, p)) in [
        ("forward", r.forward_ms),
        ("forward + backward (sum² loss)", r.forward_backward_ms),
        ("train step (detector loss)", r.train_step_ms),
    ] {
        println!("  {name:<34} {m:>10.1} {p:>10.1}");
    }
    for (mode, (m, p), ratio) in &r.distill_ms {
        let name = format!("distill step ({mode})");
        println!("  {name:<34} {m:>10.1} {p:>10.1}   {ratio:.2}x the student step");
    }
    Ok(())
}
