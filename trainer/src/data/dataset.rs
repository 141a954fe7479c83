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
    /// Boxes partly outside the image, clipped and kept (a box that clipping
    /// leaves degenerate counts in `dropped_boxes` only).
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
    /// Two annotation files that must share one label space do not.
    #[error(
        "{}: categories differ from {}'s ({detail}); the model's labels are {}'s \
         categories, so give both files the same category ids and names",
        .other.display(), .reference.display(), .reference.display()
    )]
    CategoryMismatch {
        /// The file whose categories define the labels (training).
        reference: PathBuf,
        /// The file that disagrees (validation).
        other: PathBuf,
        /// The first difference, e.g. `label 1: id 2 "b" vs id 3 "b"`.
        detail: String,
    },
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
        // `gt` may have been built in memory (e.g. `crosskd predict`'s folder
        // dataset) rather than by `load_gt`: validate here, so that an unknown
        // image or category id is an error naming the file, never a panic below.
        gt.validate(origin)?;
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
                // Unreachable after `validate`; kept as an error so that no input
                // can make this index panic.
                let Some(&label) = label_of.get(&a.category_id) else {
                    return Err(CocoError::UnknownCategory {
                        path: origin.to_path_buf(),
                        json_path: format!("annotations[{ai}].category_id"),
                        annotation_id: a.id,
                        category_id: a.category_id,
                    }
                    .into());
                };
                let [x, y, bw, bh] = a.bbox.map(|v| v as f32);
                let raw = [x, y, x + bw, y + bh];
                if raw.iter().any(|v| !v.is_finite()) {
                    report.dropped_boxes += 1;
                    continue;
                }
                let b = crosskd_sdk::boxes::clip(&raw, w, h);
                // Each box is counted once: a box that clipping leaves under
                // 1 px (e.g. one entirely outside the image) is "dropped", not
                // also "clipped".
                //
                // MMDet (`CocoDataset.parse_data_info`) skips boxes with no
                // overlap with the image or with w or h < 1 on the *unclipped*
                // box; here the < 1 px test is on the clipped box, which also
                // drops slivers with under 1 px inside the image. Such slivers
                // cannot be matched meaningfully at stride >= 8, so the
                // difference is kept deliberately. Crowd boxes go through the
                // same filter, as in MMDet (it filters before `ignore_flag`).
                if b[2] - b[0] < 1.0 || b[3] - b[1] < 1.0 {
                    report.dropped_boxes += 1;
                    continue;
                }
                if b != raw {
                    report.clipped_boxes += 1;
                }
                if a.iscrowd != 0 {
                    rec.ignore.push(b);
                    report.crowd += 1;
                } else {
                    rec.boxes.push(b);
                    rec.labels.push(label);
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

    /// Check that `other` has exactly this dataset's categories (ids and
    /// names, in label order), so a label means the same class in both.
    /// `self_file`/`other_file` name the annotation files in the error.
    pub fn check_same_categories(
        &self,
        self_file: &Path,
        other: &DetectionDataset,
        other_file: &Path,
    ) -> Result<(), DatasetError> {
        let mine: Vec<(u64, &str)> = self.categories().collect();
        let theirs: Vec<(u64, &str)> = other.categories().collect();
        if mine == theirs {
            return Ok(());
        }
        let show = |c: Option<&(u64, &str)>| match c {
            Some((id, name)) => format!("id {id} {name:?}"),
            None => "none".to_string(),
        };
        let i = (0..mine.len().max(theirs.len()))
            .find(|&i| mine.get(i) != theirs.get(i))
            .unwrap_or(0);
        let detail = format!(
            "{} vs {} categories; label {i}: {} vs {}",
            mine.len(),
            theirs.len(),
            show(mine.get(i)),
            show(theirs.get(i))
        );
        Err(DatasetError::CategoryMismatch {
            reference: self_file.to_path_buf(),
            other: other_file.to_path_buf(),
            detail,
        })
    }

    /// `(category id, name)` of each label, in label order.
    fn categories(&self) -> impl Iterator<Item = (u64, &str)> {
        self.category_ids
            .iter()
            .copied()
            .zip(self.class_names.iter().map(String::as_str))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::coco::{CocoAnnotation, CocoCategory, CocoImage};

    /// A fresh folder under the system temp dir.
    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("crosskd-dataset-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// `from_coco` only checks that files exist; decoding is the loader's job.
    fn touch(dir: &Path, names: &[&str]) {
        for n in names {
            std::fs::write(dir.join(n), b"not decoded here").unwrap();
        }
    }

    fn image(id: u64, file_name: &str) -> CocoImage {
        CocoImage {
            id,
            file_name: file_name.into(),
            width: 100,
            height: 80,
        }
    }

    fn ann(
        id: u64,
        image_id: u64,
        category_id: u64,
        bbox: [f64; 4],
        iscrowd: u8,
    ) -> CocoAnnotation {
        CocoAnnotation {
            id,
            image_id,
            category_id,
            bbox,
            area: bbox[2] * bbox[3],
            iscrowd,
        }
    }

    fn cat(id: u64, name: &str) -> CocoCategory {
        CocoCategory {
            id,
            name: name.into(),
        }
    }

    #[test]
    fn crowd_boxes_become_ignore_regions_and_labels_follow_sorted_ids() {
        let dir = tmpdir("crowd");
        touch(&dir, &["a.png"]);
        let gt = CocoDataset {
            images: vec![image(1, "a.png")],
            annotations: vec![
                ann(1, 1, 7, [10.0, 10.0, 20.0, 30.0], 0),
                ann(2, 1, 3, [40.0, 20.0, 10.0, 10.0], 1),
                ann(3, 1, 3, [0.0, 0.0, 5.0, 5.0], 0),
            ],
            // Declared out of id order: labels are assigned by sorted id, 3 → 0, 7 → 1.
            categories: vec![cat(7, "seven"), cat(3, "three")],
        };
        let (ds, report) =
            DetectionDataset::from_coco(&gt, Path::new("gt.json"), &dir, true).unwrap();
        assert_eq!(ds.category_ids, [3, 7]);
        assert_eq!(ds.class_names, ["three", "seven"]);
        let r = &ds.records[0];
        // xywh → xyxy by hand: [10, 10, 20, 30] → [10, 10, 30, 40].
        assert_eq!(
            r.boxes,
            vec![[10.0, 10.0, 30.0, 40.0], [0.0, 0.0, 5.0, 5.0]]
        );
        assert_eq!(r.labels, [1, 0]);
        // The crowd box is an ignore region only, never a positive.
        assert_eq!(r.ignore, vec![[40.0, 20.0, 50.0, 30.0]]);
        assert_eq!((report.objects, report.crowd), (2, 1));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn degenerate_boxes_are_dropped_and_each_box_counted_once() {
        let dir = tmpdir("degenerate");
        touch(&dir, &["a.png", "b.png"]);
        // Image 100×80 (w×h).
        let gt = CocoDataset {
            images: vec![image(1, "a.png"), image(2, "b.png")],
            annotations: vec![
                // Inside: kept as is.
                ann(1, 1, 1, [10.0, 10.0, 20.0, 20.0], 0),
                // Partly outside: clipped to [90, 10, 100, 30], kept → clipped 1.
                ann(2, 1, 1, [90.0, 10.0, 30.0, 20.0], 0),
                // Entirely outside: clipping gives [100, 10, 100, 30] (0 wide)
                // → dropped, and *not* also counted as clipped.
                ann(3, 1, 1, [150.0, 10.0, 20.0, 20.0], 0),
                // Zero width, and under 1 px high: dropped.
                ann(4, 1, 1, [5.0, 5.0, 0.0, 10.0], 0),
                ann(5, 1, 1, [5.0, 5.0, 10.0, 0.5], 0),
                // Image 2's only box is degenerate: with drop_empty the image goes.
                ann(6, 2, 1, [5.0, 5.0, 0.0, 0.0], 0),
            ],
            categories: vec![cat(1, "a")],
        };
        let (ds, report) =
            DetectionDataset::from_coco(&gt, Path::new("gt.json"), &dir, true).unwrap();
        assert_eq!(ds.len(), 1);
        assert_eq!(
            ds.records[0].boxes,
            vec![[10.0, 10.0, 30.0, 30.0], [90.0, 10.0, 100.0, 30.0]]
        );
        assert_eq!(report.objects, 2);
        assert_eq!(report.clipped_boxes, 1);
        assert_eq!(report.dropped_boxes, 4);
        assert_eq!(report.dropped_empty_images, 1);
        // Without drop_empty (validation) image 2 stays, with no boxes.
        let (ds, _) = DetectionDataset::from_coco(&gt, Path::new("gt.json"), &dir, false).unwrap();
        assert_eq!(ds.len(), 2);
        assert!(ds.records[1].boxes.is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn missing_image_file_is_skipped_and_named() {
        let dir = tmpdir("missing");
        touch(&dir, &["a.png"]);
        let gt = CocoDataset {
            images: vec![image(1, "a.png"), image(2, "gone.png")],
            annotations: vec![
                ann(1, 1, 1, [10.0, 10.0, 20.0, 20.0], 0),
                ann(2, 2, 1, [10.0, 10.0, 20.0, 20.0], 0),
            ],
            categories: vec![cat(1, "a")],
        };
        let (ds, report) =
            DetectionDataset::from_coco(&gt, Path::new("gt.json"), &dir, false).unwrap();
        assert_eq!(ds.len(), 1);
        assert_eq!(ds.records[0].id, 1);
        assert_eq!(report.missing_files, vec![dir.join("gone.png")]);
        let text = report.to_string();
        assert!(
            text.contains("1 missing files (first: ") && text.contains("gone.png"),
            "{text}"
        );
        // Nothing left: an error naming the annotation file and the folder hint.
        let none = CocoDataset {
            images: vec![image(2, "gone.png")],
            annotations: vec![],
            categories: vec![cat(1, "a")],
        };
        let err = DetectionDataset::from_coco(&none, Path::new("gt.json"), &dir, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("gt.json: no usable images") && err.contains("--images"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn unknown_category_id_is_an_error_naming_id_and_file() {
        let dir = tmpdir("unknown-cat");
        touch(&dir, &["a.png"]);
        // Built in memory, so never validated by `load_gt`: this used to panic
        // on `label_of[&7]`.
        let gt = CocoDataset {
            images: vec![image(1, "a.png")],
            annotations: vec![ann(4, 1, 7, [10.0, 10.0, 20.0, 20.0], 0)],
            categories: vec![cat(1, "a")],
        };
        let err = DetectionDataset::from_coco(&gt, Path::new("val.json"), &dir, false)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "val.json: annotations[0].category_id: annotation id 4 refers to unknown category id 7"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn malformed_json_names_the_file() {
        let dir = tmpdir("malformed");
        let path = dir.join("broken.json");
        std::fs::write(&path, "{\n  \"images\": [\n    {\"id\": 1,, }\n  ]\n}").unwrap();
        let err = DetectionDataset::from_coco_file(&path, &dir, true)
            .unwrap_err()
            .to_string();
        // serde_json stops on line 3 at the second comma.
        assert!(err.starts_with(&format!("{}:3:", path.display())), "{err}");
        let err = DetectionDataset::from_coco_file(&dir.join("absent.json"), &dir, true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("absent.json: cannot read"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn category_mismatch_names_both_files_and_the_first_difference() {
        let ds = |cats: &[(u64, &str)]| DetectionDataset {
            records: vec![],
            category_ids: cats.iter().map(|c| c.0).collect(),
            class_names: cats.iter().map(|c| c.1.to_string()).collect(),
        };
        let train = ds(&[(1, "a"), (2, "b")]);
        let (t, v) = (Path::new("train.json"), Path::new("val.json"));
        train
            .check_same_categories(t, &ds(&[(1, "a"), (2, "b")]), v)
            .unwrap();
        let err = train
            .check_same_categories(t, &ds(&[(1, "a"), (3, "b")]), v)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("val.json: categories differ from train.json's"),
            "{err}"
        );
        assert!(err.contains(r#"label 1: id 2 "b" vs id 3 "b""#), "{err}");
        // Same ids, other name; and a missing category.
        let err = train
            .check_same_categories(t, &ds(&[(1, "a"), (2, "x")]), v)
            .unwrap_err()
            .to_string();
        assert!(err.contains(r#"id 2 "b" vs id 2 "x""#), "{err}");
        let err = train
            .check_same_categories(t, &ds(&[(1, "a")]), v)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(r#"2 vs 1 categories; label 1: id 2 "b" vs none"#),
            "{err}"
        );
    }
}
