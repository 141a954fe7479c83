//! The CUDA backend computes what burn-flex computes: detector outputs, every
//! GT loss component and every parameter's gradient, for all four detectors,
//! from the same weights and batch. Needs `--features cuda` and a GPU (run by
//! `trainer/benches/gpu/device_run.sh` on a lent machine); prints the worst
//! mismatch per tensor so a failure names the op path to look at.
#![cfg(feature = "cuda")]

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::AutodiffBackend;
use crosskd_sdk::HeadKind;
use crosskd_trainer::backend::{Cuda, Flex};
use crosskd_trainer::data::{Batch, ImageMeta};
use crosskd_trainer::model::detector::{Detector, DetectorConfig};
use crosskd_trainer::model::head::HeadConfig;
use crosskd_trainer::model::heads::DenseHead;

mod cuda_compare;
use cuda_compare::{exceeds, host, rel};

type A = burn::backend::Autodiff<Flex>;
type C = burn::backend::Autodiff<Cuda>;

/// What one backend computed: the head outputs, the named GT losses and every
/// parameter's gradient (`None` where a parameter got none).
type RunOutput = (Vec<Vec<f32>>, Vec<(String, f32)>, Vec<Option<Vec<f32>>>);

fn tiny(kind: HeadKind) -> DetectorConfig {
    let mut cfg = DetectorConfig::preset(kind, 18, 4);
    cfg.backbone.width_mult = 0.25;
    cfg.backbone.frozen_stages = -1;
    cfg.neck.out_channels = 16;
    match &mut cfg.head {
        HeadConfig::Gfl(h) => (h.in_channels, h.feat_channels, h.gn_groups) = (16, 16, 4),
        HeadConfig::Retinanet(h) => (h.in_channels, h.feat_channels) = (16, 16),
        HeadConfig::Fcos(h) => (h.in_channels, h.feat_channels, h.gn_groups) = (16, 16, 4),
        HeadConfig::Atss(h) => (h.in_channels, h.feat_channels, h.gn_groups) = (16, 16, 4),
    }
    cfg
}

fn batch<B: Backend>(device: &B::Device) -> Batch<B> {
    let n = 2 * 3 * 96 * 64;
    let data: Vec<f32> = (0..n)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
        .collect();
    Batch {
        images: Tensor::from_data(TensorData::new(data, [2, 3, 96, 64]), device),
        metas: vec![
            ImageMeta::new(
                0,
                96,
                64,
                vec![[4.0, 8.0, 40.0, 60.0], [30.0, 50.0, 62.0, 90.0]],
                vec![1, 3],
            ),
            ImageMeta::new(1, 70, 64, vec![[10.0, 10.0, 50.0, 30.0]], vec![0]),
        ],
    }
}

/// Every float parameter's gradient, in module order (`None`: no gradient).
struct Grads<'a, B: AutodiffBackend> {
    grads: &'a B::Gradients,
    out: Vec<Option<Vec<f32>>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Grads<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.out.push(param.val().grad(self.grads).map(host));
    }
}

/// `max |a - b| / max(|b|, 1e-6)`.
/// The detector of `cfg` with the recorded weights `bytes` (the same on every backend).
fn load<B: Backend>(cfg: &DetectorConfig, bytes: Vec<u8>, device: &B::Device) -> Detector<B> {
    let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
    cfg.init(device)
        .unwrap()
        .load_record(recorder.load(bytes, device).unwrap())
}

fn run<B: AutodiffBackend>(cfg: &DetectorConfig, bytes: Vec<u8>, device: &B::Device) -> RunOutput {
    let det = load::<B>(cfg, bytes, device);
    let b = batch::<B>(device);
    let outs = det.forward(b.images.clone());
    let mut flat = Vec::new();
    for o in &outs {
        flat.push(host(o.cls_score.clone()));
        flat.push(host(o.bbox_pred.clone()));
        if let Some(c) = &o.centerness {
            flat.push(host(c.clone()));
        }
    }
    let losses = det.loss_from_outputs(&outs, &b.metas);
    let values = losses.values();
    let grads = losses.total().backward();
    (flat, values, param_grads::<B, _>(&det, &grads))
}

