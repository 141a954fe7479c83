//! `crosskd distill --config CFG.toml [--mode M] [--teacher CKPT] [...]`: train
//! a student with a frozen teacher (CrossKD and the baselines it is compared with).

use std::path::PathBuf;

use anyhow::{bail, Context};
use burn::tensor::backend::AutodiffBackend;
use clap::Args;

use super::train::{placement, print_summary, TrainArgs};
use crate::backend::DeviceSpec;
use crate::config::TrainConfig;
use crate::distill::{DistillConfig, DistillMode};
use crate::train::parallel_cluster::ClusterConfig;
use crate::train::runner::{distill_on, RunOptions, TrainSummary};

/// `crosskd distill` arguments.
#[derive(Debug, Args)]
pub struct DistillArgs {
    /// Everything `crosskd train` takes.
    #[command(flatten)]
    pub train: TrainArgs,
    /// Override `distill.mode`: none, crosskd, crosskd+pkd, pkd or pred-mimic.
    #[arg(long)]
    pub mode: Option<String>,
    /// Override `distill.teacher_checkpoint`.
    #[arg(long)]
    pub teacher: Option<PathBuf>,
}

fn run_on<B: AutodiffBackend>(
    device: &B::Device,
    specs: &[DeviceSpec],
    cluster: &ClusterConfig,
    cfg: &TrainConfig,
    work_dir: &std::path::Path,
    opts: &RunOptions,
) -> anyhow::Result<TrainSummary> {
    let placement = placement::<B>(device, specs, cluster.clone())?;
    distill_on::<B>(cfg, work_dir, &placement, opts)
}

/// Run `crosskd distill`.
pub fn run(args: DistillArgs) -> anyhow::Result<()> {
    let t = &args.train;
    let text = std::fs::read_to_string(&t.config)
        .with_context(|| format!("reading {}", t.config.display()))?;
    let mut cfg = TrainConfig::from_toml(&text, &t.config)?;
    let mut dcfg = cfg
        .distill
        .clone()
        .unwrap_or_else(|| DistillConfig::new(DistillMode::None, None));
    if let Some(m) = &args.mode {
        dcfg.mode = match DistillMode::parse(m) {
            Some(m) => m,
            None => bail!(
                "--mode {m}: expected one of {}",
                DistillMode::ALL.map(|m| m.name()).join(", ")
            ),
        };
    } else if cfg.distill.is_none() {
        bail!(
            "{}: no [distill] section; add one or pass --mode and --teacher",
            t.config.display()
        );
    }
    if let Some(p) = &args.teacher {
        dcfg.teacher_checkpoint = Some(p.clone());
    }
    cfg.distill = Some(dcfg);
    t.apply_overrides(&mut cfg);
    let (specs, cluster) = t.placement_specs()?;
    crate::backend::set_cpu_threads(t.threads);
    let work_dir = t
        .work_dir
        .clone()
        .unwrap_or_else(|| cfg.work_dir_for(&t.config));
    let opts = RunOptions {
        resume: t.resume,
        progress: !t.quiet,
        config_text: toml::to_string(&cfg).unwrap_or(text),
    };
    let summary =
        crate::with_autodiff_backend!(specs[0], run_on(&specs, &cluster, &cfg, &work_dir, &opts))?;
    print_summary(&summary, &work_dir);
    Ok(())
}
