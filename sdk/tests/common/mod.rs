//! Helpers shared by the SDK's integration tests: temp dirs, synthetic models,
//! deterministic images, and the reference pipeline (trainer preprocessing →
//! reference forward → `ModelMeta::postprocess`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use crosskd_sdk::letterbox::fit_size;
use crosskd_sdk::preprocess::{pad_into, resize_normalize, Normalization};
use crosskd_sdk::testing::SyntheticDetector;
use crosskd_sdk::{Detection, LevelOutput, TestConfig};

/// A fresh directory under the target's temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "crosskd-sdk-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A deterministic, textured RGB image.
pub fn image(w: u32, h: u32, seed: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        let v = x.wrapping_mul(31) ^ y.wrapping_mul(17) ^ seed.wrapping_mul(2_654_435_761);
        image::Rgb([
            (v % 251) as u8,
            ((v >> 3) % 241) as u8,
            ((x * 7 + y * 3 + seed) % 256) as u8,
        ])
    })
}

/// Writes `net` into `dir` and returns the path.
pub fn write_model(dir: &TempDir, name: &str, net: &SyntheticDetector) -> PathBuf {
    let path = dir.join(name);
    net.write(&path).unwrap();
    path
}

/// What the trainer's path computes for `img`: preprocessing as evaluation
/// does it, the reference forward pass, and the shared decoder.
pub fn reference_detections(
    net: &SyntheticDetector,
    cfg: &TestConfig,
    img: &image::RgbImage,
) -> Vec<Detection> {
    let meta = net.meta();
    let (in_w, in_h) = (meta.input_size.0 as usize, meta.input_size.1 as usize);
    let (w, h) = (img.width() as usize, img.height() as usize);
    let fit = fit_size(h, w, (in_w, in_h));
    let (rh, rw) = fit.img_shape;
    let norm = Normalization {
        mean: meta.mean,
        std: meta.std,
        to_rgb: meta.to_rgb,
    };
    let chw = resize_normalize(img.as_raw(), h, w, rh, rw, &norm);
    let mut input = vec![0.0; 3 * in_h * in_w];
    pad_into(&chw, rh, rw, in_h, in_w, &mut input);
    let outs = net.reference_forward(&input);
    let levels: Vec<LevelOutput> = outs
        .iter()
        .map(|r| LevelOutput {
            cls_score: &r.outputs[0],
            bbox_pred: &r.outputs[1],
            centerness: r.outputs.get(2).map(|v| v.as_slice()),
            height: r.height,
            width: r.width,
        })
        .collect();
    let dets = crosskd_sdk::postprocess(
        &meta.decode,
        cfg,
        &levels,
        (rh as f32, rw as f32),
        fit.scale_factor,
    )
    .unwrap();
    dets.into_iter()
        .map(|d| d.with_label(&meta.class_names))
        .collect()
}

/// Same detections: equal count and classes, boxes within `px`, scores within `score`.
pub fn assert_same(got: &[Detection], want: &[Detection], px: f32, score: f32) {
    assert_eq!(
        got.len(),
        want.len(),
        "detection count\ngot {got:?}\nwant {want:?}"
    );
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.class_id, w.class_id, "#{i} class: {g:?} vs {w:?}");
        assert_eq!(g.label, w.label, "#{i} label");
        assert!(
            (g.score - w.score).abs() <= score,
            "#{i} score: {g:?} vs {w:?}"
        );
        for k in 0..4 {
            assert!(
                (g.bbox[k] - w.bbox[k]).abs() <= px,
                "#{i} box: {g:?} vs {w:?}"
            );
        }
    }
}
