//! Distiller tests on tiny detectors (R18 × 0.25, 2-conv towers, 3 classes).

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::SgdConfig;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Distribution;
use crosskd_sdk::HeadKind;

use super::*;
use crate::backend::{Flex, FlexAutodiff};
use crate::data::{Batch, ImageMeta};
use crate::model::detector::tests::{tiny_config, KINDS};
use crate::model::detector::{Detector, DetectorConfig};
use crate::model::head::HeadConfig;
use crate::model::head_loss::HeadTargets;
use crate::model::heads::DenseHead;
use crate::train::checkpoint::materialize;
use crate::train::{train_step, Objective};

/// Serialises tests that seed burn's process-wide RNG.
static SEED_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn batch<B: Backend>(device: &B::Device) -> Batch<B> {
    let images = Tensor::random([2, 3, 64, 64], Distribution::Normal(0.0, 1.0), device);
    let metas = vec![
        ImageMeta::new(
            1,
            64,
            64,
            vec![[4.0, 6.0, 30.0, 40.0], [20.0, 20.0, 60.0, 50.0]],
            vec![0, 2],
        ),
        // A landscape image padded into the batch: padding anchors must be masked.
        ImageMeta::new(2, 40, 64, vec![[10.0, 5.0, 50.0, 35.0]], vec![1]),
    ];
    Batch { images, metas }
}

/// `cfg` with narrower FPN and head (8 channels instead of 16).
fn narrow(mut cfg: DetectorConfig) -> DetectorConfig {
    cfg.neck.out_channels = 8;
    match &mut cfg.head {
        HeadConfig::Gfl(h) => (h.in_channels, h.feat_channels) = (8, 8),
        HeadConfig::Retinanet(h) => (h.in_channels, h.feat_channels) = (8, 8),
        HeadConfig::Fcos(h) => (h.in_channels, h.feat_channels) = (8, 8),
        HeadConfig::Atss(h) => (h.in_channels, h.feat_channels) = (8, 8),
    }
    cfg
}

fn config(mode: DistillMode, k: usize) -> DistillConfig {
    DistillConfig {
        reused_teacher_head_idx: Some(k),
        ..DistillConfig::new(mode, None)
    }
}

fn value<B: Backend>(losses: &crate::model::loss_dict::LossDict<B>, name: &str) -> f32 {
    losses.get(name).unwrap_or_else(|| panic!("no {name}"))
}

/// Binary entropy `H(σ(x))` in f64: BCE of a logit against its own probability.
fn entropy(x: f32) -> f64 {
    let p = 1.0 / (1.0 + (-(x as f64)).exp());
    -(p * p.ln() + (1.0 - p) * (1.0 - p).ln())
}

#[test]
fn a_student_distilled_from_itself_has_zero_kd_losses() {
    // With teacher = student, the cross-head path re-aligns the student's held
    // feature to its own statistics (Ŝ·σ + μ = S up to the 1e-6 eps) and runs the
    // same layers, so cross-head predictions equal the student's and every KD loss
    // vanishes: KDQFL(x, x) = BCE·|0| = 0, KL(p‖p) = 0, 1 − GIoU(b, b) = 0,
    // −log IoU(b, b) = 0. The exception is ATSS's centerness KD, a BCE towards the
    // soft target σ(t), whose minimum is the binary entropy: expected value
    // Σ_pos H(σ(c)) / Σ_img max(pos_i, 1), computed here in f64 on the host.
    let device = Default::default();
    for kind in KINDS {
        for (mode, k) in [
            (DistillMode::CrossKd, 1),
            (DistillMode::CrossKd, 2),
            (DistillMode::CrossKd, 0),
            (DistillMode::PredMimic, 0),
        ] {
            let det: Detector<Flex> = tiny_config(kind).init(&device).unwrap();
            materialize(&det);
            let distiller =
                Distiller::new(Some(det.clone()), &det.config, &config(mode, k)).unwrap();
            let student = distiller.student(det, &device);
            assert!(student.adapters.is_empty());
            let b = batch::<Flex>(&device);
            let losses = distiller.loss(&student, &b).unwrap();
            let what = format!("{kind:?} {mode:?} k={k}");
            assert!(
                value(&losses, "loss_cls_kd").abs() < 1e-5,
                "{what}: {losses:?}"
            );
            assert!(
                value(&losses, "loss_reg_kd").abs() < 1e-4,
                "{what}: {losses:?}"
            );
            if kind == HeadKind::Atss {
                let outs = student.detector.forward(b.images.clone());
                let HeadTargets::Anchors(t) = student.detector.targets(&outs, &b.metas) else {
                    unreachable!()
                };
                let flat = crate::model::head_loss::flatten_outputs(&outs, 3, 4);
                let ctr = crate::model::head_loss::to_vec(flat.ctr.unwrap());
                let expected: f64 = t.pos_rows.iter().map(|&r| entropy(ctr[r])).sum::<f64>()
                    / t.avg_factor() as f64;
                let got = value(&losses, "loss_center_kd") as f64;
                assert!(
                    (got - expected).abs() < 1e-5 * expected.max(1.0),
                    "{what}: {got} vs {expected}"
                );
            }
        }
    }
}

