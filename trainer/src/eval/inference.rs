//! Run a detector over a dataset and score it with the COCO evaluator.

use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};

use super::coco::{evaluate, CocoStats};
use crate::data::coco::{CocoDataset, CocoDetection};
use crate::data::loader::{collate, DataLoader};
use crate::model::detector::{Detector, PredictError};
use crosskd_sdk::TestConfig;

/// COCO results for every image of `loader`'s dataset (one pass, in order).
/// Images that cannot be decoded are skipped and returned by path.
pub fn predict_dataset<B: Backend>(
    detector: &Detector<B>,
    loader: &DataLoader,
    test_cfg: &TestConfig,
    device: &B::Device,
    progress: bool,
) -> Result<(Vec<CocoDetection>, Vec<String>), PredictError> {
    let category_ids = loader.dataset().category_ids.clone();
    let batches = loader.batch_indices(0);
    let bar = if progress {
        let b = ProgressBar::new(loader.dataset().len() as u64);
        b.set_style(
            ProgressStyle::with_template(
                "eval  [{elapsed_precise}] {wide_bar} {pos}/{len} images ETA {eta}",
            )
            .expect("valid template"),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let mut results = Vec::new();
    let mut skipped = Vec::new();
    for idx in batches {
        let loaded = loader.load(0, &idx);
        skipped.extend(
            loaded
                .skipped
                .iter()
                .map(|(p, why)| format!("{}: {why}", p.display())),
        );
        bar.inc(idx.len() as u64);
        if loaded.samples.is_empty() {
            continue;
        }
        let batch = collate::<B>(loaded.samples, loader.pad_divisor(), device);
        let dets = detector.predict(&batch, test_cfg)?;
        for (meta, d) in batch.metas.iter().zip(dets) {
            results.extend(d.iter().filter_map(|x| {
                let r = x.to_coco(meta.image_id, &category_ids)?;
                Some(CocoDetection {
                    image_id: r.image_id,
                    category_id: r.category_id,
                    bbox: r.bbox.map(f64::from),
                    score: r.score as f64,
                })
            }));
        }
    }
    bar.finish_and_clear();
    Ok((results, skipped))
}

/// Predict over `loader` and evaluate against `gt`.
pub fn evaluate_detector<B: Backend>(
    detector: &Detector<B>,
    loader: &DataLoader,
    gt: &CocoDataset,
    test_cfg: &TestConfig,
    device: &B::Device,
    progress: bool,
) -> Result<CocoStats, PredictError> {
    let (dets, _) = predict_dataset(detector, loader, test_cfg, device, progress)?;
    Ok(evaluate(gt, &dets))
}