#[test]
fn cuda_matches_flex_outputs_losses_and_gradients() {
    let mut failures = Vec::new();
    for kind in [
        HeadKind::Gfl,
        HeadKind::RetinaNet,
        HeadKind::Fcos,
        HeadKind::Atss,
    ] {
        let cfg = tiny(kind);
        let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
        let fresh: Detector<Flex> = cfg.init(&Default::default()).unwrap();
        let bytes = recorder.record(fresh.into_record(), ()).unwrap();
        let (fo, fl, fg) = run::<A>(&cfg, bytes.clone(), &Default::default());
        let (co, cl, cg) = run::<C>(&cfg, bytes, &Default::default());
        let worst_out = fo
            .iter()
            .zip(&co)
            .map(|(a, b)| rel(b, a))
            .fold(0.0, f32::max);
        eprintln!("{kind:?}: outputs max rel err {worst_out:.2e}");
        if worst_out > 1e-3 {
            failures.push(format!("{kind:?} outputs {worst_out:e}"));
        }
        for ((name, a), (_, b)) in fl.iter().zip(&cl) {
            let e = (a - b).abs() / a.abs().max(1e-6);
            eprintln!("{kind:?}: {name} flex {a:.6} cuda {b:.6} (rel {e:.2e})");
            if exceeds(e, 1e-3) {
                failures.push(format!("{kind:?} {name}: flex {a} cuda {b}"));
            }
        }
        for (i, (a, b)) in fg.iter().zip(&cg).enumerate() {
            match (a, b) {
                (Some(a), Some(b)) => {
                    let e = rel(b, a);
                    if exceeds(e, 1e-2) {
                        eprintln!(
                            "{kind:?}: grad of param #{i} ({} values) rel err {e:.2e}",
                            a.len()
                        );
                        failures.push(format!("{kind:?} grad #{i}: {e:e}"));
                    }
                }
                (None, None) => {}
                _ => failures.push(format!("{kind:?} grad #{i}: present on one backend only")),
            }
        }
        eprintln!("{kind:?}: {} parameter gradients compared", fg.len());
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Visits `module`'s float parameters and returns their gradients.
fn param_grads<B: AutodiffBackend, M: Module<B>>(
    module: &M,
    grads: &B::Gradients,
) -> Vec<Option<Vec<f32>>> {
    let mut v = Grads::<B> {
        grads,
        out: Vec::new(),
    };
    module.visit(&mut v);
    v.out
}

/// A fixed pseudo-random weight tensor shaped like `t`.
fn pattern<B: Backend>(t: &Tensor<B, 4>) -> Tensor<B, 4> {
    let shape = t.shape();
    let n = shape.num_elements();
    let v: Vec<f32> = (0..n)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    Tensor::from_data(TensorData::new(v, shape), &t.device())
}

type Named = Vec<(String, Vec<f32>)>;

/// The detector's backward in three separate graphs: (1) neck + head + GT loss from
/// detached backbone features (gradients of C3..C5 and of the neck's parameters),
/// (2) the neck alone under a fixed output gradient (C3..C5 and neck parameters),
/// (3) the backbone alone under a fixed output gradient (backbone parameters).
fn split<B: AutodiffBackend>(cfg: &DetectorConfig, bytes: Vec<u8>, device: &B::Device) -> Named {
    let det = load::<B>(cfg, bytes, device);
    let b = batch::<B>(device);
    let mut out = Named::new();
    let leaves = |det: &Detector<B>| -> Vec<Tensor<B, 4>> {
        det.backbone
            .forward(b.images.clone())
            .into_iter()
            .map(|f| f.detach().require_grad())
            .collect()
    };
    let mut keep = |stage: &str, feats: &[Tensor<B, 4>], grads: &B::Gradients, params| {
        for (l, f) in feats.iter().enumerate() {
            out.push((
                format!("{stage}: d C{}", l + 3),
                f.grad(grads).map(host).unwrap_or_default(),
            ));
        }
        for (i, g) in param_grads::<B, _>(params, grads).into_iter().enumerate() {
            out.push((format!("{stage}: neck param #{i}"), g.unwrap_or_default()));
        }
    };
    // (1) GT loss through neck + head.
    let feats = leaves(&det);
    let outs = det.head.forward(&det.neck.forward(feats.clone()));
    let grads = det.loss_from_outputs(&outs, &b.metas).total().backward();
    keep("loss", &feats, &grads, &det.neck);
    // (2) The neck alone.
    let feats = leaves(&det);
    let loss = det
        .neck
        .forward(feats.clone())
        .into_iter()
        .map(|p| (p.clone() * pattern(&p)).sum())
        .reduce(|a, b| a + b)
        .unwrap();
    let grads = loss.backward();
    keep("neck", &feats, &grads, &det.neck);
    // (3) The backbone alone.
    let loss = det
        .backbone
        .forward(b.images.clone())
        .into_iter()
        .map(|c| (c.clone() * pattern(&c)).sum())
        .reduce(|a, b| a + b)
        .unwrap();
    let grads = loss.backward();
    for (i, g) in param_grads::<B, _>(&det.backbone, &grads)
        .into_iter()
        .enumerate()
    {
        out.push((format!("backbone: param #{i}"), g.unwrap_or_default()));
    }
    out
}

/// Bisects a `cuda_matches_flex_outputs_losses_and_gradients` failure: which of
/// backbone, neck and head + loss has the differing backward.
#[test]
fn cuda_backward_bisect_by_stage() {
    let mut bad = Vec::new();
    for kind in [HeadKind::Gfl, HeadKind::RetinaNet] {
        let cfg = tiny(kind);
        let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
        let fresh: Detector<Flex> = cfg.init(&Default::default()).unwrap();
        let bytes = recorder.record(fresh.into_record(), ()).unwrap();
        let a = split::<A>(&cfg, bytes.clone(), &Default::default());
        let c = split::<C>(&cfg, bytes, &Default::default());
        for ((name, x), (_, y)) in a.iter().zip(&c) {
            let e = rel(y, x);
            let flag = if exceeds(e, 1e-3) {
                bad.push(format!("{kind:?} {name}"));
                "  <-- DIFFERS"
            } else {
                ""
            };
            eprintln!("{kind:?} {name} ({} values): rel {e:.2e}{flag}", x.len());
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}