#[test]
fn loss_components_follow_the_mode() {
    let device = Default::default();
    let det: Detector<Flex> = tiny_config(HeadKind::Atss).init(&device).unwrap();
    let b = batch::<Flex>(&device);
    for (mode, extra) in [
        (DistillMode::None, vec![]),
        (DistillMode::Pkd, vec!["loss_feat_kd"]),
        (
            DistillMode::PredMimic,
            vec!["loss_cls_kd", "loss_reg_kd", "loss_center_kd"],
        ),
        (
            DistillMode::CrossKd,
            vec!["loss_cls_kd", "loss_reg_kd", "loss_center_kd"],
        ),
        (
            DistillMode::CrossKdPkd,
            vec![
                "loss_cls_kd",
                "loss_reg_kd",
                "loss_center_kd",
                "loss_feat_kd",
            ],
        ),
    ] {
        let teacher: Detector<Flex> = tiny_config(HeadKind::Atss).init(&device).unwrap();
        let distiller = Distiller::new(Some(teacher), &det.config, &config(mode, 1)).unwrap();
        let student = distiller.student(det.clone(), &device);
        let names: Vec<String> = distiller
            .loss(&student, &b)
            .unwrap()
            .items
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let mut expected = vec!["loss_cls", "loss_bbox", "loss_centerness"];
        expected.extend(extra);
        assert_eq!(names, expected, "{mode:?}");
        assert_eq!(distiller.loss_names(&det.config), expected, "{mode:?}");
    }
}

/// Counts parameters with a non-zero gradient.
struct GradCount<'a, B: AutodiffBackend> {
    grads: &'a B::Gradients,
    nonzero: usize,
    total: usize,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradCount<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.total += 1;
        if let Some(g) = param.val().grad(self.grads) {
            if g.abs().max().into_scalar().elem::<f32>() > 0.0 {
                self.nonzero += 1;
            }
        }
    }
}

fn nonzero_grads<B: AutodiffBackend, M: Module<B>>(m: &M, grads: &B::Gradients) -> (usize, usize) {
    let mut v = GradCount::<B> {
        grads,
        nonzero: 0,
        total: 0,
    };
    m.visit(&mut v);
    (v.nonzero, v.total)
}

#[test]
fn kd_gradients_reach_the_student_through_the_frozen_teacher_layers_only() {
    // Spec §1.6: the cross-head KD loss flows through the teacher's frozen convs
    // k+1.. into the student's held feature, i.e. into student tower conv 1..k,
    // the adapters, FPN and backbone. Student convs after k and its predictors get
    // nothing from it, the teacher nothing at all.
    type B = FlexAutodiff;
    let device = Default::default();
    for kind in KINDS {
        let teacher: Detector<B> = tiny_config(kind).init(&device).unwrap();
        let student_cfg = narrow(tiny_config(kind));
        let distiller = Distiller::new(
            Some(teacher),
            &student_cfg,
            &config(DistillMode::CrossKd, 1),
        )
        .unwrap();
        let model = distiller.student(student_cfg.init(&device).unwrap(), &device);
        assert!(model.adapters.cls.is_some() && model.adapters.fpn.is_none());
        let losses = distiller.loss(&model, &batch(&device)).unwrap();
        let kd = losses
            .items
            .iter()
            .filter(|(k, _)| k.ends_with("_kd"))
            .map(|(_, v)| v.clone())
            .reduce(|a, b| a + b)
            .unwrap();
        let grads = kd.backward();
        let (cls, reg) = model.detector.head.towers();
        for tower in [cls, reg] {
            let first = nonzero_grads::<B, _>(&tower.convs[0], &grads);
            assert_eq!(
                first.0, first.1,
                "{kind:?}: conv 1 (held) gets KD gradients"
            );
            let second = nonzero_grads::<B, _>(&tower.convs[1], &grads);
            assert_eq!(second.0, 0, "{kind:?}: conv 2 gets no KD gradient");
        }
        let (n, t) = nonzero_grads::<B, _>(&model.adapters, &grads);
        assert_eq!(n, t, "{kind:?}: adapters train");
        assert!(nonzero_grads::<B, _>(&model.detector.neck, &grads).0 > 0);
        assert!(nonzero_grads::<B, _>(&model.detector.backbone, &grads).0 > 0);
        let teacher = distiller.teacher().unwrap();
        assert_eq!(
            nonzero_grads::<B, _>(teacher, &grads).0,
            0,
            "{kind:?}: teacher frozen"
        );
        // The whole head minus its towers = predictors and scales: no KD gradient.
        let head_all = nonzero_grads::<B, _>(&model.detector.head, &grads).0;
        let towers = nonzero_grads::<B, _>(cls, &grads).0 + nonzero_grads::<B, _>(reg, &grads).0;
        assert_eq!(head_all, towers, "{kind:?}: predictors get no KD gradient");
    }
}

