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
use crate::eval::inference::predict_images;
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

/// What [`predict`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictSummary {
    /// Detections written.
    pub detections: usize,
    /// Images read and run.
    pub images: usize,
    /// `"PATH: reason"` of each image that could not be read (skipped).
    pub unreadable: Vec<String>,
}

/// A COCO "dataset" of every PNG/JPEG in `dir` (ids 1.. in file-name order)
/// and the `"PATH: reason"` of the files whose header cannot be read: those
/// are skipped so that one corrupt file does not stop a whole folder.
fn folder_dataset(
    dir: &Path,
    class_names: &[String],
    category_ids: &[u64],
) -> anyhow::Result<(CocoDataset, Vec<String>)> {
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
    let mut images = Vec::with_capacity(files.len());
    let mut unreadable = Vec::new();
    // Ids follow the file-name order of *all* files, so a file's id does not
    // change when another file is unreadable.
    for (i, p) in files.iter().enumerate() {
        match image::image_dimensions(p) {
            Ok((width, height)) => images.push(CocoImage {
                id: i as u64 + 1,
                file_name: p
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                width,
                height,
            }),
            Err(e) => unreadable.push(format!("{}: {e}", p.display())),
        }
    }
    if images.is_empty() {
        bail!(
            "{}: none of the {} images could be read (first: {}); check that they are PNG/JPEG files",
            dir.display(),
            files.len(),
            unreadable[0]
        );
    }
    let gt = CocoDataset {
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
    };
    Ok((gt, unreadable))
}

fn predict_on<B: Backend>(
    device: &B::Device,
    args: &PredictArgs,
) -> anyhow::Result<PredictSummary> {
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
    let from_folder = args.images.is_dir();
    let (gt, origin, dir, mut unreadable) = if from_folder {
        let (gt, unreadable) =
            folder_dataset(&args.images, &header.class_names, &header.category_ids)?;
        (gt, args.images.clone(), args.images.clone(), unreadable)
    } else {
        let dir = args.image_dir.clone().context(
            "--images is an annotation file: pass --image-dir with the folder of its images",
        )?;
        (load_gt(&args.images)?, args.images.clone(), dir, Vec::new())
    };
    let (ds, report) = DetectionDataset::from_coco(&gt, &origin, &dir, false)?;
    eprintln!("{report}");
    // (A folder's categories are the checkpoint's, merely sorted by id.)
    if !from_folder && ds.category_ids != header.category_ids {
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
    // Labels are the checkpoint's classes: map them with its ids, once. (The
    // annotation file's categories only name the images' ground truth and may
    // be fewer than the checkpoint's.)
    let preds = predict_images(&det, &loader, &header.category_ids, &test_cfg, device, true)?;
    for s in &preds.skipped {
        eprintln!("skipped {s}");
    }
    unreadable.extend(preds.skipped);
    if preds.image_ids.is_empty() {
        bail!(
            "{}: no image could be read ({} unreadable, first: {})",
            origin.display(),
            unreadable.len(),
            unreadable.first().map_or("none", String::as_str)
        );
    }
    if preds.unmapped > 0 {
        eprintln!(
            "warning: {} detections have a label past the checkpoint's {} category ids and were dropped; \
             the checkpoint's header does not match its model",
            preds.unmapped,
            header.category_ids.len()
        );
    }
    let json = serde_json::to_vec(&preds.detections)?;
    std::fs::write(&args.out, json).with_context(|| format!("writing {}", args.out.display()))?;
    Ok(PredictSummary {
        detections: preds.detections.len(),
        images: preds.image_ids.len(),
        unreadable,
    })
}

/// Run the detector of `args.checkpoint` over `args.images` and write the COCO
/// results. Unreadable images are skipped and listed in the summary; it fails
/// only if no image at all could be read.
pub fn predict(args: &PredictArgs) -> anyhow::Result<PredictSummary> {
    let device: DeviceSpec = args.device.parse()?;
    device.check_available()?;
    crate::with_backend!(device, predict_on(args))
}

/// Run `crosskd predict`.
pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    let s = predict(&args)?;
    if let Some(first) = s.unreadable.first() {
        eprintln!(
            "{} images could not be read and were skipped: first {first}",
            s.unreadable.len()
        );
    }
    println!(
        "{} detections on {} images written to {}",
        s.detections,
        s.images,
        args.out.display()
    );
    Ok(())
}
