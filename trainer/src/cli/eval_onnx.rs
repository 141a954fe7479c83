//! `crosskd eval-onnx --model M.onnx --gt val.json --images DIR`: COCO bbox mAP of
//! an exported model (fp32 or int8) run by the SDK runtime (tract, letterbox,
//! SDK decoding and NMS — exactly what the board runs), scored by the trainer's
//! pycocotools-exact evaluator.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use crosskd_sdk::{Detector, DeviceConfig};
use indicatif::{ProgressBar, ProgressStyle};

use crate::data::coco::{load_gt, CocoDetection};
use crate::eval::coco::CocoStats;
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
    /// Images run.
    pub images: usize,
    /// tract threads used.
    pub threads: usize,
    /// Mean inference (tract plan) time per image.
    pub infer: Duration,
    /// Mean pre-processing + inference + post-processing time per image.
    pub total: Duration,
    /// Wall time of the whole pass (image decoding included).
    pub wall: Duration,
}

/// Run an exported model through the SDK on every image of a COCO ground-truth
/// file and score its detections (a progress bar when `progress`).
pub fn evaluate_onnx(
    model: &Path,
    gt_path: &Path,
    images: &Path,
    threads: usize,
    progress: bool,
) -> anyhow::Result<OnnxEvaluation> {
    let gt = load_gt(gt_path).with_context(|| format!("loading {}", gt_path.display()))?;
    // Label → COCO category id: the ids stored at export, else the GT's category order
    // (the order the trainer's dataset assigns labels in).
    let proto = read_model(model)?;
    let category_ids: Vec<u64> = match get_prop(&proto, "crosskd.category_ids") {
        Some(s) => serde_json::from_str(s)
            .with_context(|| format!("{}: bad crosskd.category_ids", model.display()))?,
        None => gt.categories.iter().map(|c| c.id).collect(),
    };
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
    let (mut infer, mut total) = (Duration::ZERO, Duration::ZERO);
    let t0 = Instant::now();
    for img in &gt.images {
        let path = images.join(&img.file_name);
        let image = image::open(&path).with_context(|| format!("reading {}", path.display()))?;
        let (found, times) = det
            .detect_timed(&image)
            .with_context(|| format!("running on {}", path.display()))?;
        infer += times.infer;
        total += times.total();
        detections.extend(found.iter().filter_map(|d| {
            let r = d.to_coco(img.id, &category_ids)?;
            Some(CocoDetection {
                image_id: r.image_id,
                category_id: r.category_id,
                bbox: r.bbox.map(f64::from),
                score: r.score as f64,
            })
        }));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let n = gt.images.len().max(1) as u32;
    let stats = CocoEvaluator::new(&gt).evaluate(&detections);
    Ok(OnnxEvaluation {
        stats,
        detections,
        images: gt.images.len(),
        threads: cfg.runtime.threads,
        infer: infer / n,
        total: total / n,
        wall: t0.elapsed(),
    })
}

/// Run `crosskd eval-onnx`.
pub fn run(args: EvalOnnxArgs) -> anyhow::Result<()> {
    let e = evaluate_onnx(&args.model, &args.gt, &args.images, args.threads, false)?;
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
