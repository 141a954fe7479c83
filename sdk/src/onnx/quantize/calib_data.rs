//! Calibration images: a folder of PNG/JPEG files, the images of a COCO
//! annotation file, or frames already in memory, letterboxed and normalised by
//! the SDK's own [`Letterbox`] with the model's metadata, so calibration sees
//! exactly the pixels the runtime will feed the network.
//!
//! [`crate::onnx`] shows calibration from frames in memory.

use std::path::{Path, PathBuf};

use image::DynamicImage;

use super::QuantizeError;
use crate::coco::load_gt;
use crate::error::SdkError;
use crate::letterbox::Letterbox;
use crate::metadata::ModelMeta;
use crate::preprocess::Normalization;
use crate::rgb::as_rgb8;
use crate::source::{is_image_path, load_image};

/// Where the calibration images come from.
enum Images {
    /// Files, decoded when needed.
    Files(Vec<PathBuf>),
    /// Decoded frames held by the caller.
    Memory(Vec<DynamicImage>),
}

/// Calibration images plus the runtime's preprocessing.
pub struct CalibSet {
    images: Images,
    letterbox: Letterbox,
    /// Reused RGB conversion buffer.
    scratch: Vec<u8>,
}

/// `n` indices spread evenly over `0..len` (all when `n >= len`).
fn spread(len: usize, n: usize) -> Vec<usize> {
    if n >= len {
        return (0..len).collect();
    }
    (0..n).map(|i| i * len / n).collect()
}

/// The letterbox the runtime builds for `meta`.
fn letterbox(meta: &ModelMeta) -> Letterbox {
    let norm = Normalization {
        mean: meta.mean,
        std: meta.std,
        to_rgb: meta.to_rgb,
    };
    let size = (meta.input_size.0 as usize, meta.input_size.1 as usize);
    Letterbox::new(size, norm)
}

impl CalibSet {
    /// Images from `calib` (a folder, or a COCO JSON whose images are in
    /// `image_dir`, default `<json dir>/<json stem>/` as `crosskd synth` writes them),
    /// at most `num_images` of them spread evenly over the sorted list.
    pub fn from_path(
        calib: &Path,
        image_dir: Option<&Path>,
        num_images: usize,
        meta: &ModelMeta,
    ) -> Result<Self, QuantizeError> {
        let empty = |why: String| QuantizeError::NoCalibrationImages(why);
        let mut paths: Vec<PathBuf> = if calib.is_dir() {
            std::fs::read_dir(calib)
                .map_err(|e| empty(format!("{}: {e}", calib.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_image_path(p))
                .collect()
        } else if calib.is_file() {
            let gt = load_gt(calib).map_err(|e| empty(e.to_string()))?;
            let dir = match image_dir {
                Some(d) => d.to_path_buf(),
                None => {
                    let parent = calib.parent().unwrap_or(Path::new("."));
                    let stem = calib.file_stem().unwrap_or_default();
                    let guess = parent.join(stem);
                    if guess.is_dir() {
                        guess
                    } else {
                        parent.to_path_buf()
                    }
                }
            };
            gt.images.iter().map(|i| dir.join(&i.file_name)).collect()
        } else {
            return Err(empty(format!(
                "{} is neither a folder of images nor a COCO annotation file",
                calib.display()
            )));
        };
        paths.sort();
        if paths.is_empty() {
            return Err(empty(format!(
                "{}: no .png/.jpg/.jpeg images found; pass a folder of representative images (a few hundred from the training set is typical)",
                calib.display()
            )));
        }
        if num_images == 0 {
            return Err(empty("--num-images must be at least 1".into()));
        }
        let paths = spread(paths.len(), num_images)
            .into_iter()
            .map(|i| paths[i].clone())
            .collect();
        Ok(Self {
            images: Images::Files(paths),
            letterbox: letterbox(meta),
            scratch: Vec::new(),
        })
    }

    /// Frames already decoded in memory (e.g. from a camera), all of them used;
    /// any pixel layout [`as_rgb8`] reads. Fails on an empty list or an empty frame.
    pub fn from_images(images: Vec<DynamicImage>, meta: &ModelMeta) -> Result<Self, QuantizeError> {
        if images.is_empty() {
            return Err(QuantizeError::NoCalibrationImages(
                "no images were given".into(),
            ));
        }
        if let Some(i) = images
            .iter()
            .position(|m| m.width() == 0 || m.height() == 0)
        {
            return Err(QuantizeError::NoCalibrationImages(format!(
                "image {i} of {} is empty (0 pixels)",
                images.len()
            )));
        }
        Ok(Self {
            images: Images::Memory(images),
            letterbox: letterbox(meta),
            scratch: Vec::new(),
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        match &self.images {
            Images::Files(p) => p.len(),
            Images::Memory(m) => m.len(),
        }
    }

    /// Whether there are no images (never true for a constructed set).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The network input (CHW, `3·H·W` values) of image `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn input(&mut self, i: usize) -> Result<Vec<f32>, QuantizeError> {
        let decoded;
        let img = match &self.images {
            Images::Memory(m) => &m[i],
            Images::Files(p) => {
                let path = &p[i];
                let bad = |why: String| QuantizeError::Image {
                    path: path.clone(),
                    why,
                };
                decoded = load_image(path).map_err(|e| {
                    bad(match e {
                        SdkError::ImageFile { message, .. } => message,
                        SdkError::Io { source, .. } => source.to_string(),
                        other => other.to_string(),
                    })
                })?;
                if decoded.width() == 0 || decoded.height() == 0 {
                    return Err(bad("image has zero size".into()));
                }
                &decoded
            }
        };
        let (h, w) = (img.height() as usize, img.width() as usize);
        let rgb = as_rgb8(img, &mut self.scratch);
        let (iw, ih) = self.letterbox.input_size();
        let mut out = vec![0.0f32; 3 * iw * ih];
        self.letterbox.run(rgb, h, w, &mut out);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_even_and_bounded() {
        assert_eq!(spread(10, 3), vec![0, 3, 6]);
        assert_eq!(spread(2, 5), vec![0, 1]);
    }

    #[test]
    fn empty_folder_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("crosskd-calib-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let meta = ModelMeta::new(crate::DecodeSpec::fcos(1), vec!["a".into()], (64, 64));
        let err = CalibSet::from_path(&dir, None, 8, &meta)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("no .png/.jpg/.jpeg images"), "{err}");
        let err = CalibSet::from_path(&dir.join("missing"), None, 8, &meta)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("neither a folder"), "{err}");
    }
}
