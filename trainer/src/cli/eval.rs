//! `crosskd eval`: COCO bbox mAP of a results file, pycocotools-exact.

use std::path::PathBuf;

use anyhow::Context;

use crate::data::coco::{load_dets, load_gt};
use crate::eval::CocoEvaluator;

/// `crosskd eval` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// COCO instances ground-truth JSON.
    #[arg(long, value_name = "GT.json")]
    pub gt: PathBuf,
    /// Detections in the COCO results format (a JSON array of
    /// `{image_id, category_id, bbox: [x, y, w, h], score}`).
    #[arg(long, value_name = "DETS.json")]
    pub dets: PathBuf,
    /// Print only the 12 summary stats as a JSON object (keys AP, AP50, AP75,
    /// APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl).
    #[arg(long)]
    pub json: bool,
}

/// Run `crosskd eval`: load both files, evaluate, print the pycocotools-style
/// summary and per-category table (or, with `--json`, the stats object).
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let gt = load_gt(&args.gt).context("loading ground truth")?;
    let dets = load_dets(&args.dets).context("loading detections")?;
    let evaluator = CocoEvaluator::new(&gt);
    let skipped = evaluator.count_unevaluated(&dets);
    if skipped > 0 {
        eprintln!(
            "warning: {skipped} of {} detections are on images or categories absent from {}; ignored",
            dets.len(),
            args.gt.display()
        );
    }
    let stats = evaluator.evaluate(&dets);
    if args.json {
        println!("{}", stats.to_json_string());
    } else {
        print!("{stats}");
    }
    Ok(())
}
