//! Synthetic object-detection benchmark: the zero-download default dataset.
//!
//! [`generate`] writes a train and a val split in COCO instances format:
//!
//! ```text
//! OUT/train.json   OUT/train/000000.png ...
//! OUT/val.json     OUT/val/000000.png ...
//! OUT/synth_config.json   (the SynthConfig used, for reproduction)
//! ```
//!
//! `file_name` in the JSON is relative to the split's image folder
//! (`OUT/train/`, `OUT/val/`), as in COCO. Category ids are `1..=classes`,
//! image and annotation ids start at 1 in each file. Existing files are
//! overwritten; files of an earlier, larger run are not deleted.
//!
//! # Content
//!
//! * **Classes** ([`CLASS_NAMES`]; the default 8 are disc, ring, triangle, square,
//!   cross, star, diamond, ellipse; up to 4 more with `classes > 8`: hexagon,
//!   crescent, arrow, chevron). Classes differ in *shape*; each also has a usual
//!   texture (solid, stripes, checker, dots, gradient or noise) worn 70 % of the
//!   time, while colours are random for every object, so colour alone says
//!   nothing. Some classes are deliberately alike: disc / ellipse / ring (a ring's
//!   hole vanishes at small size, disc and ellipse share the gradient texture)
//!   and square / diamond (shared checker texture, the diamond is a rhombus with
//!   unequal diagonals).
//! * **Sizes**: 40 % small (area < 32²), 35 % medium (< 96²), 25 % large, as
//!   COCO, at the reference size 320; object sizes scale with `size / 320`.
//!   3–12 objects per image, boxes overlapping by at most 55 % of the smaller.
//! * **Occlusion**: later items are drawn on top. A per-pixel owner mask gives
//!   each object's visible fraction; objects more than `max_occlusion` (70 %)
//!   hidden are not annotated. Boxes are *amodal* (the whole shape's box).
//! * **Clutter** that is no class (lines, scribbles, wobbly blobs, shapes cut
//!   roughly in half), drawn between the objects so it also occludes them.
//! * **Backgrounds**: fractal noise, linear/radial gradients, random stripes,
//!   tiles. **Camera**: contrast 0.75–1.25, brightness ±0.1, Gaussian blur
//!   (σ 0.3–0.9 px, 60 % of images), sensor noise (σ 0.3–2.5 %).
//! * **Domain shift** (`shift = true`): same classes, objects and camera, but the
//!   backgrounds come from two other families (Voronoi "cobblestone" cells and
//!   turbulent marble veins) and every image gets a warm colour cast
//!   ([`SHIFT_CAST_GAIN`] per channel, ±0.03, then [`SHIFT_CAST_OFFSET`]).
//! * **Crowds** (`crowd_prob`, default 0): with that probability per image, a
//!   dense cluster of 8–20 small objects of one class (5–12 px at size 320) is
//!   annotated as a single `iscrowd = 1` box, the union of the members' boxes;
//!   members get no individual annotation. Like other boxes its `area` is
//!   `w * h` (COCO would use the mask area); the evaluator ignores crowds.
//!
//! # Determinism
//!
//! Same config → byte-identical files (on one platform/binary). Every image is
//! generated from its own seed, derived by hashing `(seed, split, shift, index)`,
//! so train and val (and shifted vs unshifted sets) use disjoint streams and the
//! parallel generation order does not matter. Box coordinates are snapped to
//! quarter pixels, so `area == w * h` exactly.

mod camera;
mod rng;
mod scene;
mod shapes;
mod texture;
mod writer;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use camera::{SHIFT_CAST_GAIN, SHIFT_CAST_OFFSET};
pub use scene::{MEDIUM_AREA, REFERENCE_SIZE, SIZE_MIX, SMALL_AREA};
pub use shapes::{CLASS_NAMES, DEFAULT_CLASSES, MAX_CLASSES};

use rng::{mix, Rng};
use writer::{CocoAnnotation, CocoCategory, CocoFile, CocoImage, CocoInfo};

/// Image shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aspect {
    /// `size × size`.
    #[default]
    Square,
    /// Width/height ratio log-uniform in `[0.75, 4/3]`, long side = `size`.
    Random,
}

