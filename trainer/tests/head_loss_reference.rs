//! Cross-check of the GT-loss *assembly* of the four dense heads
//! (`crosskd_trainer::model::head_loss::{gfl, retinanet, atss, fcos}`) against
//! an independent float64 PyTorch re-implementation of MMDetection 3.x
//! `loss_by_feat` (priors, valid flags, assigners, coders, losses, normalisers).
//!
//! The fixtures in `tests/fixtures/head_loss/*.json` were produced, from the
//! repository root, with
//!
//! ```text
//! python3 trainer/tests/head_loss_reference/reference.py
//! ```
//!
//! (Python 3.11.7, torch 2.15.0 run on the CPU, numpy 2.4.6; any recent CPU
//! wheels from PyPI will do; no mmdet/mmcv). The script is deterministic
//! (fixed numpy seeds); rerunning it rewrites byte-identical files.
//! Each fixture holds the raw per-level head outputs `[N, A·C, H, W]` as
//! integers times `scale` = 1/8 (exact in f32 and f64), the image metas (an
//! image smaller than the batch so part of the anchors are invalid, an image
//! without GT boxes, a batch without any GT) and the expected loss components.
//! Discrete assignment decisions are kept away from their thresholds by the
//! generator, so f32 (here) and f64 (reference) agree on every positive.
//!
//! Every component must match within a relative 1e-4 (f32 vs f64); components
//! that are exactly 0 in the reference (no positives) must be ~0 here.

use std::path::PathBuf;

use burn::prelude::*;
use burn::tensor::{Device, TensorData};
use crosskd_trainer::data::ImageMeta;
use crosskd_trainer::model::head_loss::{
    atss::{atss_loss, atss_targets},
    fcos::{fcos_loss, fcos_targets_batch},
    gfl::{gfl_loss, gfl_targets},
    retinanet::{retinanet_loss, retinanet_targets},
};
use crosskd_trainer::model::heads::{
    AtssHeadConfig, FcosHeadConfig, GflHeadConfig, LevelOutput, RetinaHeadConfig,
};
use crosskd_trainer::model::loss_dict::LossDict;
use serde_json::Value;

type B = burn::backend::Flex;

/// Allowed relative difference between the f32 Rust loss and the f64 reference.
const REL_TOL: f64 = 1e-4;
/// Allowed magnitude of a component the reference says is exactly zero.
const ZERO_TOL: f64 = 1e-7;

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/head_loss")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn usize_vec(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("unsigned integer") as usize)
        .collect()
}

fn pair(v: &Value) -> (usize, usize) {
    let p = usize_vec(v);
    assert_eq!(p.len(), 2, "expected an (h, w) pair");
    (p[0], p[1])
}

/// `{"shape": [N, C, H, W], "scale": s, "q": [...]}` → NCHW tensor of `q · s`.
fn tensor(v: &Value, device: &Device<B>) -> Tensor<B, 4> {
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

fn metas(fx: &Value) -> Vec<ImageMeta> {
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

fn outputs(fx: &Value, device: &Device<B>) -> Vec<LevelOutput<B>> {
    let batch = pair(&fx["batch_shape"]);
    let n = fx["images"].as_array().expect("images").len();
    let levels: Vec<LevelOutput<B>> = fx["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .map(|o| LevelOutput {
            cls_score: tensor(&o["cls_score"], device),
            bbox_pred: tensor(&o["bbox_pred"], device),
            centerness: o.get("centerness").map(|c| tensor(c, device)),
        })
        .collect();
    // The feature maps are those of the padded batch (P3 = ceil(H/8), halving after).
    let (mut h, mut w) = (batch.0.div_ceil(8), batch.1.div_ceil(8));
    for l in &levels {
        let [ln, _, lh, lw] = l.cls_score.dims();
        assert_eq!((ln, lh, lw), (n, h, w), "level shape");
        (h, w) = (h.div_ceil(2), w.div_ceil(2));
    }
    levels
}

fn strides(fx: &Value) -> Vec<f32> {
    fx["strides"]
        .as_array()
        .expect("strides")
        .iter()
        .map(|s| s.as_f64().expect("stride") as f32)
        .collect()
}

/// Compare every expected component; print the measured relative differences.
fn check(name: &str, fx: &Value, losses: &LossDict<B>) {
    let expected = fx["expected"].as_object().expect("expected");
    assert_eq!(
        losses.items.len(),
        expected.len(),
        "{name}: components {:?} vs expected {:?}",
        losses.values(),
        expected.keys().collect::<Vec<_>>()
    );
    let mut failures = Vec::new();
    for (key, want) in expected {
        let want = want.as_f64().expect("expected value");
        let got = losses
            .get(key)
            .unwrap_or_else(|| panic!("{name}: missing component {key}")) as f64;
        let (ok, diff) = if want == 0.0 {
            (got.abs() <= ZERO_TOL, got.abs())
        } else {
            let rel = (got - want).abs() / want.abs();
            (rel <= REL_TOL, rel)
        };
        eprintln!(
            "{name:26} {key:16} rust {got:>12.7} reference {want:>12.7} {} {diff:.2e}",
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

fn run(det: &str, case: &str) {
    let name = format!("{det}_{case}");
    let fx = fixture(&name);
    assert_eq!(fx["detector"], det);
    let device = Default::default();
    let metas = metas(&fx);
    let outs = outputs(&fx, &device);
    let strides = strides(&fx);
    let c = fx["num_classes"].as_u64().expect("num_classes") as usize;
    let losses = match det {
        "gfl" => {
            let mut cfg = GflHeadConfig::new(c);
            cfg.reg_max = fx["reg_max"].as_u64().expect("reg_max") as usize;
            gfl_loss(&cfg, &outs, &gfl_targets(&cfg, &strides, &outs, &metas))
        }
        "retinanet" => {
            let cfg = RetinaHeadConfig::new(c);
            retinanet_loss(
                &cfg,
                &outs,
                &retinanet_targets(&cfg, &strides, &outs, &metas),
            )
        }
        "atss" => {
            let cfg = AtssHeadConfig::new(c);
            atss_loss(&cfg, &outs, &atss_targets(&cfg, &strides, &outs, &metas))
        }
        "fcos" => {
            let cfg = FcosHeadConfig::new(c);
            fcos_loss(
                &cfg,
                &outs,
                &fcos_targets_batch(&cfg, &strides, &outs, &metas),
            )
        }
        other => panic!("unknown detector {other}"),
    };
    check(&name, &fx, &losses);
}

macro_rules! cases {
    ($($test:ident => ($det:literal, $case:literal)),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                run($det, $case);
            }
        )*
    };
}

cases! {
    gfl_two_images => ("gfl", "two_images"),
    gfl_zero_gt_image => ("gfl", "zero_gt_image"),
    gfl_no_gt => ("gfl", "no_gt"),
    retinanet_two_images => ("retinanet", "two_images"),
    retinanet_zero_gt_image => ("retinanet", "zero_gt_image"),
    retinanet_no_gt => ("retinanet", "no_gt"),
    atss_two_images => ("atss", "two_images"),
    atss_zero_gt_image => ("atss", "zero_gt_image"),
    atss_no_gt => ("atss", "no_gt"),
    fcos_two_images => ("fcos", "two_images"),
    fcos_zero_gt_image => ("fcos", "zero_gt_image"),
    fcos_no_gt => ("fcos", "no_gt"),
}
