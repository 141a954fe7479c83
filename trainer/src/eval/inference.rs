//! Run a detector over a dataset and score it with the COCO evaluator.

use std::collections::HashSet;
use std::fmt;

use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};

use super::coco::{evaluate, CocoStats};
use crate::data::coco::{CocoDataset, CocoDetection};
use crate::data::loader::{collate, DataLoader};
use crate::model::detector::{Detector, PredictError};
use crosskd_sdk::{Detection, TestConfig};

/// What one pass of a detector over a dataset produced.
#[derive(Debug, Clone, Default)]
pub struct Predictions {
    /// COCO results of the images that were read, in loader order.
    pub detections: Vec<CocoDetection>,
    /// Ids of the images that were read and run (whether or not anything was
    /// detected on them).
    pub image_ids: Vec<u64>,
    /// `"PATH: reason"` of each image that could not be read (undecodable,
    /// or its size differs from the annotation file's).
    pub skipped: Vec<String>,
    /// Detections dropped because their label has no category id (the
    /// detector has more classes than the ids it was given).
    pub unmapped: usize,
}

/// COCO results of one image's detections; labels index `category_ids`.
/// Returns the records and how many detections had a label past its end.
pub fn to_results(
    dets: &[Detection],
    image_id: u64,
    category_ids: &[u64],
) -> (Vec<CocoDetection>, usize) {
    let mut unmapped = 0;
    let out = dets
        .iter()
        .filter_map(|d| {
            let Some(r) = d.to_coco(image_id, category_ids) else {
                unmapped += 1;
                return None;
            };
            Some(CocoDetection {
                image_id: r.image_id,
                category_id: r.category_id,
                bbox: r.bbox.map(f64::from),
                score: f64::from(r.score),
            })
        })
        .collect();
    (out, unmapped)
}

/// COCO results for every image of `loader`'s dataset (one pass, in order),
/// labels mapped to the *dataset's* category ids. Images that cannot be read
/// are skipped and returned as `"PATH: reason"`.
///
/// [`predict_images`] says which images were read and takes the category ids
/// explicitly (e.g. a checkpoint's); use it when the dataset's categories may
/// not be the detector's.
pub fn predict_dataset<B: Backend>(
    detector: &Detector<B>,
    loader: &DataLoader,
    test_cfg: &TestConfig,
    device: &B::Device,
    progress: bool,
) -> Result<(Vec<CocoDetection>, Vec<String>), PredictError> {
    let ids = loader.dataset().category_ids.clone();
    let p = predict_images(detector, loader, &ids, test_cfg, device, progress)?;
    Ok((p.detections, p.skipped))
}

/// Run `detector` over every image of `loader`'s dataset (one pass, in order).
/// Label `l` becomes category `category_ids[l]`: the label space is the
/// detector's, so pass the ids it was trained with.
pub fn predict_images<B: Backend>(
    detector: &Detector<B>,
    loader: &DataLoader,
    category_ids: &[u64],
    test_cfg: &TestConfig,
    device: &B::Device,
    progress: bool,
) -> Result<Predictions, PredictError> {
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
    let mut out = Predictions::default();
    for idx in batches {
        let loaded = loader.load(0, &idx);
        out.skipped.extend(
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
            out.image_ids.push(meta.image_id);
            let (results, unmapped) = to_results(&d, meta.image_id, category_ids);
            out.detections.extend(results);
            out.unmapped += unmapped;
        }
    }
    bar.finish_and_clear();
    Ok(out)
}

/// `gt` with only the images in `keep` and their annotations (categories
/// unchanged).
pub fn restrict_to_images(gt: &CocoDataset, keep: &HashSet<u64>) -> CocoDataset {
    CocoDataset {
        images: gt
            .images
            .iter()
            .filter(|i| keep.contains(&i.id))
            .cloned()
            .collect(),
        annotations: gt
            .annotations
            .iter()
            .filter(|a| keep.contains(&a.image_id))
            .cloned()
            .collect(),
        categories: gt.categories.clone(),
    }
}

/// A validation score and which images it covers.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// COCO bbox metrics over the scored images.
    pub stats: CocoStats,
    /// Images scored (read and run).
    pub scored_images: usize,
    /// Images in the ground truth.
    pub gt_images: usize,
    /// `"PATH: reason"` of the images that could not be read.
    pub skipped: Vec<String>,
}

impl Evaluation {
    /// Score `preds` against `gt` restricted to the images actually run.
    ///
    /// The restriction is deliberate: an image that could not be read (or a
    /// file missing at load time) would otherwise count all its objects as
    /// misses, and the AP would measure the data's damage, not the model.
    /// The cost — AP over fewer images — is made visible by [`Self::note`].
    pub fn score(gt: &CocoDataset, preds: Predictions) -> Self {
        let keep: HashSet<u64> = preds.image_ids.iter().copied().collect();
        let scored = restrict_to_images(gt, &keep);
        Self {
            stats: evaluate(&scored, &preds.detections),
            scored_images: scored.images.len(),
            gt_images: gt.images.len(),
            skipped: preds.skipped,
        }
    }