#[test]
fn a_distillation_step_leaves_the_teacher_unchanged_and_moves_the_student() {
    type B = FlexAutodiff;
    let device = Default::default();
    let teacher: Detector<B> = tiny_config(HeadKind::Gfl).init(&device).unwrap();
    materialize(&teacher);
    let snapshot = |d: &Detector<B>| -> Vec<f32> {
        let mut out = Vec::new();
        struct Grab<'a>(&'a mut Vec<f32>);
        impl<B: Backend> ModuleVisitor<B> for Grab<'_> {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
                self.0.extend(
                    p.val()
                        .into_data()
                        .convert::<f32>()
                        .to_vec::<f32>()
                        .unwrap(),
                );
            }
        }
        d.visit(&mut Grab(&mut out));
        out
    };
    let before = snapshot(&teacher);
    let student_cfg = narrow(tiny_config(HeadKind::Gfl));
    let distiller = Distiller::new(
        Some(teacher),
        &student_cfg,
        &config(DistillMode::CrossKdPkd, 2),
    )
    .unwrap();
    let model = distiller.student(student_cfg.init(&device).unwrap(), &device);
    materialize(&model);
    let student_before = snapshot(&model.detector);
    let mut optim = SgdConfig::new().init::<B, DistillStudent<B>>();
    let (model, out) = train_step(model, &mut optim, &distiller, &batch(&device), 0.05, None);
    let out = out.unwrap();
    assert!(out
        .losses
        .iter()
        .any(|(k, v)| k == "loss_feat_kd" && *v > 0.0));
    assert_eq!(snapshot(distiller.teacher().unwrap()), before);
    assert_ne!(snapshot(&model.detector), student_before);
}

