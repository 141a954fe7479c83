//! Per-image transforms: decode → keep-ratio resize (fixed, random choice or
//! random short-edge range) → random horizontal flip → normalise, with the
//! boxes transformed consistently. Padding happens at collation.

use std::path::{Path, PathBuf};

use crosskd_sdk::boxes::{self, BBox};
use crosskd_sdk::preprocess::{pad_to_multiple, rescale_size, resize_normalize, Normalization};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::batch::ImageMeta;
use super::dataset::ImageRecord;

/// `[data.train_pipeline]` / `[data.val_pipeline]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// `(long_edge, short_edge)` targets; with several, one is drawn per image
    /// (MMDet `RandomChoiceResize`, e.g. FCOS's (1333, 640) / (1333, 800)).
    pub scales: Vec<(usize, usize)>,
    /// Multi-scale range: draw the short edge uniformly in `[lo, hi]` (long edge
    /// from `scales[0]`), as MMDet's `RandomResize` with a scale range.
    #[serde(default)]
    pub short_edge_range: Option<(usize, usize)>,
    /// Probability of a horizontal flip.
    #[serde(default)]
    pub flip_prob: f32,
    /// Input normalisation.
    #[serde(default = "Normalization::pytorch")]
    pub norm: Normalization,
    /// Pad each image (and the batch) to a multiple of this.
    #[serde(default = "default_divisor")]
    pub pad_divisor: usize,
}

fn default_divisor() -> usize {
    32
}

impl PipelineConfig {
    /// Test-time pipeline: one fixed scale, no flip.
    pub fn test(scale: (usize, usize)) -> Self {
        Self {
            scales: vec![scale],
            short_edge_range: None,
            flip_prob: 0.0,
            norm: Normalization::pytorch(),
            pad_divisor: 32,
        }
    }

    /// Training pipeline of the paper's 1x schedules: one scale, flip 0.5.
    pub fn train(scale: (usize, usize)) -> Self {
        Self {
            flip_prob: 0.5,
            ..Self::test(scale)
        }
    }

    /// Check values; errors name the field.
    pub fn validate(&self, section: &str) -> Result<(), String> {
        if self.scales.is_empty() || self.scales.iter().any(|s| s.0 == 0 || s.1 == 0) {
            return Err(format!(
                "{section}.scales must hold at least one (long, short) pair of positive sizes"
            ));
        }
        if let Some((lo, hi)) = self.short_edge_range {
            if lo == 0 || lo > hi {
                return Err(format!(
                    "{section}.short_edge_range = ({lo}, {hi}) must satisfy 0 < lo <= hi"
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.flip_prob) {
            return Err(format!(
                "{section}.flip_prob = {} must be in [0, 1]",
                self.flip_prob
            ));
        }
        if self.pad_divisor == 0 {
            return Err(format!("{section}.pad_divisor must be positive"));
        }
        if self.norm.std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
            return Err(format!("{section}.norm.std must be finite and non-zero"));
        }
        Ok(())
    }

    fn draw_scale(&self, rng: &mut impl Rng) -> (usize, usize) {
        match self.short_edge_range {
            Some((lo, hi)) => (
                self.scales[0].0.max(self.scales[0].1),
                rng.random_range(lo..=hi),
            ),
            None if self.scales.len() == 1 => self.scales[0],
            None => self.scales[rng.random_range(0..self.scales.len())],
        }
    }
}

/// A transformed image, CHW `f32`, not yet padded.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Normalised pixels, `3 × h × w`.
    pub chw: Vec<f32>,
    /// Height after resizing.
    pub h: usize,
    /// Width after resizing.
    pub w: usize,
    /// Geometry and transformed annotations.
    pub meta: ImageMeta,
}

/// An image that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file cannot be read.
    #[error("{path}: cannot read image: {source}")]
    Io {
        /// Image path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The bytes are not a decodable PNG/JPEG.
    #[error("{path}: cannot decode image ({message}); the file is corrupt or not a PNG/JPEG")]
    Decode {
        /// Image path.
        path: PathBuf,
        /// Decoder message.
        message: String,
    },
    /// The decoded size is not the `width`/`height` the annotation file declares.
    #[error(
        "{path}: decoded size is {width}x{height} (width x height) but the annotation file \
         declares `width` = {json_width}, `height` = {json_height}; its boxes were clipped to the \
         declared size, so fix the image's entry in the annotation file (or the image)"
    )]
    SizeMismatch {
        /// Image path.
        path: PathBuf,
        /// `width` in the annotation file.
        json_width: u32,
        /// `height` in the annotation file.
        json_height: u32,
        /// Decoded width.
        width: usize,
        /// Decoded height.
        height: usize,
    },
}