/// Image file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// Lossless PNG (`.png`).
    #[default]
    Png,
    /// JPEG (`.jpg`) at [`SynthConfig::jpeg_quality`].
    Jpeg,
}

impl ImageFormat {
    /// File extension without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
            ImageFormat::Jpeg => "jpg",
        }
    }
}

/// Dataset split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// Training images.
    Train,
    /// Validation images.
    Val,
}

impl Split {
    /// `"train"` or `"val"`: the JSON file stem and image folder name.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
        }
    }
}

/// Generator settings. `Default` is the benchmark: 2000 train + 500 val images
/// of 320×320, 8 classes, seed 0.
///
/// Deserialises from JSON/TOML with every field optional (missing fields take
/// the defaults) and unknown fields rejected.
///
/// ```
/// use crosskd_trainer::data::synth::SynthConfig;
/// let cfg: SynthConfig = serde_json::from_str(r#"{"train": 100, "shift": true}"#).unwrap();
/// assert_eq!((cfg.train, cfg.val, cfg.size, cfg.shift), (100, 500, 320, true));
/// assert!(serde_json::from_str::<SynthConfig>(r#"{"trian": 1}"#).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SynthConfig {
    /// Number of training images.
    pub train: usize,
    /// Number of validation images.
    pub val: usize,
    /// Image size in pixels (the long side with [`Aspect::Random`]), 32..=4096.
    pub size: u32,
    /// Global seed.
    pub seed: u64,
    /// Number of classes, 1..=[`MAX_CLASSES`] (the first `classes` of
    /// [`CLASS_NAMES`]).
    pub classes: usize,
    /// Square or random-aspect images.
    pub aspect: Aspect,
    /// Domain-shifted variant (other backgrounds, warm colour cast).
    pub shift: bool,
    /// Per-image probability of one crowd region (`iscrowd = 1`), in `[0, 1]`.
    pub crowd_prob: f32,
    /// Fewest objects sampled per image (before occlusion filtering).
    pub min_objects: u32,
    /// Most objects sampled per image.
    pub max_objects: u32,
    /// Fewest clutter shapes per image.
    pub min_clutter: u32,
    /// Most clutter shapes per image.
    pub max_clutter: u32,
    /// Objects hidden by more than this fraction are not annotated, in `[0, 1]`.
    pub max_occlusion: f32,
    /// Image file format.
    pub format: ImageFormat,
    /// JPEG quality, 1..=100 (JPEG only).
    pub jpeg_quality: u8,
    /// Object-size multiplier on top of the image-size scaling, in `[0.25, 4]`:
    /// 1 keeps COCO's size mix at this image size; above 1, objects are larger
    /// relative to the image (at most 0.7 of its short side), which keeps tiny
    /// images learnable in a few minutes (`crosskd quickstart`).
    pub object_scale: f32,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            train: 2000,
            val: 500,
            size: 320,
            seed: 0,
            classes: DEFAULT_CLASSES,
            aspect: Aspect::Square,
            shift: false,
            crowd_prob: 0.0,
            min_objects: 3,
            max_objects: 12,
            min_clutter: 2,
            max_clutter: 8,
            max_occlusion: 0.7,
            format: ImageFormat::Png,
            jpeg_quality: 92,
            object_scale: 1.0,
        }
    }
}