    /// A one-line account of the images left out of the score, `None` when
    /// every ground-truth image was scored.
    pub fn note(&self) -> Option<String> {
        if self.scored_images == self.gt_images && self.skipped.is_empty() {
            return None;
        }
        Some(self.to_string())
    }
}

impl fmt::Display for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "scored {} of {} images",
            self.scored_images, self.gt_images
        )?;
        if let Some(first) = self.skipped.first() {
            write!(
                f,
                "; {} images could not be read: first {first}",
                self.skipped.len()
            )?;
        }
        Ok(())
    }
}

/// Predict over `loader` and evaluate against `gt`, restricted to the images
/// that could be read (see [`Evaluation::score`]).
pub fn evaluate_detector<B: Backend>(
    detector: &Detector<B>,
    loader: &DataLoader,
    gt: &CocoDataset,
    test_cfg: &TestConfig,
    device: &B::Device,
    progress: bool,
) -> Result<Evaluation, PredictError> {
    let ids = loader.dataset().category_ids.clone();
    let preds = predict_images(detector, loader, &ids, test_cfg, device, progress)?;
    Ok(Evaluation::score(gt, preds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::coco::{CocoAnnotation, CocoCategory, CocoImage};

    fn gt() -> CocoDataset {
        let image = |id| CocoImage {
            id,
            file_name: format!("{id}.png"),
            width: 100,
            height: 100,
        };
        let ann = |id, image_id| CocoAnnotation {
            id,
            image_id,
            category_id: 1,
            bbox: [10.0, 10.0, 50.0, 40.0],
            area: 2000.0,
            iscrowd: 0,
        };
        CocoDataset {
            images: vec![image(1), image(2)],
            annotations: vec![ann(1, 1), ann(2, 2)],
            categories: vec![CocoCategory {
                id: 1,
                name: "a".into(),
            }],
        }
    }

    #[test]
    fn unread_images_are_left_out_of_the_score_and_counted() {
        // Image 2 could not be read; image 1 has a perfect detection.
        let preds = Predictions {
            detections: vec![CocoDetection {
                image_id: 1,
                category_id: 1,
                bbox: [10.0, 10.0, 50.0, 40.0],
                score: 0.9,
            }],
            image_ids: vec![1],
            skipped: vec!["val/2.png: cannot decode image".into()],
            unmapped: 0,
        };
        // Against the full GT the missed object of image 2 caps recall at 0.5:
        // precision 1 at the 51 recall thresholds 0..=0.5, 0 above → AP = 51/101.
        let full = evaluate(&gt(), &preds.detections).stats[0];
        assert!((full - 51.0 / 101.0).abs() < 1e-9, "{full}");
        // Scored on the image that was read: one TP of one GT → AP = 1 (up to
        // pycocotools' eps: 1 / (1 + 2^-52)).
        let e = Evaluation::score(&gt(), preds);
        assert!(
            (e.stats.stats[0] - 1.0).abs() < 1e-12,
            "{}",
            e.stats.stats[0]
        );
        assert_eq!((e.scored_images, e.gt_images), (1, 2));
        assert_eq!(
            e.note().unwrap(),
            "scored 1 of 2 images; 1 images could not be read: first val/2.png: cannot decode image"
        );
    }

    #[test]
    fn nothing_skipped_has_no_note() {
        let preds = Predictions {
            image_ids: vec![1, 2],
            ..Predictions::default()
        };
        let e = Evaluation::score(&gt(), preds);
        assert_eq!(e.note(), None);
        assert_eq!(e.stats.stats[0], 0.0);
    }

    #[test]
    fn labels_map_through_the_given_ids_and_overflow_is_counted() {
        let det = |class_id| Detection {
            bbox: [5.0, 6.0, 15.0, 26.0],
            score: 0.5,
            class_id,
            label: None,
        };
        // Checkpoint ids [1, 2, 3] (three classes): label 2 → id 3. With only
        // two ids (a GT declaring fewer categories), label 2 has no id and is
        // counted, not silently lost.
        let (r, lost) = to_results(&[det(0), det(2)], 7, &[1, 2, 3]);
        assert_eq!(r.iter().map(|d| d.category_id).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(lost, 0);
        assert_eq!(r[1].bbox, [5.0, 6.0, 10.0, 20.0]);
        let (r, lost) = to_results(&[det(0), det(2)], 7, &[1, 2]);
        assert_eq!((r.len(), lost), (1, 1));
    }
}
