//! The local labelled set a board fine-tunes on: a COCO file with its images,
//! or samples an app pushes in (frame + boxes). Everything is checked when it
//! comes in, so a bad set is rejected before any training touches the model.

use std::collections::HashMap;
use std::path::Path;

use image::DynamicImage;

use super::FinetuneError;
use crate::boxes::BBox;
use crate::coco::load_gt;

/// One labelled frame, boxes in the frame's own pixels.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The frame.
    pub image: DynamicImage,
    /// Object boxes `[x1, y1, x2, y2]`.
    pub boxes: Vec<BBox>,
    /// Class id (the model's label index) of each box.
    pub labels: Vec<usize>,
    /// Crowd regions: neither positives nor negatives.
    pub ignore: Vec<BBox>,
    /// Where it came from, for messages (file name or the app's tag).
    pub origin: String,
}

impl Sample {
    /// A frame with `(box, class id)` pairs.
    pub fn new(
        image: DynamicImage,
        objects: Vec<(BBox, usize)>,
        origin: impl Into<String>,
    ) -> Self {
        let (boxes, labels) = objects.into_iter().unzip();
        Self {
            image,
            boxes,
            labels,
            ignore: Vec::new(),
            origin: origin.into(),
        }
    }

    fn check(&self, num_classes: usize) -> Result<(), FinetuneError> {
        let (w, h) = (self.image.width() as f32, self.image.height() as f32);
        if w < 1.0 || h < 1.0 {
            return Err(self.bad("the image is empty".into()));
        }
        if self.boxes.len() != self.labels.len() {
            return Err(self.bad(format!(
                "{} boxes but {} labels",
                self.boxes.len(),
                self.labels.len()
            )));
        }
        for (i, (b, &l)) in self.boxes.iter().zip(&self.labels).enumerate() {
            if l >= num_classes {
                return Err(self.bad(format!(
                    "box {i}: class id {l} is not below the model's {num_classes} classes"
                )));
            }
            let finite = b.iter().all(|v| v.is_finite());
            // Half a pixel of slack for annotation tools that round outwards.
            let inside = b[0] >= -0.5 && b[1] >= -0.5 && b[2] <= w + 0.5 && b[3] <= h + 0.5;
            if !finite || b[2] - b[0] < 1.0 || b[3] - b[1] < 1.0 || !inside {
                return Err(self.bad(format!(
                    "box {i} {b:?} is empty, not finite or outside the {w}x{h} image; fix or drop it"
                )));
            }
        }
        Ok(())
    }

    fn bad(&self, why: String) -> FinetuneError {
        FinetuneError::Data(format!("{}: {why}", self.origin))
    }
}

/// The labelled frames of one fine-tuning run.
#[derive(Debug, Clone)]
pub struct LocalSet {
    samples: Vec<Sample>,
    num_classes: usize,
}

impl LocalSet {
    /// An empty set for a model with `num_classes` classes.
    pub fn new(num_classes: usize) -> Self {
        Self {
            samples: Vec::new(),
            num_classes,
        }
    }

    /// Adds a frame after checking its boxes and class ids.
    pub fn push(&mut self, sample: Sample) -> Result<(), FinetuneError> {
        sample.check(self.num_classes)?;
        self.samples.push(sample);
        Ok(())
    }

    /// Loads a COCO instances file and its images. Local categories are
    /// matched to the model's classes by name (ids differ between datasets;
    /// names are what a person labelling frames picks); any problem — malformed JSON,
    /// a missing or corrupt image, an unknown category, a bad box — rejects the
    /// whole set with a message naming the file and entry.
    pub fn from_coco(
        ann: &Path,
        images: &Path,
        class_names: &[String],
    ) -> Result<Self, FinetuneError> {
        let gt = load_gt(ann).map_err(|e| FinetuneError::Data(e.to_string()))?;
        let mut label_of = HashMap::new();
        for c in &gt.categories {
            let label = class_names
                .iter()
                .position(|n| *n == c.name)
                .ok_or_else(|| {
                    FinetuneError::Data(format!(
                        "{}: category {} `{}` is not one of the model's classes {:?}",
                        ann.display(),
                        c.id,
                        c.name,
                        class_names
                    ))
                })?;
            label_of.insert(c.id, label);
        }
        let mut per_image: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, a) in gt.annotations.iter().enumerate() {
            per_image.entry(a.image_id).or_default().push(i);
        }
        let mut set = Self::new(class_names.len());
        for img in &gt.images {
            let path = images.join(&img.file_name);
            let image = image::open(&path).map_err(|e| {
                FinetuneError::Data(format!(
                    "{} (image id {} in {}): cannot decode: {e}",
                    path.display(),
                    img.id,
                    ann.display()
                ))
            })?;
            if (image.width(), image.height()) != (img.width, img.height) {
                return Err(FinetuneError::Data(format!(
                    "{}: the file is {}x{} but {} says {}x{}",
                    path.display(),
                    image.width(),
                    image.height(),
                    ann.display(),
                    img.width,
                    img.height
                )));
            }
            let mut sample = Sample::new(image, Vec::new(), path.display().to_string());
            for &i in per_image
                .get(&img.id)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let a = &gt.annotations[i];
                let [x, y, w, h] = a.bbox.map(|v| v as f32);
                let b = [x, y, x + w, y + h];
                if a.iscrowd != 0 {
                    sample.ignore.push(b);
                } else {
                    sample.boxes.push(b);
                    sample.labels.push(label_of[&a.category_id]);
                }
            }
            set.push(sample).map_err(|e| {
                FinetuneError::Data(format!("{e} (annotations in {})", ann.display()))
            })?;
        }
        if set.is_empty() {
            return Err(FinetuneError::Data(format!(
                "{}: no images to fine-tune on",
                ann.display()
            )));
        }
        Ok(set)
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// No frames yet.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The frames.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// Number of object boxes over all frames.
    pub fn num_objects(&self) -> usize {
        self.samples.iter().map(|s| s.boxes.len()).sum()
    }
}
