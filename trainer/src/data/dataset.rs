//! A detection dataset: COCO annotations resolved to image paths, contiguous
//! labels and clean boxes, with a report of what was skipped and why.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crosskd_sdk::boxes::BBox;

use super::coco::{load_gt, CocoDataset, CocoError};

/// One image and its objects in original pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRecord {
    /// COCO image id.
    pub id: u64,
    /// Absolute (or working-directory relative) path of the image file.
    pub path: PathBuf,
    /// Width declared in the annotation file.
    pub width: u32,
    /// Height declared in the annotation file.
    pub height: u32,
    /// Object boxes, xyxy, clipped to the image.
    pub boxes: Vec<BBox>,
    /// Contiguous labels `0..num_classes`.
    pub labels: Vec<usize>,
    /// Crowd regions (xyxy): never positives.
    pub ignore: Vec<BBox>,
}

/// What was dropped or repaired while building the dataset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DatasetReport {
    /// Images kept.
    pub images: usize,
    /// Objects kept.
    pub objects: usize,
    /// Crowd regions kept as ignore regions.
    pub crowd: usize,
    /// Boxes partly outside the image, clipped.
    pub clipped_boxes: usize,
    /// Boxes of zero or negative size (after clipping) or not finite, dropped.
    pub dropped_boxes: usize,
    /// Images without any object dropped (training drops them, as MMDet's `filter_empty_gt`).
    pub dropped_empty_images: usize,
    /// Images whose file does not exist, dropped.
    pub missing_files: Vec<PathBuf>,
}

impl fmt::Display for DatasetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} images, {} objects, {} crowd regions; clipped {} boxes, dropped {} degenerate boxes, {} empty images, {} missing files",
            self.images,
            self.objects,
            self.crowd,
            self.clipped_boxes,
            self.dropped_boxes,
            self.dropped_empty_images,
            self.missing_files.len()
        )?;
        if let Some(first) = self.missing_files.first() {
            write!(f, " (first: {})", first.display())?;
        }
        Ok(())
    }
}

/// Images with objects, labels mapped to `0..num_classes` in category-id order.
#[derive(Debug, Clone)]
pub struct DetectionDataset {
    /// The images.
    pub records: Vec<ImageRecord>,
    /// COCO category id of each contiguous label.
    pub category_ids: Vec<u64>,
    /// Name of each contiguous label.
    pub class_names: Vec<String>,
}

/// The dataset cannot be used at all.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The annotation file is unreadable or invalid.
    #[error(transparent)]
    Coco(#[from] CocoError),
    /// Nothing left to train or evaluate on.
    #[error("{path}: no usable images ({report}); check --images points at the folder holding the files named in `file_name`")]
    Empty {
        /// The annotation file.
        path: PathBuf,
        /// What was skipped.
        report: DatasetReport,
    },
    /// The file declares no categories.
    #[error("{0}: `categories` is empty: a detector needs at least one class")]
    NoCategories(PathBuf),
}

impl DetectionDataset {
    /// Load `ann_file` and resolve `file_name`s against `image_dir`.
    /// `drop_empty`: skip images without objects (training).
    pub fn from_coco_file(
        ann_file: &Path,
        image_dir: &Path,
        drop_empty: bool,
    ) -> Result<(Self, DatasetReport), DatasetError> {
        let gt = load_gt(ann_file)?;
        Self::from_coco(&gt, ann_file, image_dir, drop_empty)
    }

    /// Build from an already loaded annotation file (`origin` names it in errors).
    pub fn from_coco(
        gt: &CocoDataset,
        origin: &Path,
        image_dir: &Path,
        drop_empty: bool,
    ) -> Result<(Self, DatasetReport), DatasetError> {
        if gt.categories.is_empty() {
            return Err(DatasetError::NoCategories(origin.to_path_buf()));
        }
        let mut cats: Vec<_> = gt.categories.iter().collect();
        cats.sort_by_key(|c| c.id);
        let label_of: HashMap<u64, usize> =
            cats.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
        let mut per_image: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, a) in gt.annotations.iter().enumerate() {
            per_image.entry(a.image_id).or_default().push(i);
        }
        let mut report = DatasetReport::default();
        let mut records = Vec::with_capacity(gt.images.len());
        for img in &gt.images {
            let path = image_dir.join(&img.file_name);
            if !path.is_file() {
                report.missing_files.push(path);
                continue;
            }
            let (w, h) = (img.width as f32, img.height as f32);
            let mut rec = ImageRecord {
                id: img.id,
                path,
                width: img.width,
                height: img.height,
                boxes: Vec::new(),
                labels: Vec::new(),
                ignore: Vec::new(),
            };
            for &ai in per_image.get(&img.id).map(Vec::as_slice).unwrap_or(&[]) {
                let a = &gt.annotations[ai];
                let [x, y, bw, bh] = a.bbox.map(|v| v as f32);
                let raw = [x, y, x + bw, y + bh];
                if raw.iter().any(|v| !v.is_finite()) {
                    report.dropped_boxes += 1;
                    continue;
                }
                let b = crosskd_sdk::boxes::clip(&raw, w, h);
                if b != raw {
                    report.clipped_boxes += 1;
                }
                if b[2] - b[0] < 1.0 || b[3] - b[1] < 1.0 {
                    // MMDet drops boxes under 1 px (`min_gt_bbox_wh`-like filtering).
                    report.dropped_boxes += 1;
                    continue;
                }
                if a.iscrowd != 0 {
                    rec.ignore.push(b);
                    report.crowd += 1;
                } else {
                    rec.boxes.push(b);
                    rec.labels.push(label_of[&a.category_id]);
                }
            }
            if drop_empty && rec.boxes.is_empty() {
                report.dropped_empty_images += 1;
                continue;
            }
            report.objects += rec.boxes.len();
            records.push(rec);
        }
        report.images = records.len();
        if records.is_empty() {
            return Err(DatasetError::Empty {
                path: origin.to_path_buf(),
                report,
            });
        }
        let ds = DetectionDataset {
            records,
            category_ids: cats.iter().map(|c| c.id).collect(),
            class_names: cats.iter().map(|c| c.name.clone()).collect(),
        };
        Ok((ds, report))
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// No images.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.category_ids.len()
    }
}
