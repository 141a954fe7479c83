//! `crosskd predict --checkpoint CKPT --images DIR|GT.json [--image-dir DIR] --out dets.json`:
//! trainer-side inference writing COCO results JSON.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use burn::prelude::*;
use clap::Args;

use crate::backend::DeviceSpec;
use crate::config::TrainConfig;
use crate::data::coco::{load_gt, CocoCategory, CocoDataset, CocoImage};
use crate::data::dataset::DetectionDataset;
use crate::data::loader::{DataLoader, LoaderConfig};
use crate::data::pipeline::PipelineConfig;
use crate::eval::inference::predict_dataset;
use crate::train::checkpoint::load_detector;

/// `crosskd predict` arguments.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Checkpoint written by `crosskd train`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Training config whose `data.val_pipeline` to use (default: the one stored in the checkpoint).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A folder of images, or a COCO annotation file (image ids then come from it).
    #[arg(long)]
    pub images: PathBuf,
    /// Folder of the images named in the annotation file (with `--images GT.json`).
    #[arg(long)]
    pub image_dir: Option<PathBuf>,
    /// Output COCO results file.
    #[arg(long)]
    pub out: PathBuf,
    /// Device: flex (default), ndarray or cuda:N.
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Images per batch.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
}

/// A COCO "dataset" of every PNG/JPEG in `dir` (ids 1.. in file-name order).
fn folder_dataset(
    dir: &Path,
    class_names: &[String],
    category_ids: &[u64],
) -> anyhow::Result<CocoDataset> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{}: no .png/.jpg/.jpeg images found", dir.display());
    }
    let images = files
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (w, h) =
                image::image_dimensions(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            Ok(CocoImage {
                id: i as u64 + 1,
                file_name: p
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                width: w,
                height: h,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(CocoDataset {
        images,
        annotations: vec![],
        categories: category_ids
            .iter()
            .zip(class_names)
            .map(|(&id, name)| CocoCategory {
                id,
                name: name.clone(),
            })
            .collect(),
    })
}

fn predict_on<B: Backend>(device: &B::Device, args: &PredictArgs) -> anyhow::Result<usize> {
    let (det, header) = load_detector::<B>(&args.checkpoint, device)?;
    let stored = header
        .train_config
        .as_deref()
        .map(|t| TrainConfig::from_toml(t, &args.checkpoint));
    let pipeline = match (&args.config, stored) {
        (Some(p), _) => TrainConfig::from_file(p)?.data.val_pipeline,
        (None, Some(Ok(cfg))) => cfg.data.val_pipeline,
        _ => PipelineConfig::test((1333, 800)),
    };
    let test_cfg = match &args.config {
        Some(p) => TrainConfig::from_file(p)?.test_cfg(),
        None => crosskd_sdk::TestConfig::for_kind(header.model.kind()),
    };
    let (gt, origin, dir) = if args.images.is_dir() {
        (
            folder_dataset(&args.images, &header.class_names, &header.category_ids)?,
            args.images.clone(),
            args.images.clone(),
        )
    } else {
        let dir = args.image_dir.clone().context(
            "--images is an annotation file: pass --image-dir with the folder of its images",
        )?;
        (load_gt(&args.images)?, args.images.clone(), dir)
    };
    let (ds, report) = DetectionDataset::from_coco(&gt, &origin, &dir, false)?;
    eprintln!("{report}");
    if ds.category_ids != header.category_ids {
        eprintln!(
            "warning: category ids of {} differ from the checkpoint's; results use the checkpoint's ids",
            origin.display()
        );
    }
    let loader = DataLoader::new(
        Arc::new(ds),
        pipeline,
        LoaderConfig::sequential(args.batch.max(1), 2),
    )?;
    let (mut dets, skipped) = predict_dataset(&det, &loader, &test_cfg, device, true)?;
    for s in &skipped {
        eprintln!("skipped {s}");
    }
    // The loader maps labels to the dataset's categories; re-map to the checkpoint's.
    let ds_ids = &loader.dataset().category_ids;
    for d in &mut dets {
        if let Some(label) = ds_ids.iter().position(|&c| c == d.category_id) {
            if let Some(&id) = header.category_ids.get(label) {
                d.category_id = id;
            }
        }
    }
    let json = serde_json::to_vec(&dets)?;
    std::fs::write(&args.out, json).with_context(|| format!("writing {}", args.out.display()))?;
    Ok(dets.len())
}

/// Run `crosskd predict`.
pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    let device: DeviceSpec = args.device.parse()?;
    device.check_available()?;
    let n = crate::with_backend!(device, predict_on(&args))?;
    println!("{n} detections written to {}", args.out.display());
    Ok(())
}