#[test]
fn pairing_errors_name_the_field_before_training() {
    let s = |mode| KdSettings {
        reused_teacher_head_idx: 1,
        ..KdSettings::paper(HeadKind::Gfl, mode)
    };
    let gfl = tiny_config(HeadKind::Gfl);
    let err = |student: &DetectorConfig, teacher: &DetectorConfig, k: &KdSettings| {
        check_pair(student, teacher, k).unwrap_err().to_string()
    };
    let e = err(&gfl, &tiny_config(HeadKind::Atss), &s(DistillMode::CrossKd));
    assert!(
        e.contains("model.head.type") && e.contains("gfl") && e.contains("atss"),
        "{e}"
    );
    let mut other = gfl.clone();
    if let HeadConfig::Gfl(h) = &mut other.head {
        h.num_classes = 5;
    }
    assert!(err(&gfl, &other, &s(DistillMode::Pkd)).contains("num_classes"));
    let mut other = gfl.clone();
    other.neck.num_outs = 4;
    if let HeadConfig::Gfl(h) = &mut other.head {
        h.stacked_convs = 2;
    }
    assert!(err(&gfl, &other, &s(DistillMode::CrossKd)).contains("strides"));
    let mut other = gfl.clone();
    if let HeadConfig::Gfl(h) = &mut other.head {
        h.stacked_convs = 3;
    }
    assert!(err(&gfl, &other, &s(DistillMode::CrossKd)).contains("stacked_convs"));
    let mut other = gfl.clone();
    if let HeadConfig::Gfl(h) = &mut other.head {
        h.reg_max = 16;
    }
    assert!(err(&gfl, &other, &s(DistillMode::CrossKd)).contains("reg_max"));
    let deep = KdSettings {
        reused_teacher_head_idx: 3,
        ..s(DistillMode::CrossKd)
    };
    let e = err(&gfl, &gfl, &deep);
    assert!(
        e.contains("reused_teacher_head_idx = 3") && e.contains("0..=2"),
        "{e}"
    );
    // PKD does not run the cross-head path: the hold index is irrelevant there.
    let pkd = KdSettings {
        reused_teacher_head_idx: 3,
        ..s(DistillMode::Pkd)
    };
    assert!(check_pair(&gfl, &gfl, &pkd).is_ok());
    // Different widths are fine: adapters bridge them.
    let w = check_pair(&narrow(gfl.clone()), &gfl, &s(DistillMode::CrossKdPkd)).unwrap();
    assert_eq!(w.tower, Some((8, 16)));
    assert_eq!(w.fpn, Some((8, 16)));
    // A mode with a teacher but none given.
    let e = Distiller::<Flex>::new(None, &gfl, &config(DistillMode::CrossKd, 1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("teacher_checkpoint"), "{e}");
    assert!(Distiller::<Flex>::new(None, &gfl, &config(DistillMode::None, 1)).is_ok());
}

#[test]
fn adapters_round_trip_through_the_checkpoint_extra_section() {
    type B = FlexAutodiff;
    let _guard = SEED_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let device = Default::default();
    let teacher: Detector<B> = tiny_config(HeadKind::Fcos).init(&device).unwrap();
    let student_cfg = narrow(tiny_config(HeadKind::Fcos));
    let distiller = Distiller::new(
        Some(teacher),
        &student_cfg,
        &config(DistillMode::CrossKdPkd, 1),
    )
    .unwrap();
    let model = distiller.student(student_cfg.init(&device).unwrap(), &device);
    let extra = Objective::<B>::extra_bytes(&distiller, &model).expect("adapters exist");
    let dir = std::env::temp_dir().join(format!("crosskd-distill-ckpt-{}", std::process::id()));
    let path = dir.join("s.ckpt");
    let header = crate::train::checkpoint::CheckpointHeader {
        model: student_cfg.clone(),
        epoch: 0,
        iter: 0,
        best_ap: None,
        class_names: vec!["a".into(), "b".into(), "c".into()],
        category_ids: vec![1, 2, 3],
        train_config: None,
    };
    crate::train::checkpoint::save_with_extra(&path, &header, &model.detector, None, Some(extra))
        .unwrap();
    let file = crate::train::checkpoint::read(&path).unwrap();
    let fresh = distiller.student(student_cfg.init(&device).unwrap(), &device);
    let back = Objective::<B>::load(&distiller, fresh, &file, &device).unwrap();
    let x = Tensor::<B, 4>::random([1, 8, 4, 4], Distribution::Normal(0.0, 1.0), &device);
    let a = model.adapters.cls.as_ref().unwrap().forward(x.clone());
    let b = back.adapters.cls.as_ref().unwrap().forward(x);
    assert_eq!(a.into_data(), b.into_data());
    // The student alone still loads as a plain detector (inference never sees adapters).
    crate::train::checkpoint::load_detector::<Flex>(&path, &device).unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

/// `[1, C, 1, 2]` tensor from per-channel pairs.
fn level<B: Backend>(channels: &[[f32; 2]], device: &B::Device) -> Tensor<B, 4> {
    let flat: Vec<f32> = channels.iter().flatten().copied().collect();
    Tensor::<B, 1>::from_floats(flat.as_slice(), device).reshape([1, channels.len(), 1, 2])
}

#[test]
fn gfl_kd_by_hand() {
    // One image, one level of 1×2 locations, 1 class, reg_max 1 (2 bins per side).
    // Location 0 valid (label weight 1), location 1 padding (0); no positives →
    // avg_factor = max(0, 1) = 1.
    // cls: x = 0, t = ln 3 (σ = 0.75): BCE(0, p) = ln 2 for every p, factor |0.5 − 0.75|
    //   → 0.25·ln 2 = 0.173287 (location 1 masked).
    // reg: student bins uniform [½, ½], teacher [¾, ¼] on every side of location 0:
    //   KL = ¾ln(3/2) + ¼ln(1/2) = 0.130812 per side; weight w = σ(ln 3) = 0.75 (location 1
    //   masked to 0); Σ_sides·w / 4 = 4·0.130812·0.75/4; ÷ Σw (0.75) → 0.130812; × 4.0 → 0.523248.
    let device = Default::default();
    let ln3 = 3f32.ln();
    let student = vec![crate::model::heads::LevelOutput::<Flex> {
        cls_score: level(&[[0.0, 0.0]], &device),
        bbox_pred: level(&[[0.0, 0.0]; 8], &device),
        centerness: None,
    }];
    let teacher = vec![crate::model::heads::LevelOutput::<Flex> {
        cls_score: level(&[[ln3, 0.0]], &device),
        bbox_pred: level(&[[ln3, ln3], [0.0, 0.0]].repeat(4), &device),
        centerness: None,
    }];
    let targets = HeadTargets::Anchors(crate::model::head_loss::BatchAnchorTargets {
        anchors: vec![[-4.0, -4.0, 4.0, 4.0], [4.0, -4.0, 12.0, 4.0]],
        anchor_strides: vec![8.0, 8.0],
        num_anchors: 2,
        labels: vec![1, 1],
        label_weights: vec![1.0, 0.0],
        pos_rows: vec![],
        pos_anchors: vec![],
        pos_gt_boxes: vec![],
        pos_strides: vec![],
        num_pos_per_image: vec![0],
    });
    let head = HeadConfig::Gfl(crate::model::heads::GflHeadConfig {
        reg_max: 1,
        ..crate::model::heads::GflHeadConfig::new(1)
    });
    let s = KdSettings::paper(HeadKind::Gfl, DistillMode::CrossKd);
    let l = prediction_kd_losses(&head, &s, &student, &teacher, &targets);
    assert!((value(&l, "loss_cls_kd") - 0.173_287).abs() < 1e-5, "{l:?}");
    assert!((value(&l, "loss_reg_kd") - 0.523_248).abs() < 1e-5, "{l:?}");
}

#[test]
fn fcos_kd_by_hand() {
    // One image, one level (stride 8) of 1×2 points at (4, 4) and (12, 4); point 0 is the
    // only positive with ltrb (2, 2, 2, 2) → centerness 1 → normaliser 1.
    // cls (unmasked): point 0 as in the GFL case, 0.25·ln 2; point 1: x = t = 0 → 0.
    //   × 0.4 → 0.069315.
    // reg: point 0 student (1,1,1,1) → [3,3,5,5], teacher (2,2,2,2) → [2,2,6,6]: IoU = 4/16,
    //   −ln ¼ = 1.386294, weight σ(ln 3) = 0.75; point 1 identical boxes → 0.
    //   → 0.75·1.386294 / 1 × 0.75 = 0.779791.
    let device = Default::default();
    let ln3 = 3f32.ln();
    let student = vec![crate::model::heads::LevelOutput::<Flex> {
        cls_score: level(&[[0.0, 0.0]], &device),
        bbox_pred: level(&[[1.0, 3.0]; 4], &device),
        centerness: Some(level(&[[0.0, 0.0]], &device)),
    }];
    let teacher = vec![crate::model::heads::LevelOutput::<Flex> {
        cls_score: level(&[[ln3, 0.0]], &device),
        bbox_pred: level(&[[2.0, 3.0]; 4], &device),
        centerness: Some(level(&[[0.0, 0.0]], &device)),
    }];
    let targets = HeadTargets::Points(crate::model::head_loss::PointBatchTargets {
        points: vec![[4.0, 4.0], [12.0, 4.0]],
        labels: vec![0, 1],
        pos_rows: vec![0],
        pos_points: vec![[4.0, 4.0]],
        pos_ltrb: vec![[2.0, 2.0, 2.0, 2.0]],
    });
    let head = HeadConfig::Fcos(crate::model::heads::FcosHeadConfig::new(1));
    let s = KdSettings::paper(HeadKind::Fcos, DistillMode::CrossKd);
    let l = prediction_kd_losses(&head, &s, &student, &teacher, &targets);
    assert!((value(&l, "loss_cls_kd") - 0.069_315).abs() < 1e-5, "{l:?}");
    assert!((value(&l, "loss_reg_kd") - 0.779_791).abs() < 1e-5, "{l:?}");
}
