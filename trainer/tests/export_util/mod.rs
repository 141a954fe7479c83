//! Shared helpers of the `export_*` integration tests: tiny detectors with
//! randomised (non-identity) parameters, deterministic inputs, and burn's
//! reference outputs named like the ONNX graph's.
#![allow(dead_code)]

use burn::module::{ModuleMapper, Param};
use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};
use crosskd_sdk::{HeadKind, ModelMeta};
use crosskd_trainer::backend::Flex;
use crosskd_trainer::export::detector_graph::output_names;
use crosskd_trainer::model::detector::{Detector, DetectorConfig};
use crosskd_trainer::model::head::HeadConfig;

pub const KINDS: [HeadKind; 4] = [
    HeadKind::Gfl,
    HeadKind::RetinaNet,
    HeadKind::Fcos,
    HeadKind::Atss,
];

/// R18 × 0.25, 16-channel FPN/head, 2-conv towers, GN with 4 groups, 3 classes.
pub fn tiny(kind: HeadKind) -> DetectorConfig {
    let mut cfg = DetectorConfig::preset(kind, 18, 3);
    cfg.backbone.width_mult = 0.25;
    cfg.neck.out_channels = 16;
    match &mut cfg.head {
        HeadConfig::Gfl(h) => {
            (
                h.in_channels,
                h.feat_channels,
                h.stacked_convs,
                h.gn_groups,
                h.reg_max,
            ) = (16, 16, 2, 4, 8);
        }
        HeadConfig::Retinanet(h) => {
            (h.in_channels, h.feat_channels, h.stacked_convs) = (16, 16, 2);
        }
        HeadConfig::Fcos(h) => {
            (h.in_channels, h.feat_channels, h.stacked_convs, h.gn_groups) = (16, 16, 2, 4);
        }
        HeadConfig::Atss(h) => {
            (h.in_channels, h.feat_channels, h.stacked_convs, h.gn_groups) = (16, 16, 2, 4);
        }
    }
    cfg
}

/// Multiplies every parameter by `1 + 0.3·U(-1, 1)` and adds `0.05·N(0, 1)`:
/// BN statistics, GN affine and Scales stop being identities, so folding and
/// every per-channel path are really exercised (variances stay > 0.5).
struct Jitter;

impl ModuleMapper<Flex> for Jitter {
    fn map_float<const D: usize>(
        &mut self,
        param: Param<Tensor<Flex, D>>,
    ) -> Param<Tensor<Flex, D>> {
        param.map(|t| {
            let shape = t.shape();
            let device = t.device();
            let u =
                Tensor::<Flex, D>::random(shape.clone(), Distribution::Uniform(-1.0, 1.0), &device);
            let n = Tensor::<Flex, D>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            t * u.mul_scalar(0.3).add_scalar(1.0) + n.mul_scalar(0.05)
        })
    }
}

/// Serialises [`randomized`]: burn's RNG is process-wide and tests run in parallel.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `cfg`'s detector with jittered parameters, the same on every run (seeded;
/// every parameter is drawn inside the lock, since `map` materialises the lazy
/// initialisers), so int8 error bounds are checked on a fixed network.
pub fn randomized(cfg: &DetectorConfig) -> Detector<Flex> {
    let _guard = RNG.lock().unwrap_or_else(|e| e.into_inner());
    <Flex as Backend>::seed(&Default::default(), 2024);
    let det: Detector<Flex> = cfg.init(&Default::default()).unwrap();
    det.map(&mut Jitter)
}

/// Metadata for an export of `cfg` at `(w, h)`.
pub fn meta_for(cfg: &DetectorConfig, size: (u32, u32)) -> ModelMeta {
    let n = cfg.head.num_classes();
    ModelMeta::new(
        cfg.decode_spec(),
        (0..n).map(|i| format!("c{i}")).collect(),
        size,
    )
}

/// A deterministic normalised-image-like input: smooth blobs plus noise, ~N(0, 1).
pub fn input(h: usize, w: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
    let mut out = Vec::with_capacity(3 * h * w);
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                let noise = (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                let fx = x as f32 / w as f32 * std::f32::consts::TAU * (1.0 + (seed % 3) as f32);
                let fy = y as f32 / h as f32 * std::f32::consts::TAU * (1.0 + c as f32);
                out.push(1.2 * (fx + c as f32).sin() * fy.cos() + 0.4 * noise);
            }
        }
    }
    out
}

/// burn's `forward` on `[1, 3, h, w]`, flattened as `(output name, values)` in graph order.
pub fn burn_outputs(
    det: &Detector<Flex>,
    x: &[f32],
    h: usize,
    w: usize,
) -> Vec<(String, Vec<f32>)> {
    let t = Tensor::<Flex, 4>::from_data(
        TensorData::new(x.to_vec(), [1, 3, h, w]),
        &Default::default(),
    );
    let v = |t: Tensor<Flex, 4>| t.into_data().to_vec::<f32>().unwrap();
    let mut out = Vec::new();
    for (l, o) in det.forward(t).into_iter().enumerate() {
        let [cls, bbox, ctr] = output_names(l);
        out.push((cls, v(o.cls_score)));
        out.push((bbox, v(o.bbox_pred)));
        if let Some(c) = o.centerness {
            out.push((ctr, v(c)));
        }
    }
    out
}

/// `max |a - b| / max |b|`: the error relative to the tensor's magnitude.
pub fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// A checkpoint at `path` of the randomised `cfg`, 3 classes `a`, `b`, `c` with
/// category ids 1, 2, 3.
pub fn write_checkpoint(path: &std::path::Path, cfg: &DetectorConfig) {
    let header = crosskd_trainer::train::checkpoint::CheckpointHeader {
        model: cfg.clone(),
        epoch: 1,
        iter: 1,
        best_ap: None,
        class_names: vec!["a".into(), "b".into(), "c".into()],
        category_ids: vec![1, 2, 3],
        train_config: None,
    };
    crosskd_trainer::train::checkpoint::save(path, &header, &randomized(cfg), None).unwrap();
}

/// Test image `i`: 80×50 (w×h), a coloured rectangle on a gradient.
pub fn test_image(i: usize) -> image::RgbImage {
    image::RgbImage::from_fn(80, 50, |x, y| {
        let inside = x > 10 + i as u32 * 5 && x < 50 && y > 8 && y < 40;
        if inside {
            image::Rgb([200, 40, (i * 60) as u8])
        } else {
            image::Rgb([(x * 3) as u8, (y * 5) as u8, 90])
        }
    })
}