/// Decode any PNG/JPEG (grey, RGBA, 16-bit) to interleaved RGB8: `(pixels, h, w)`.
pub fn load_rgb(path: &Path) -> Result<(Vec<u8>, usize, usize), ImageError> {
    let bytes = std::fs::read(path).map_err(|source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let img = image::load_from_memory(&bytes).map_err(|e| ImageError::Decode {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let rgb = img.to_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    if w == 0 || h == 0 {
        return Err(ImageError::Decode {
            path: path.to_path_buf(),
            message: "image has zero size".into(),
        });
    }
    Ok((rgb.into_raw(), h, w))
}

/// Mirror boxes horizontally in an image of width `w` (MMDet: x1' = w − x2).
pub fn flip_boxes(b: &[BBox], w: f32) -> Vec<BBox> {
    b.iter().map(|b| [w - b[2], b[1], w - b[0], b[3]]).collect()
}

/// Scale boxes by `(sx, sy)` and clip them to `w × h`.
pub fn rescale_boxes(b: &[BBox], sx: f32, sy: f32, w: f32, h: f32) -> Vec<BBox> {
    b.iter()
        .map(|b| boxes::clip(&[b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy], w, h))
        .collect()
}

/// Flip a CHW image horizontally in place.
pub fn flip_chw(chw: &mut [f32], h: usize, w: usize) {
    for row in chw.chunks_exact_mut(w).take(3 * h) {
        row.reverse();
    }
}

/// Transform an already decoded RGB8 image with its record.
pub fn transform(
    rgb: &[u8],
    src_h: usize,
    src_w: usize,
    record: &ImageRecord,
    cfg: &PipelineConfig,
    rng: &mut impl Rng,
) -> Sample {
    let scale = cfg.draw_scale(rng);
    let (h, w, (sx, sy)) = rescale_size(src_h, src_w, scale);
    let mut chw = resize_normalize(rgb, src_h, src_w, h, w, &cfg.norm);
    // Annotations are in the decoded image's pixels ([`load_sample`] rejects
    // files whose size differs from the declared one).
    let (wf, hf) = (w as f32, h as f32);
    let mut gt = rescale_boxes(&record.boxes, sx, sy, wf, hf);
    let mut ignore = rescale_boxes(&record.ignore, sx, sy, wf, hf);
    if cfg.flip_prob > 0.0 && rng.random::<f32>() < cfg.flip_prob {
        flip_chw(&mut chw, h, w);
        gt = flip_boxes(&gt, wf);
        ignore = flip_boxes(&ignore, wf);
    }
    let meta = ImageMeta {
        image_id: record.id,
        img_shape: (h, w),
        pad_shape: (
            pad_to_multiple(h, cfg.pad_divisor),
            pad_to_multiple(w, cfg.pad_divisor),
        ),
        scale_factor: (sx, sy),
        gt_boxes: gt,
        gt_labels: record.labels.clone(),
        gt_ignore: ignore,
    };
    Sample { chw, h, w, meta }
}

/// Decode and transform one record. A file whose decoded size differs from the
/// record's declared `width`/`height` is an error (the loader skips and counts
/// it): the dataset clipped its boxes to the declared size, so they may not
/// fit the real image.
pub fn load_sample(
    record: &ImageRecord,
    cfg: &PipelineConfig,
    rng: &mut impl Rng,
) -> Result<Sample, ImageError> {
    let (rgb, h, w) = load_rgb(&record.path)?;
    check_size(record, h, w)?;
    Ok(transform(&rgb, h, w, record, cfg, rng))
}

/// `Err(SizeMismatch)` unless the decoded `h × w` is the record's declared size.
fn check_size(record: &ImageRecord, h: usize, w: usize) -> Result<(), ImageError> {
    if (w, h) == (record.width as usize, record.height as usize) {
        return Ok(());
    }
    Err(ImageError::SizeMismatch {
        path: record.path.clone(),
        json_width: record.width,
        json_height: record.height,
        width: w,
        height: h,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn record(boxes: Vec<BBox>) -> ImageRecord {
        ImageRecord {
            id: 7,
            path: PathBuf::from("unused.png"),
            width: 8,
            height: 4,
            labels: vec![0; boxes.len()],
            boxes,
            ignore: vec![],
        }
    }

    /// An 8×4 (w×h) image, black with a white rectangle covering x ∈ [2, 5), y ∈ [1, 3).
    fn image_with_rect() -> Vec<u8> {
        let mut rgb = vec![0u8; 4 * 8 * 3];
        for y in 1..3 {
            for x in 2..5 {
                for c in 0..3 {
                    rgb[(y * 8 + x) * 3 + c] = 255;
                }
            }
        }
        rgb
    }

    /// Pixels of channel 0 above half intensity, as a set of (x, y).
    fn bright(s: &Sample) -> Vec<(usize, usize)> {
        let mut v = vec![];
        for y in 0..s.h {
            for x in 0..s.w {
                if s.chw[y * s.w + x] > 127.5 {
                    v.push((x, y));
                }
            }
        }
        v
    }

    fn covers(b: &BBox, pts: &[(usize, usize)]) -> bool {
        pts.iter().all(|&(x, y)| {
            x as f32 + 0.5 > b[0]
                && x as f32 + 0.5 < b[2]
                && y as f32 + 0.5 > b[1]
                && y as f32 + 0.5 < b[3]
        })
    }

    #[test]
    fn flipped_box_still_covers_the_object() {
        let cfg = PipelineConfig {
            flip_prob: 1.0,
            norm: Normalization::identity(),
            ..PipelineConfig::test((8, 4))
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let s = transform(
            &image_with_rect(),
            4,
            8,
            &record(vec![[2.0, 1.0, 5.0, 3.0]]),
            &cfg,
            &mut rng,
        );
        // Mirrored by hand: x ∈ [8-5, 8-2) = [3, 6).
        assert_eq!(s.meta.gt_boxes[0], [3.0, 1.0, 6.0, 3.0]);
        let pts = bright(&s);
        assert_eq!(pts.len(), 6);
        assert!(covers(&s.meta.gt_boxes[0], &pts));
    }

    #[test]
    fn resized_box_still_covers_the_object() {
        // 8×4 → scale (16, 8): factor min(16/8, 8/4) = 2 → 16×8.
        let cfg = PipelineConfig {
            norm: Normalization::identity(),
            ..PipelineConfig::test((16, 8))
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let s = transform(
            &image_with_rect(),
            4,
            8,
            &record(vec![[2.0, 1.0, 5.0, 3.0]]),
            &cfg,
            &mut rng,
        );
        assert_eq!((s.h, s.w), (8, 16));
        assert_eq!(s.meta.scale_factor, (2.0, 2.0));
        assert_eq!(s.meta.gt_boxes[0], [4.0, 2.0, 10.0, 6.0]);
        assert_eq!(s.meta.pad_shape, (32, 32));
        let pts = bright(&s);
        assert!(!pts.is_empty());
        assert!(covers(&s.meta.gt_boxes[0], &pts), "{pts:?}");
    }

    #[test]
    fn boxes_outside_are_clipped_and_scale_choice_is_seeded() {
        let b = rescale_boxes(&[[-5.0, 2.0, 50.0, 3.0]], 0.5, 0.5, 10.0, 10.0);
        assert_eq!(b[0], [0.0, 1.0, 10.0, 1.5]);
        let cfg = PipelineConfig {
            scales: vec![(100, 50), (100, 60), (100, 70)],
            ..PipelineConfig::train((100, 50))
        };
        let draws = |seed| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            (0..10)
                .map(|_| cfg.draw_scale(&mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(3), draws(3));
        assert!(draws(3).iter().all(|s| cfg.scales.contains(s)));
        let ranged = PipelineConfig {
            short_edge_range: Some((40, 48)),
            ..cfg
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..20 {
            let (l, s) = ranged.draw_scale(&mut rng);
            assert_eq!(l, 100);
            assert!((40..=48).contains(&s));
        }
    }

    #[test]
    fn invalid_config_names_the_field() {
        let mut cfg = PipelineConfig::train((100, 50));
        cfg.flip_prob = 2.0;
        assert!(cfg
            .validate("data.train_pipeline")
            .unwrap_err()
            .contains("data.train_pipeline.flip_prob"));
        cfg.flip_prob = 0.5;
        cfg.scales.clear();
        assert!(cfg.validate("x").unwrap_err().contains("x.scales"));
    }

    #[test]
    fn declared_size_must_match_the_decoded_size() {
        let dir =
            std::env::temp_dir().join(format!("crosskd-pipeline-size-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("img.png");
        // An 8×4 (w×h) file, as `record()` declares.
        image::RgbImage::from_raw(8, 4, image_with_rect())
            .unwrap()
            .save(&path)
            .unwrap();
        let cfg = PipelineConfig::test((8, 4));
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let mut rec = ImageRecord {
            path: path.clone(),
            ..record(vec![[2.0, 1.0, 5.0, 3.0]])
        };
        let s = load_sample(&rec, &cfg, &mut rng).unwrap();
        assert_eq!((s.h, s.w), (4, 8));
        // Declared 16×4 but the file is 8×4: the error names the file, both
        // JSON fields and the real size.
        rec.width = 16;
        let err = load_sample(&rec, &cfg, &mut rng).unwrap_err();
        assert!(matches!(err, ImageError::SizeMismatch { .. }), "{err:?}");
        let msg = err.to_string();
        for part in ["img.png", "8x4", "`width` = 16", "`height` = 4"] {
            assert!(msg.contains(part), "{part} missing in: {msg}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn corrupt_and_missing_files_are_named() {
        let dir = std::env::temp_dir().join(format!("crosskd-pipeline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.jpg");
        std::fs::write(&bad, b"\xFF\xD8\xFFnot really a jpeg").unwrap();
        let err = load_rgb(&bad).unwrap_err().to_string();
        assert!(
            err.contains("bad.jpg") && err.contains("cannot decode"),
            "{err}"
        );
        let err = load_rgb(&dir.join("missing.png")).unwrap_err().to_string();
        assert!(err.contains("missing.png"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
