//! Readers for the JSON loss fixtures written by the float64 PyTorch references
//! (`head_loss_reference/reference.py`, `kd_loss_reference/reference.py`), shared by
//! `head_loss_reference.rs` and `kd_loss_reference.rs`.
//!
//! Tensors are stored as `{"shape": [N, C, H, W], "scale": s, "q": [...]}` with integer
//! `q`, so `q · s` is exact in both f32 and f64.

use std::path::PathBuf;

use burn::prelude::*;
use burn::tensor::{Device, TensorData};
use crosskd_trainer::data::ImageMeta;
use crosskd_trainer::model::heads::LevelOutput;
use serde_json::Value;

/// The backend every fixture test runs on.
pub type B = burn::backend::Flex;

/// Allowed relative difference between an f32 Rust loss and the f64 reference.
pub const REL_TOL: f64 = 1e-4;
/// Allowed magnitude of a component the reference says is exactly zero.
pub const ZERO_TOL: f64 = 1e-7;

/// `tests/fixtures/<dir>/<name>.json`, parsed.
pub fn fixture(dir: &str, name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

pub fn usize_vec(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("unsigned integer") as usize)
        .collect()
}

pub fn pair(v: &Value) -> (usize, usize) {
    let p = usize_vec(v);
    assert_eq!(p.len(), 2, "expected an (h, w) pair");
    (p[0], p[1])
}

/// `{"shape": [N, C, H, W], "scale": s, "q": [...]}` → NCHW tensor of `q · s`.
pub fn tensor(v: &Value, device: &Device<B>) -> Tensor<B, 4> {
    let shape = usize_vec(&v["shape"]);
    let scale = v["scale"].as_f64().expect("scale") as f32;
    let data: Vec<f32> = v["q"]
        .as_array()
        .expect("q")
        .iter()
        .map(|x| x.as_i64().expect("integer") as f32 * scale)
        .collect();
    assert_eq!(data.len(), shape.iter().product::<usize>(), "tensor size");
    Tensor::from_data(
        TensorData::new(data, [shape[0], shape[1], shape[2], shape[3]]),
        device,
    )
}

/// The fixture's images as the trainer's `ImageMeta`s (unit scale factor, no ignores).
pub fn metas(fx: &Value) -> Vec<ImageMeta> {
    fx["images"]
        .as_array()
        .expect("images")
        .iter()
        .enumerate()
        .map(|(i, im)| {
            let gt_boxes: Vec<[f32; 4]> = im["gt_bboxes"]
                .as_array()
                .expect("gt_bboxes")
                .iter()
                .map(|b| {
                    let c: Vec<f32> = b
                        .as_array()
                        .expect("box")
                        .iter()
                        .map(|x| x.as_f64().expect("coordinate") as f32)
                        .collect();
                    [c[0], c[1], c[2], c[3]]
                })
                .collect();
            ImageMeta {
                image_id: i as u64,
                img_shape: pair(&im["img_shape"]),
                pad_shape: pair(&im["pad_shape"]),
                scale_factor: (1.0, 1.0),
                gt_boxes,
                gt_labels: usize_vec(&im["gt_labels"]),
                gt_ignore: Vec::new(),
            }
        })
        .collect()
}

/// Per-level head outputs stored under `key`, checked to have the padded batch's
/// feature-map sizes (P3 = ceil(H/8), halving after).
pub fn outputs(fx: &Value, key: &str, device: &Device<B>) -> Vec<LevelOutput<B>> {
    let batch = pair(&fx["batch_shape"]);
    let n = fx["images"].as_array().expect("images").len();
    let levels: Vec<LevelOutput<B>> = fx[key]
        .as_array()
        .expect("outputs")
        .iter()
        .map(|o| LevelOutput {
            cls_score: tensor(&o["cls_score"], device),
            bbox_pred: tensor(&o["bbox_pred"], device),
            centerness: o.get("centerness").map(|c| tensor(c, device)),
        })
        .collect();
    let (mut h, mut w) = (batch.0.div_ceil(8), batch.1.div_ceil(8));
    for l in &levels {
        let [ln, _, lh, lw] = l.cls_score.dims();
        assert_eq!((ln, lh, lw), (n, h, w), "{key} level shape");
        (h, w) = (h.div_ceil(2), w.div_ceil(2));
    }
    levels
}

/// The FPN strides.
pub fn strides(fx: &Value) -> Vec<f32> {
    fx["strides"]
        .as_array()
        .expect("strides")
        .iter()
        .map(|s| s.as_f64().expect("stride") as f32)
        .collect()
}

/// Compare every component of `fx["expected"]` (each scaled by `factor(key)` first) with the
/// Rust values `got`: relative `REL_TOL`, or `ZERO_TOL` where the reference is exactly 0.
/// Prints each measured difference; fails listing every mismatch.
pub fn check(name: &str, fx: &Value, got: &[(String, f32)], factor: impl Fn(&str) -> f64) {
    let expected = fx["expected"].as_object().expect("expected");
    let keys: Vec<&String> = got.iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys.len(),
        expected.len(),
        "{name}: components {keys:?} vs expected {:?}",
        expected.keys().collect::<Vec<_>>()
    );
    let mut failures = Vec::new();
    for (key, want) in expected {
        let want = want.as_f64().expect("expected value") * factor(key);
        let got = got
            .iter()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("{name}: missing component {key}"))
            .1 as f64;
        let (ok, diff) = if want == 0.0 {
            (got.abs() <= ZERO_TOL, got.abs())
        } else {
            let rel = (got - want).abs() / want.abs();
            (rel <= REL_TOL, rel)
        };
        eprintln!(
            "{name:26} {key:15} rust {got:>13.7} reference {want:>13.7} {} {diff:.2e}",
            if want == 0.0 { "abs" } else { "rel" }
        );
        if !ok || !got.is_finite() {
            failures.push(format!(
                "{key}: rust {got} vs reference {want} ({diff:.3e})"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{name} ({}): {}\ninfo: {}",
        fx["description"],
        failures.join("; "),
        fx["info"]
    );
}
