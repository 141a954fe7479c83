//! `crosskd train --config CFG.toml [--resume] [--device D] [--work-dir DIR]`.

use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::backend::AutodiffBackend;
use clap::Args;

use crate::backend::DeviceSpec;
use crate::config::TrainConfig;
use crate::train::runner::{train, RunOptions, TrainSummary};

/// `crosskd train` arguments.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// TOML configuration (see `trainer/configs/`).
    #[arg(long)]
    pub config: PathBuf,
    /// Continue from the work directory's last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Device: flex (default), ndarray or cuda:N.
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Override the configured work directory.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// CPU threads for the tensor backend (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// No progress bars (logs only).
    #[arg(long)]
    pub quiet: bool,
    /// Override `data.seed` (data order, augmentation and weight initialisation).
    #[arg(long)]
    pub seed: Option<u64>,
}

impl TrainArgs {
    /// Apply the command-line overrides to a parsed config.
    pub fn apply_overrides(&self, cfg: &mut TrainConfig) {
        if let Some(seed) = self.seed {
            cfg.data.seed = seed;
        }
    }
}

fn run_on<B: AutodiffBackend>(
    device: &B::Device,
    cfg: &TrainConfig,
    work_dir: &std::path::Path,
    opts: &RunOptions,
) -> anyhow::Result<TrainSummary> {
    train::<B>(cfg, work_dir, device, opts)
}

/// Run `crosskd train`.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let mut cfg = TrainConfig::from_toml(&text, &args.config)?;
    args.apply_overrides(&mut cfg);
    let device: DeviceSpec = args.device.parse()?;
    device.check_available()?;
    crate::backend::set_cpu_threads(args.threads);
    let work_dir = args
        .work_dir
        .clone()
        .unwrap_or_else(|| cfg.work_dir_for(&args.config));
    let opts = RunOptions {
        resume: args.resume,
        progress: !args.quiet,
        config_text: text,
    };
    let summary = crate::with_autodiff_backend!(device, run_on(&cfg, &work_dir, &opts))?;
    print_summary(&summary, &work_dir);
    Ok(())
}

/// Print where the results are.
pub fn print_summary(s: &TrainSummary, work_dir: &std::path::Path) {
    if s.interrupted {
        println!(
            "interrupted after {} iterations; resume with --resume",
            s.iters
        );
    }
    if let Some(best) = &s.best {
        println!("best AP {:.4} (AP50 {:.4})", best.stats[0], best.stats[1]);
    }
    if let Some(p) = &s.last_checkpoint {
        println!("checkpoint: {}", p.display());
    }
    println!("work dir: {}", work_dir.display());
}
