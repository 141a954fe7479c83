//! `crosskd eval-onnx --model M.onnx --gt val.json --images DIR`: COCO bbox mAP of
//! an exported model (fp32 or int8) run by the SDK runtime (tract, letterbox,
//! SDK decoding and NMS — exactly what the board runs), scored by the trainer's
//! pycocotools-exact evaluator.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use crosskd_sdk::{Detector, DeviceConfig};

use crate::data::coco::{load_gt, CocoDetection};
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

/// Run `crosskd eval-onnx`.
pub fn run(args: EvalOnnxArgs) -> anyhow::Result<()> {
    let gt = load_gt(&args.gt).context("loading ground truth")?;
    // Label → COCO category id: the ids stored at export, else the GT's category order
    // (the order the trainer's dataset assigns labels in).
    let proto = read_model(&args.model)?;
    let category_ids: Vec<u64> = match get_prop(&proto, "crosskd.category_ids") {
        Some(s) => serde_json::from_str(s)
            .with_context(|| format!("{}: bad crosskd.category_ids", args.model.display()))?,
        None => gt.categories.iter().map(|c| c.id).collect(),
    };
    drop(proto);
    let mut cfg = DeviceConfig::default();
    cfg.runtime.threads = args.threads.max(1);
    let mut det = Detector::from_file(&args.model, &cfg)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let mut dets = Vec::new();
    let mut infer = Duration::ZERO;
    let t0 = Instant::now();
    for img in &gt.images {
        let path = args.images.join(&img.file_name);
        let image = image::open(&path).with_context(|| format!("reading {}", path.display()))?;
        let (found, times) = det
            .detect_timed(&image)
            .with_context(|| format!("running on {}", path.display()))?;
        infer += times.infer;
        dets.extend(found.iter().filter_map(|d| {
            let r = d.to_coco(img.id, &category_ids)?;
            Some(CocoDetection {
                image_id: r.image_id,
                category_id: r.category_id,
                bbox: r.bbox.map(f64::from),
                score: r.score as f64,
            })
        }));
    }
    let n = gt.images.len().max(1);
    eprintln!(
        "{} images in {:.1} s; inference {:.1} ms/image ({} thread(s)); {} detections",
        gt.images.len(),
        t0.elapsed().as_secs_f64(),
        infer.as_secs_f64() * 1e3 / n as f64,
        cfg.runtime.threads,
        dets.len()
    );
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_vec(&dets)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    let stats = CocoEvaluator::new(&gt).evaluate(&dets);
    if args.json {
        println!("{}", stats.to_json_string());
    } else {
        print!("{stats}");
    }
    Ok(())
}
