//! Calibration images: a folder of PNG/JPEG files or the images of a COCO
//! annotation file, letterboxed and normalised by the SDK's own
//! [`Letterbox`](crosskd_sdk::letterbox::Letterbox) with the model's metadata,
//! so calibration sees exactly the pixels the runtime will feed the network.

use std::path::{Path, PathBuf};

use crosskd_sdk::letterbox::Letterbox;
use crosskd_sdk::preprocess::Normalization;
use crosskd_sdk::ModelMeta;

use super::QuantizeError;
use crate::data::coco::load_gt;
use crate::data::pipeline::load_rgb;

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

/// Calibration image paths plus the runtime's preprocessing.
pub struct CalibSet {
    paths: Vec<PathBuf>,
    letterbox: Letterbox,
}

/// `n` indices spread evenly over `0..len` (all when `n >= len`).
fn spread(len: usize, n: usize) -> Vec<usize> {
    if n >= len {
        return (0..len).collect();
    }
    (0..n).map(|i| i * len / n).collect()
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
                .filter(|p| is_image(p))
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
        let norm = Normalization {
            mean: meta.mean,
            std: meta.std,
            to_rgb: meta.to_rgb,
        };
        let size = (meta.input_size.0 as usize, meta.input_size.1 as usize);
        Ok(Self {
            paths,
            letterbox: Letterbox::new(size, norm),
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether there are no images (never true for a constructed set).
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// The network input of image `i`.
    pub fn input(&mut self, i: usize) -> Result<Vec<f32>, QuantizeError> {
        let path = &self.paths[i];
        let (rgb, h, w) = load_rgb(path).map_err(|e| QuantizeError::Image {
            path: path.clone(),
            why: e.to_string(),
        })?;
        let (iw, ih) = self.letterbox.input_size();
        let mut out = vec![0.0f32; 3 * iw * ih];
        self.letterbox.run(&rgb, h, w, &mut out);
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
        let meta = ModelMeta::new(crosskd_sdk::DecodeSpec::fcos(1), vec!["a".into()], (64, 64));
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
