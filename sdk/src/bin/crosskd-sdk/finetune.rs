//! `crosskd-sdk finetune`: adapt the deployed student to a local labelled set
//! on this board, with a progress bar; Ctrl-C cancels and leaves every file as
//! it was.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};

use crosskd_sdk::finetune::{Finetuner, Progress, Stage};
use crosskd_sdk::{DeviceConfig, SdkError};

#[derive(clap::Args)]
pub struct FinetuneArgs {
    /// The deployed model (fp32 or int8 .onnx from `crosskd export` / `quantize`).
    #[arg(long)]
    model: PathBuf,
    /// The fp32 model an int8 `--model` was quantized from (default: beside it,
    /// `x.int8.onnx` → `x.onnx`).
    #[arg(long)]
    fp32: Option<PathBuf>,
    /// Local labelled set (COCO instances JSON; categories matched by name).
    #[arg(long)]
    data: PathBuf,
    /// Folder of the local set's images.
    #[arg(long)]
    images: PathBuf,
    /// Board settings; its `[finetune]` section sets steps, budget and memory cap.
    #[arg(long)]
    config: PathBuf,
    /// The new model (int8 when `--model` is int8, with its fp32 beside it).
    #[arg(long)]
    out: PathBuf,
    /// Override finetune.iters.
    #[arg(long)]
    iters: Option<usize>,
    /// burn CPU backend: flex (default, fast) or ndarray (reference).
    #[arg(long, default_value = "flex")]
    device: String,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(a: FinetuneArgs) -> Result<ExitCode, SdkError> {
    let mut cfg = DeviceConfig::from_file(&a.config)?;
    if let Some(n) = a.iters {
        cfg.finetune.iters = n;
    }
    let tuner = Finetuner::from_file(&a.model, a.fp32.as_deref(), &cfg.finetune)?;
    let set = tuner.load_coco(&a.data, &a.images)?;
    eprintln!(
        "fine-tuning {} on {} images ({} objects), {} steps, budget {} s",
        a.model.display(),
        set.len(),
        set.num_objects(),
        cfg.finetune.iters,
        cfg.finetune.time_budget_s
    );
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        // Best effort: without a handler Ctrl-C still kills the process, and
        // nothing has been written before the run finishes.
        let _ = ctrlc::set_handler(move || cancel.store(true, Ordering::Relaxed));
    }
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix:>9} [{bar:30}] {pos}/{len} {elapsed}<{eta} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let mut on_progress = |p: &Progress| {
        let prefix = match p.stage {
            Stage::Features => "features",
            Stage::Training => "training",
            Stage::Quantizing => "int8",
        };
        bar.set_prefix(prefix);
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        if !p.losses.is_empty() {
            let total: f32 = p.losses.iter().map(|(_, v)| v).sum();
            bar.set_message(format!("loss {total:.4}"));
        }
    };
    let outcome = match a.device.as_str() {
        "flex" => tuner.run_flex(&set, &mut on_progress, Some(&cancel))?,
        "ndarray" => tuner.run::<burn::backend::Autodiff<burn::backend::NdArray>>(
            &set,
            &Default::default(),
            &mut on_progress,
            Some(&cancel),
        )?,
        other => {
            return Err(SdkError::config(
                "--device",
                format!("unknown device `{other}`: use flex or ndarray"),
            ))
        }
    };
    bar.finish_and_clear();
    let files = outcome.save(&a.out)?;
    let r = &outcome.report;
    let losses = |ls: &[(String, f32)]| {
        ls.iter()
            .map(|(n, v)| format!("{n} {v:.4}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "{} steps ({:?}) in {:.1} s; features {} ({:.1} MiB); peak memory {}",
        r.iters_done,
        r.stopped,
        r.wall_s,
        if r.cached_features {
            "cached"
        } else {
            "recomputed per step"
        },
        r.feature_cache_mb,
        peak_memory().unwrap_or_else(|| "n/a".into())
    );
    println!("first step: {}", losses(&r.first_losses));
    println!("last step:  {}", losses(&r.last_losses));
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Peak resident memory of this process (Linux `VmHWM`).
fn peak_memory() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(format!("{:.0} MiB", kb / 1024.0))
}
