//! fp32 export parity: tract's outputs of the exported ONNX equal burn's
//! `Detector::forward` on the same input (max error ≤ 1e-4 of each tensor's
//! magnitude) for all four detectors and the FPN/FCOS variants, with BN, GN,
//! Scale parameters all randomised.

mod export_util;

use crosskd_sdk::HeadKind;
use crosskd_trainer::export::detector_graph::INPUT_NAME;
use crosskd_trainer::export::metadata::{get_prop, read_meta, META_KEY};
use crosskd_trainer::export::runner::OnnxRunner;
use crosskd_trainer::export::{export_detector, DEFAULT_OPSET};
use crosskd_trainer::model::detector::DetectorConfig;
use crosskd_trainer::model::head::HeadConfig;
use crosskd_trainer::model::neck::fpn::ExtraConvsOn;
use export_util::{burn_outputs, input, meta_for, randomized, rel_err, tiny, KINDS};

/// Export `cfg` at `w × h`, run both, return the worst relative error.
fn parity(cfg: &DetectorConfig, w: usize, h: usize, label: &str) -> f32 {
    let det = randomized(cfg);
    let meta = meta_for(cfg, (w as u32, h as u32));
    let model = export_detector(&det, &meta, &[1, 2, 3], DEFAULT_OPSET).unwrap();
    // No BatchNormalization survives folding; outputs follow the contract.
    let g = model.graph.as_ref().unwrap();
    assert!(g.node.iter().all(|n| n.op_type != "BatchNormalization"));
    assert_eq!(g.input.len(), 1);
    assert_eq!(g.input[0].name, INPUT_NAME);
    assert_eq!(read_meta(&model).unwrap(), meta);
    assert_eq!(get_prop(&model, "crosskd.precision"), Some("fp32"));
    assert!(get_prop(&model, META_KEY).is_some());

    let runner = OnnxRunner::from_proto(&model).unwrap();
    assert_eq!(runner.input_shape(), [1, 3, h, w]);
    let x = input(h, w, 7);
    let got = runner.run(&x).unwrap();
    let want = burn_outputs(&det, &x, h, w);
    assert_eq!(
        got.iter().map(|o| o.name.clone()).collect::<Vec<_>>(),
        want.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        "{label}: output names/order"
    );
    let mut worst = 0.0f32;
    for (g, (name, w)) in got.iter().zip(&want) {
        assert_eq!(g.data.len(), w.len(), "{label} {name}: size");
        let e = rel_err(&g.data, w);
        assert!(e <= 1e-4, "{label} {name}: max rel err {e:e}");
        worst = worst.max(e);
    }
    eprintln!(
        "{label}: {w}x{h}, {} outputs, worst max-rel-err {worst:.2e}",
        got.len()
    );
    worst
}

#[test]
fn fp32_onnx_matches_burn_for_all_four_detectors() {
    for kind in KINDS {
        parity(&tiny(kind), 96, 64, kind.name());
    }
}

#[test]
fn fp32_onnx_matches_burn_for_variants() {
    // FCOS with norm_on_bbox (relu·stride) and centerness on the reg branch.
    let mut cfg = tiny(HeadKind::Fcos);
    if let HeadConfig::Fcos(h) = &mut cfg.head {
        h.norm_on_bbox = true;
        h.centerness_on_reg = true;
    }
    parity(&cfg, 64, 128, "fcos norm_on_bbox");
    // RetinaNet teacher-style P6 from C5, and a bottleneck backbone.
    let mut cfg = tiny(HeadKind::RetinaNet);
    cfg.neck.extra_convs_on = ExtraConvsOn::OnInput;
    cfg.backbone.depth = 50;
    cfg.backbone.width_mult = 0.125;
    cfg.neck.in_channels.clear();
    parity(&cfg, 64, 64, "retinanet r50 extra-on-input");
}
