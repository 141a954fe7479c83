//! `crosskd eval-onnx --model M.onnx --gt val.json --images DIR`: COCO bbox mAP of
//! an exported model (fp32 or int8) run by the SDK runtime (tract, letterbox,
//! SDK decoding and NMS — exactly what the board runs), scored by the trainer's
//! pycocotools-exact evaluator.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use crosskd_sdk::{Detector, DeviceConfig};
use indicatif::{ProgressBar, ProgressStyle};

use crate::data::coco::{load_gt, CocoDataset, CocoDetection};
use crate::eval::coco::CocoStats;
use crate::eval::inference::{restrict_to_images, to_results};
use crate::eval::CocoEvaluator;
use crate::export::metadata::get_prop;
use crate::export::runner::read_model;

/// `crosskd eval-onnx` arguments.
#[derive(Debug, Args)]
pub struct EvalOnnxArgs {
    /// Exported model (`crosskd export` / `crosskd quantize`).
    #[arg(long)]
    pub model: PathBuf,
    /// COCO ground-truth JSON.
    #[arg(long, value_name = "GT.json")]
    pub gt: PathBuf,
    /// Folder of the images named in the ground truth.
    #[arg(long)]
    pub images: PathBuf,
    /// tract matmul threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Also write the detections as a COCO results file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print only the summary stats as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What [`evaluate_onnx`] measured.
#[derive(Debug, Clone)]
pub struct OnnxEvaluation {
    /// COCO bbox metrics of the model's detections.
    pub stats: CocoStats,
    /// The detections, in the COCO results format.
    pub detections: Vec<CocoDetection>,
    /// Images run (the ones that could be read).
    pub images: usize,
    /// `"PATH: reason"` of each image that could not be read; skipped, and
    /// left out of the ground truth the stats are computed on.
    pub unreadable: Vec<String>,
    /// tract threads used.
    pub threads: usize,
    /// Mean inference (tract plan) time per image.
    pub infer: Duration,
    /// Mean pre-processing + inference + post-processing time per image.
    pub total: Duration,
    /// Wall time of the whole pass (image decoding included).
    pub wall: Duration,
}

/// Label → COCO category id: the ids stored at export (`crosskd.category_ids`,
/// the JSON text of `stored`), else the ground truth's ids sorted ascending —
/// the order in which the trainer's dataset assigns labels
/// ([`DetectionDataset`](crate::data::dataset::DetectionDataset)), whatever
/// the order of `categories` in the file. `model` names the file in errors.
pub fn label_category_ids(
    stored: Option<&str>,
    gt: &CocoDataset,
    model: &Path,
) -> anyhow::Result<Vec<u64>> {
    match stored {
        Some(s) => serde_json::from_str(s)
            .with_context(|| format!("{}: bad crosskd.category_ids", model.display())),
        None => {
            let mut ids: Vec<u64> = gt.categories.iter().map(|c| c.id).collect();
            ids.sort_unstable();
            Ok(ids)
        }
    }
}

/// Run an exported model through the SDK on every image of a COCO ground-truth
/// file and score its detections (a progress bar when `progress`).
///
/// Images that cannot be read are skipped and listed in
/// [`OnnxEvaluation::unreadable`]; the stats are computed on the ground truth
/// restricted to the images that were run, as the trainer's validation does
/// ([`Evaluation::score`](crate::eval::inference::Evaluation::score)), so a
/// damaged file does not count its objects as misses. Fails if no image could
/// be read.
pub fn evaluate_onnx(
    model: &Path,
    gt_path: &Path,
    images: &Path,
    threads: usize,
    progress: bool,
) -> anyhow::Result<OnnxEvaluation> {
    let gt = load_gt(gt_path).with_context(|| format!("loading {}", gt_path.display()))?;
    let proto = read_model(model)?;
    let category_ids = label_category_ids(get_prop(&proto, "crosskd.category_ids"), &gt, model)?;
    drop(proto);
    let mut cfg = DeviceConfig::default();
    cfg.runtime.threads = threads.max(1);
    let mut det =
        Detector::from_file(model, &cfg).with_context(|| format!("loading {}", model.display()))?;
    let bar = if progress {
        ProgressBar::new(gt.images.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("sdk [{elapsed_precise}] {wide_bar} {pos}/{len} images {msg}")
            .expect("valid template"),
    );
    let name = model.file_name().unwrap_or_default().to_string_lossy();
    bar.set_message(name.into_owned());
    let mut detections = Vec::new();
    let mut read = HashSet::new();
    let mut unreadable = Vec::new();
    let (mut infer, mut total) = (Duration::ZERO, Duration::ZERO);
    let t0 = Instant::now();
    for img in &gt.images {
        let path = images.join(&img.file_name);
        bar.inc(1);
        let image = match image::open(&path) {
            Ok(image) => image,
            Err(e) => {
                unreadable.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let (found, times) = det
            .detect_timed(&image)
            .with_context(|| format!("running on {}", path.display()))?;
        infer += times.infer;
        total += times.total();
        read.insert(img.id);
        detections.extend(to_results(&found, img.id, &category_ids).0);
    }
    bar.finish_and_clear();
    if read.is_empty() && !gt.images.is_empty() {
        anyhow::bail!(
            "{}: none of the {} images of {} could be read (first: {}); check --images",
            images.display(),
            gt.images.len(),
            gt_path.display(),
            unreadable.first().map_or("none", String::as_str)
        );
    }
    let n = read.len().max(1) as u32;
    let scored = restrict_to_images(&gt, &read);
    let stats = CocoEvaluator::new(&scored).evaluate(&detections);
    Ok(OnnxEvaluation {
        stats,
        detections,
        images: read.len(),
        unreadable,
        threads: cfg.runtime.threads,
        infer: infer / n,
        total: total / n,
        wall: t0.elapsed(),
    })
}

/// Run `crosskd eval-onnx`.
pub fn run(args: EvalOnnxArgs) -> anyhow::Result<()> {
    let e = evaluate_onnx(&args.model, &args.gt, &args.images, args.threads, false)?;
    if let Some(first) = e.unreadable.first() {
        eprintln!(
            "{} images could not be read and were skipped (not scored): first {first}",
            e.unreadable.len()
        );
    }
    eprintln!(
        "{} images in {:.1} s; inference {:.1} ms/image ({} thread(s)); {} detections",
        e.images,
        e.wall.as_secs_f64(),
        e.infer.as_secs_f64() * 1e3,
        e.threads,
        e.detections.len()
    );
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_vec(&e.detections)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    if args.json {
        println!("{}", e.stats.to_json_string());
    } else {
        print!("{}", e.stats);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::coco::CocoCategory;

    #[test]
    fn without_stored_ids_labels_follow_sorted_category_ids() {
        // `categories` listed out of order in the file: [3, 1, 2]. The trainer
        // sorts by id (label 0 → 1, 1 → 2, 2 → 3), so eval-onnx must too.
        let cat = |id| CocoCategory {
            id,
            name: format!("c{id}"),
        };
        let gt = CocoDataset {
            categories: vec![cat(3), cat(1), cat(2)],
            ..CocoDataset::default()
        };
        let m = Path::new("m.onnx");
        assert_eq!(label_category_ids(None, &gt, m).unwrap(), [1, 2, 3]);
        // Stored ids win, in their stored order.
        assert_eq!(label_category_ids(Some("[9,4]"), &gt, m).unwrap(), [9, 4]);
        let err = label_category_ids(Some("[9,"), &gt, m).unwrap_err();
        assert!(
            err.to_string().contains("m.onnx: bad crosskd.category_ids"),
            "{err}"
        );
    }
}