impl SynthConfig {
    /// Check ranges; the error says which field is wrong.
    pub fn validate(&self) -> Result<(), SynthError> {
        let bad = |msg: String| Err(SynthError::InvalidConfig(msg));
        if !(32..=4096).contains(&self.size) {
            return bad(format!("size must be in 32..=4096, got {}", self.size));
        }
        if !(1..=MAX_CLASSES).contains(&self.classes) {
            return bad(format!(
                "classes must be in 1..={MAX_CLASSES}, got {}",
                self.classes
            ));
        }
        if !(0.0..=1.0).contains(&self.crowd_prob) {
            return bad(format!(
                "crowd_prob must be in [0, 1], got {}",
                self.crowd_prob
            ));
        }
        if !(0.0..=1.0).contains(&self.max_occlusion) {
            return bad(format!(
                "max_occlusion must be in [0, 1], got {}",
                self.max_occlusion
            ));
        }
        if self.min_objects > self.max_objects || self.max_objects > 200 {
            return bad(format!(
                "need min_objects <= max_objects <= 200, got {}..={}",
                self.min_objects, self.max_objects
            ));
        }
        if self.min_clutter > self.max_clutter || self.max_clutter > 200 {
            return bad(format!(
                "need min_clutter <= max_clutter <= 200, got {}..={}",
                self.min_clutter, self.max_clutter
            ));
        }
        if !(0.25..=4.0).contains(&self.object_scale) {
            return bad(format!(
                "object_scale must be in [0.25, 4], got {}",
                self.object_scale
            ));
        }
        if !(1..=100).contains(&self.jpeg_quality) {
            return bad(format!(
                "jpeg_quality must be in 1..=100, got {}",
                self.jpeg_quality
            ));
        }
        Ok(())
    }

    /// Category names, in id order (id = index + 1).
    pub fn category_names(&self) -> Vec<String> {
        CLASS_NAMES[..self.classes.min(MAX_CLASSES)]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// Image-size scale relative to [`REFERENCE_SIZE`].
    fn scale(&self) -> f32 {
        self.size as f32 / REFERENCE_SIZE
    }
}

/// Errors of [`generate`]; I/O errors name the path.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A config field is out of range.
    #[error("invalid synth config: {0}")]
    InvalidConfig(String),
    /// The output directory (or a split folder) cannot be created.
    #[error("cannot create output directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// An image cannot be encoded.
    #[error("cannot encode image {}: {source}", path.display())]
    Encode {
        /// The image file.
        path: PathBuf,
        /// The cause.
        source: image::ImageError,
    },
    /// A JSON file cannot be serialised.
    #[error("cannot serialise {}: {source}", path.display())]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
}

/// One annotation of a [`SynthImage`], in COCO terms.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthAnnotation {
    /// Category id, `1..=classes`.
    pub category_id: u64,
    /// Amodal box `[x, y, w, h]` in pixels (quarter-pixel grid, inside the image).
    pub bbox: [f64; 4],
    /// `w * h`.
    pub area: f64,
    /// 1 for a crowd region.
    pub iscrowd: u8,
}

/// One generated image in memory (what [`generate`] writes to disk).
#[derive(Debug, Clone)]
pub struct SynthImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Interleaved 8-bit RGB, row-major.
    pub rgb: Vec<u8>,
    /// The annotations (objects that stayed visible enough, and crowds).
    pub annotations: Vec<SynthAnnotation>,
    /// Objects that were drawn but not annotated because they were hidden by
    /// more than `max_occlusion`.
    pub dropped_occluded: usize,
}

/// Seed of image `index` of `split`.
fn image_seed(cfg: &SynthConfig, split: Split, index: u64) -> u64 {
    let split_tag = match split {
        Split::Train => 0x7472_6169_6E00_0001,
        Split::Val => 0x7661_6C00_0000_0002,
    };
    let split_seed = mix(mix(cfg.seed, split_tag), u64::from(cfg.shift) + 0x5348);
    mix(split_seed, index)
}

/// Render image `index` of `split` in memory, exactly as [`generate`] would
/// write it (the config is not validated here; call
/// [`SynthConfig::validate`] first).
///
/// ```
/// use crosskd_trainer::data::synth::{render_image, Split, SynthConfig};
/// let cfg = SynthConfig { size: 64, ..SynthConfig::default() };
/// let img = render_image(&cfg, Split::Train, 0);
/// assert_eq!((img.width, img.height, img.rgb.len()), (64, 64, 64 * 64 * 3));
/// ```
pub fn render_image(cfg: &SynthConfig, split: Split, index: u64) -> SynthImage {
    let seed = image_seed(cfg, split, index);
    let mut rng = Rng::new(mix(seed, 1));
    let (width, height) = match cfg.aspect {
        Aspect::Square => (cfg.size, cfg.size),
        Aspect::Random => {
            let r = rng.log_range(0.75, 4.0 / 3.0);
            let short = ((cfg.size as f32 / r.max(1.0 / r)).round() as u32).max(1);
            if r >= 1.0 {
                (cfg.size, short)
            } else {
                (short, cfg.size)
            }
        }
    };
    let layout = scene::sample_layout(cfg, &mut rng, width, height);
    let rendered = scene::render(&layout, &mut Rng::new(mix(seed, 2)));
    SynthImage {
        width: rendered.width,
        height: rendered.height,
        rgb: rendered.rgb,
        annotations: rendered
            .annotations
            .iter()
            .map(|a| SynthAnnotation {
                category_id: a.class as u64 + 1,
                bbox: a.bbox,
                area: a.bbox[2] * a.bbox[3],
                iscrowd: u8::from(a.crowd),
            })
            .collect(),
        dropped_occluded: rendered.dropped,
    }
}

