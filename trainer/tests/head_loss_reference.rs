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

use crosskd_trainer::model::head_loss::{
    atss::{atss_loss, atss_targets},
    fcos::{fcos_loss, fcos_targets_batch},
    gfl::{gfl_loss, gfl_targets},
    retinanet::{retinanet_loss, retinanet_targets},
};
use crosskd_trainer::model::heads::{
    AtssHeadConfig, FcosHeadConfig, GflHeadConfig, RetinaHeadConfig,
};

mod loss_fixture;
use loss_fixture::*;

fn run(det: &str, case: &str) {
    let name = format!("{det}_{case}");
    let fx = fixture("head_loss", &name);
    assert_eq!(fx["detector"], det);
    let device = Default::default();
    let metas = metas(&fx);
    let outs = outputs(&fx, "outputs", &device);
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
    check(&name, &fx, &losses.values(), |_| 1.0);
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
