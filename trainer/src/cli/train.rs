//! `crosskd train --config CFG.toml [--resume] [--devices D0,D1,..] [--work-dir DIR]
//! [--nodes N --node-rank R --orchestrator HOST:PORT --node-address HOST:PORT]`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use burn::prelude::DeviceOps as _;
use burn::tensor::backend::{AutodiffBackend, Backend, DeviceId, DeviceOps};
use clap::Args;

use crate::backend::DeviceSpec;
use crate::config::TrainConfig;
use crate::train::parallel_cluster::{ClusterConfig, Placement};
use crate::train::runner::{train_on, RunOptions, TrainSummary};

/// `crosskd train` arguments.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// TOML configuration (see `trainer/configs/`).
    #[arg(long)]
    pub config: PathBuf,
    /// Continue from the work directory's last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Device(s): flex (default), ndarray or cuda:N; a comma-separated list
    /// (`cuda:0,cuda:1`) trains data-parallel, `data.batch_size` images per device.
    #[arg(long, visible_alias = "devices", default_value = "flex")]
    pub device: String,
    /// Number of nodes (machines) in a multi-node run (see docs/multi_gpu.md).
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// This node's rank in 0..nodes; node 0 logs, evaluates and checkpoints.
    #[arg(long, default_value_t = 0)]
    pub node_rank: usize,
    /// HOST:PORT of burn-collective's orchestrator (multi-node runs; same on every node).
    #[arg(long)]
    pub orchestrator: Option<String>,
    /// HOST:PORT at which the other nodes reach this node (multi-node runs).
    #[arg(long)]
    pub node_address: Option<String>,
    /// Node 0 also hosts the orchestrator, on the `--orchestrator` port.
    #[arg(long)]
    pub serve_orchestrator: bool,
    /// Seconds to wait for every device and node to join before giving up.
    #[arg(long, default_value_t = 120)]
    pub join_timeout: u64,
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

impl TrainArgs {
    /// Parse `--devices` and the multi-node flags; the first device picks the backend.
    pub fn placement_specs(&self) -> anyhow::Result<(Vec<DeviceSpec>, ClusterConfig)> {
        let specs = DeviceSpec::parse_list(&self.device)?;
        for s in &specs {
            s.check_available()?;
        }
        let kind = |s: &DeviceSpec| std::mem::discriminant(s);
        if specs.iter().any(|s| kind(s) != kind(&specs[0])) {
            bail!(
                "--devices {}: all devices must use one backend (e.g. `cuda:0,cuda:1` or `flex,flex`)",
                self.device
            );
        }
        let cluster = ClusterConfig {
            nodes: self.nodes,
            node_rank: self.node_rank,
            orchestrator: self.orchestrator.clone(),
            node_address: self.node_address.clone(),
            serve_orchestrator: self.serve_orchestrator,
            join_timeout: Duration::from_secs(self.join_timeout.max(1)),
        };
        cluster.validate()?;
        Ok((specs, cluster))
    }
}

/// The devices named by `specs` for backend `B`, whose first device is `first`;
/// a CUDA index this machine does not have is an error, not a crash.
pub fn placement<B: Backend>(
    first: &B::Device,
    specs: &[DeviceSpec],
    cluster: ClusterConfig,
) -> anyhow::Result<Placement<B>> {
    let type_id = first.id().type_id;
    let mut devices = Vec::with_capacity(specs.len());
    for s in specs {
        devices.push(match s {
            DeviceSpec::Cuda(i) => {
                let count = std::panic::catch_unwind(|| B::device_count(type_id)).map_err(|_| {
                    anyhow::anyhow!("{s}: no CUDA device could be opened (is the NVIDIA driver installed?)")
                })?;
                if *i >= count {
                    bail!(
                        "--devices names {s} but this machine has {count} CUDA device(s) (cuda:0..cuda:{})",
                        count.saturating_sub(1)
                    );
                }
                B::Device::from_id(DeviceId {
                    type_id,
                    index_id: *i as u16,
                })
            }
            // CPU backends have one device: several replicas share it (threads).
            _ => first.clone(),
        });
    }
    Ok(Placement { devices, cluster })
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
    train_on::<B>(cfg, work_dir, &placement, opts)
}

/// Run `crosskd train`.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let mut cfg = TrainConfig::from_toml(&text, &args.config)?;
    args.apply_overrides(&mut cfg);
    let (specs, cluster) = args.placement_specs()?;
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
    let summary =
        crate::with_autodiff_backend!(specs[0], run_on(&specs, &cluster, &cfg, &work_dir, &opts))?;
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