/// What one split's files contain.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitSummary {
    /// The COCO JSON file (`OUT/<split>.json`).
    pub annotation_file: PathBuf,
    /// The image folder (`OUT/<split>/`).
    pub image_dir: PathBuf,
    /// Images written.
    pub images: usize,
    /// Object annotations (`iscrowd = 0`).
    pub objects: usize,
    /// Crowd annotations (`iscrowd = 1`).
    pub crowds: usize,
    /// Objects drawn but left unannotated for being too occluded.
    pub dropped_occluded: usize,
    /// Small / medium / large object counts (COCO's area thresholds scaled by
    /// `size / 320`, i.e. exactly COCO's at the default size).
    pub size_mix: [usize; 3],
}

/// Result of [`generate`].
#[derive(Debug, Clone, PartialEq)]
pub struct SynthSummary {
    /// The output directory.
    pub out_dir: PathBuf,
    /// The training split.
    pub train: SplitSummary,
    /// The validation split.
    pub val: SplitSummary,
    /// Category names, in id order.
    pub categories: Vec<String>,
    /// Wall time of the whole generation.
    pub elapsed: Duration,
}

impl SynthSummary {
    /// Images written in both splits.
    pub fn images(&self) -> usize {
        self.train.images + self.val.images
    }

    /// Generation throughput.
    pub fn images_per_sec(&self) -> f64 {
        self.images() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn create_dir(path: &Path) -> Result<(), SynthError> {
    std::fs::create_dir_all(path).map_err(|source| SynthError::CreateDir {
        path: path.to_path_buf(),
        source,
    })
}

/// Generate the dataset described by `cfg` into `out` (created if missing):
/// `train.json`, `val.json`, `train/`, `val/` and `synth_config.json`. Images
/// are generated in parallel (rayon) yet deterministically; `progress` shows a
/// progress bar on stderr (hidden when stderr is not a terminal).
///
/// ```
/// use crosskd_trainer::data::synth::{generate, SynthConfig};
///
/// let out = std::env::temp_dir().join(format!("crosskd-synth-doc-{}", std::process::id()));
/// let cfg = SynthConfig { train: 2, val: 0, size: 64, ..SynthConfig::default() };
/// let summary = generate(&cfg, &out, false)?;
/// assert_eq!(summary.train.images, 2);
/// assert!(out.join("train.json").is_file() && out.join("train/000001.png").is_file());
/// std::fs::remove_dir_all(&out)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn generate(cfg: &SynthConfig, out: &Path, progress: bool) -> Result<SynthSummary, SynthError> {
    cfg.validate()?;
    let start = Instant::now();
    create_dir(out)?;
    let bar = if progress {
        let bar = ProgressBar::new((cfg.train + cfg.val) as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>5} [{wide_bar}] {pos}/{len} images, {per_sec}, eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let train = write_split(cfg, out, Split::Train, cfg.train, &bar)?;
    let val = write_split(cfg, out, Split::Val, cfg.val, &bar)?;
    writer::write_json(&out.join("synth_config.json"), cfg, true)?;
    bar.finish_and_clear();
    Ok(SynthSummary {
        out_dir: out.to_path_buf(),
        train,
        val,
        categories: cfg.category_names(),
        elapsed: start.elapsed(),
    })
}

/// What [`write_split`] keeps of an image once its file is written: the JSON
/// entry's fields, without the pixels.
struct WrittenImage {
    file_name: String,
    width: u32,
    height: u32,
    annotations: Vec<SynthAnnotation>,
    dropped_occluded: usize,
}

fn write_split(
    cfg: &SynthConfig,
    out: &Path,
    split: Split,
    count: usize,
    bar: &ProgressBar,
) -> Result<SplitSummary, SynthError> {
    let image_dir = out.join(split.name());
    create_dir(&image_dir)?;
    bar.set_message(split.name());
    // Each closure writes its image and returns only what the JSON needs: the
    // pixels are dropped right after encoding, so memory stays bounded by the
    // images in flight (one per thread), not the split size.
    let per_image = (0..count)
        .into_par_iter()
        .map(|i| {
            let img = render_image(cfg, split, i as u64);
            let file_name = writer::image_file_name(i, cfg.format);
            writer::write_image(
                &image_dir.join(&file_name),
                img.width,
                img.height,
                &img.rgb,
                cfg.format,
                cfg.jpeg_quality,
            )?;
            bar.inc(1);
            Ok(WrittenImage {
                file_name,
                width: img.width,
                height: img.height,
                annotations: img.annotations,
                dropped_occluded: img.dropped_occluded,
            })
        })
        .collect::<Result<Vec<_>, SynthError>>()?;

    let k = cfg.scale();
    let mut summary = SplitSummary {
        annotation_file: out.join(format!("{}.json", split.name())),
        image_dir,
        images: count,
        objects: 0,
        crowds: 0,
        dropped_occluded: 0,
        size_mix: [0; 3],
    };
    let mut images = Vec::with_capacity(count);
    let mut annotations = Vec::new();
    for (i, img) in per_image.into_iter().enumerate() {
        let image_id = i as u64 + 1;
        images.push(CocoImage {
            id: image_id,
            file_name: img.file_name,
            width: img.width,
            height: img.height,
        });
        summary.dropped_occluded += img.dropped_occluded;
        for a in img.annotations {
            if a.iscrowd == 1 {
                summary.crowds += 1;
            } else {
                summary.objects += 1;
                summary.size_mix[scene::size_bin(a.area, k)] += 1;
            }
            annotations.push(CocoAnnotation {
                id: annotations.len() as u64 + 1,
                image_id,
                category_id: a.category_id,
                bbox: a.bbox,
                area: a.area,
                iscrowd: a.iscrowd,
            });
        }
    }
    let file = CocoFile {
        info: CocoInfo {
            description: "crosskd synthetic detection benchmark".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            split: split.name().into(),
            seed: cfg.seed,
            shift: cfg.shift,
        },
        images,
        annotations,
        categories: cfg
            .category_names()
            .into_iter()
            .enumerate()
            .map(|(i, name)| CocoCategory {
                id: i as u64 + 1,
                name,
            })
            .collect(),
    };
    writer::write_json(&summary.annotation_file, &file, false)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("crosskd-synth-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        p
    }

    fn tiny(seed: u64) -> SynthConfig {
        SynthConfig {
            train: 4,
            val: 2,
            size: 64,
            seed,
            ..SynthConfig::default()
        }
    }

    fn read_tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        for sub in ["", "train", "val"] {
            let d = dir.join(sub);
            let mut names: Vec<_> = std::fs::read_dir(&d)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.is_file())
                .collect();
            names.sort();
            for p in names {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                files.push((rel, std::fs::read(&p).unwrap()));
            }
        }
        files
    }

    #[test]
    fn same_seed_gives_byte_identical_files() {
        let (a, b, c) = (tmp("det-a"), tmp("det-b"), tmp("det-c"));
        generate(&tiny(11), &a, false).unwrap();
        generate(&tiny(11), &b, false).unwrap();
        generate(&tiny(12), &c, false).unwrap();
        let (fa, fb, fc) = (read_tree(&a), read_tree(&b), read_tree(&c));
        assert_eq!(
            fa.len(),
            3 + 4 + 2,
            "{:?}",
            fa.iter().map(|f| &f.0).collect::<Vec<_>>()
        );
        assert!(fa == fb, "same seed must give identical files");
        let differing = fa.iter().zip(&fc).filter(|(x, y)| x.1 != y.1).count();
        assert!(differing >= 4 + 2, "another seed must change the images");
        // Train and val draw from different streams.
        let img =
            |f: &[(String, Vec<u8>)], name: &str| f.iter().find(|x| x.0 == name).unwrap().1.clone();
        let (train0, val0) = (
            img(
                &fa,
                &format!("train{}000000.png", std::path::MAIN_SEPARATOR),
            ),
            img(&fa, &format!("val{}000000.png", std::path::MAIN_SEPARATOR)),
        );
        assert_ne!(train0, val0);
        for d in [a, b, c] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }

    #[test]
    fn written_json_parses_and_annotations_are_sane() {
        let out = tmp("sane");
        let cfg = SynthConfig {
            train: 6,
            val: 3,
            size: 96,
            aspect: Aspect::Random,
            crowd_prob: 0.5,
            classes: 12,
            format: ImageFormat::Jpeg,
            ..SynthConfig::default()
        };
        let summary = generate(&cfg, &out, false).unwrap();
        assert_eq!(summary.images(), 9);
        for (split, s) in [("train", &summary.train), ("val", &summary.val)] {
            let bytes = std::fs::read(&s.annotation_file).unwrap();
            // Generic JSON first, then the exact schema.
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert!(v["images"].is_array() && v["annotations"].is_array());
            let file: CocoFile = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(file.info.split, split);
            assert_eq!(file.images.len(), s.images);
            assert_eq!(file.annotations.len(), s.objects + s.crowds);
            let cats: HashSet<u64> = file.categories.iter().map(|c| c.id).collect();
            assert_eq!(cats, (1..=12).collect());
            assert_eq!(file.categories[1].name, "ring");
            let mut image_ids = HashSet::new();
            let mut sizes = std::collections::HashMap::new();
            for im in &file.images {
                assert!(image_ids.insert(im.id));
                assert_eq!(im.width.max(im.height), 96);
                assert!(im.width.min(im.height) >= 72);
                let decoded = image::open(s.image_dir.join(&im.file_name)).unwrap();
                assert_eq!((decoded.width(), decoded.height()), (im.width, im.height));
                sizes.insert(im.id, (f64::from(im.width), f64::from(im.height)));
            }
            let mut ann_ids = HashSet::new();
            for a in &file.annotations {
                assert!(ann_ids.insert(a.id), "duplicate annotation id {}", a.id);
                let (w, h) = sizes[&a.image_id];
                let [x, y, bw, bh] = a.bbox;
                assert!(bw > 0.0 && bh > 0.0, "{a:?}");
                assert!(
                    x >= 0.0 && y >= 0.0 && x + bw <= w && y + bh <= h,
                    "{a:?} in {w}x{h}"
                );
                assert_eq!(a.area, bw * bh);
                assert!(cats.contains(&a.category_id));
                assert!(a.iscrowd <= 1);
            }
            // The project's own COCO loader accepts the file.
            let ds = crate::data::coco::load_gt(&s.annotation_file).unwrap();
            assert_eq!(ds.annotations.len(), file.annotations.len());
        }
        let cfg_back: SynthConfig =
            serde_json::from_slice(&std::fs::read(out.join("synth_config.json")).unwrap()).unwrap();
        assert_eq!(cfg_back, cfg);
        std::fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn size_mix_of_200_images_matches_coco() {
        let cfg = SynthConfig::default();
        let bins: Vec<[usize; 3]> = (0..200u64)
            .into_par_iter()
            .map(|i| {
                let mut b = [0; 3];
                for a in render_image(&cfg, Split::Train, i).annotations {
                    b[scene::size_bin(a.area, 1.0)] += 1;
                }
                b
            })
            .collect();
        let total: [usize; 3] = bins
            .iter()
            .fold([0; 3], |t, b| [t[0] + b[0], t[1] + b[1], t[2] + b[2]]);
        let n = (total[0] + total[1] + total[2]) as f32;
        assert!(
            n > 200.0 * 5.0,
            "about 7 objects per image expected, got {n}"
        );
        for (i, target) in SIZE_MIX.iter().enumerate() {
            let share = total[i] as f32 / n;
            assert!(
                (share - target).abs() < 0.05,
                "bin {i}: {share:.3} vs {target} ({total:?})"
            );
        }
    }

    #[test]
    fn crowds_shift_and_aspect() {
        let cfg = SynthConfig {
            size: 128,
            crowd_prob: 1.0,
            ..SynthConfig::default()
        };
        let mut crowds = 0;
        for i in 0..6 {
            let img = render_image(&cfg, Split::Val, i);
            let c: Vec<_> = img.annotations.iter().filter(|a| a.iscrowd == 1).collect();
            assert!(c.len() <= 1);
            crowds += c.len();
        }
        assert!(
            crowds >= 4,
            "crowd_prob = 1 should give a crowd in most images"
        );

        // The shifted variant has a warm cast: red above blue on average.
        let warmth = |shift: bool| {
            let cfg = SynthConfig {
                size: 48,
                shift,
                ..SynthConfig::default()
            };
            (0..12)
                .map(|i| {
                    let img = render_image(&cfg, Split::Train, i);
                    img.rgb
                        .chunks(3)
                        .map(|p| f64::from(p[0]) - f64::from(p[2]))
                        .sum::<f64>()
                        / (img.rgb.len() / 3) as f64
                })
                .sum::<f64>()
                / 12.0
        };
        assert!(warmth(true) > warmth(false) + 20.0);

        let cfg = SynthConfig {
            size: 100,
            aspect: Aspect::Random,
            ..SynthConfig::default()
        };
        let mut shapes = HashSet::new();
        for i in 0..20 {
            let img = render_image(&cfg, Split::Train, i);
            assert_eq!(img.width.max(img.height), 100);
            let r = f64::from(img.width) / f64::from(img.height);
            assert!((0.74..=1.34).contains(&r), "{r}");
            shapes.insert((img.width, img.height));
        }
        assert!(shapes.len() > 5);

        // The smallest allowed size still yields valid scenes.
        let cfg = SynthConfig {
            size: 32,
            aspect: Aspect::Random,
            crowd_prob: 0.5,
            ..SynthConfig::default()
        };
        for i in 0..20 {
            let img = render_image(&cfg, Split::Train, i);
            for a in &img.annotations {
                let [x, y, w, h] = a.bbox;
                assert!(w > 0.0 && h > 0.0 && x >= 0.0 && y >= 0.0);
                assert!(x + w <= f64::from(img.width) && y + h <= f64::from(img.height));
            }
        }
    }

    #[test]
    fn bad_config_and_unwritable_output_are_reported() {
        let cfg = SynthConfig {
            classes: 0,
            ..tiny(0)
        };
        let err = generate(&cfg, &tmp("bad"), false).unwrap_err();
        assert!(err.to_string().contains("classes"), "{err}");

        // A regular file where the output directory should be.
        let file = tmp("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let out = file.join("sub");
        let err = generate(&tiny(0), &out, false).unwrap_err();
        assert!(matches!(err, SynthError::CreateDir { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&out.display().to_string()),
            "{err}"
        );
        std::fs::remove_file(&file).unwrap();

        assert!(serde_json::from_str::<SynthConfig>(r#"{"size": 64, "colour": 1}"#).is_err());
        let cfg = SynthConfig {
            object_scale: 0.1,
            ..tiny(0)
        };
        let err = generate(&cfg, &tmp("bad-scale"), false).unwrap_err();
        assert!(err.to_string().contains("object_scale"), "{err}");
    }

    #[test]
    fn object_scale_makes_objects_larger() {
        let mean_area = |object_scale: f32| {
            let cfg = SynthConfig {
                object_scale,
                size: 96,
                ..tiny(3)
            };
            let (mut sum, mut n) = (0.0, 0usize);
            for i in 0..24 {
                for a in render_image(&cfg, Split::Train, i).annotations {
                    sum += a.area;
                    n += 1;
                }
            }
            sum / n.max(1) as f64
        };
        let (plain, scaled) = (mean_area(1.0), mean_area(2.0));
        assert!(scaled > 2.0 * plain, "mean area {plain} -> {scaled}");
    }
}
