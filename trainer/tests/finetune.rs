//! On-device fine-tuning (SDK feature `finetune`) against the trainer's export:
//! the head rebuilt from the ONNX file reproduces the exported graph's outputs;
//! a run changes the head and leaves the backbone (and a frozen FPN) bit-identical;
//! the int8 path re-quantizes; the Detector swaps to the new model and rolls back
//! to identical outputs; a corrupt local set is rejected with the file named and
//! the deployed model untouched.

mod export_util;

use std::collections::HashMap;
use std::path::Path;

use burn::prelude::*;
use crosskd_sdk::finetune::features::FrozenFeatures;
use crosskd_sdk::finetune::net::NetConfigs;
use crosskd_sdk::finetune::{weights, FinetuneConfig, FinetuneError, Finetuner, LocalSet};
use crosskd_sdk::onnx::props::get_prop;
use crosskd_sdk::onnx::runner::{read_model, write_model, OnnxRunner};
use crosskd_sdk::{Detector, DeviceConfig, HeadKind};
use crosskd_trainer::backend::Flex;
use crosskd_trainer::data::synth::{generate, SynthConfig, CLASS_NAMES};
use crosskd_trainer::export::quantize::{quantize, QuantizeOptions};
use crosskd_trainer::export::{export_detector, DEFAULT_OPSET};
use export_util::{input, meta_for, randomized, rel_err, tiny};
use tract_onnx::pb::ModelProto;

const SIZE: u32 = 64;

/// A fresh folder for one test.
fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("crosskd-finetune-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A tiny randomised `kind` detector exported at 64×64 with the synth class names.
fn exported(kind: HeadKind) -> ModelProto {
    let cfg = tiny(kind);
    let det = randomized(&cfg);
    let mut meta = meta_for(&cfg, (SIZE, SIZE));
    meta.class_names = CLASS_NAMES[..3].iter().map(|s| s.to_string()).collect();
    export_detector(&det, &meta, &[1, 2, 3], DEFAULT_OPSET).unwrap()
}

fn initializers(m: &ModelProto) -> HashMap<String, Vec<f32>> {
    m.graph
        .as_ref()
        .unwrap()
        .initializer
        .iter()
        .filter(|t| t.data_type == 1)
        .map(|t| {
            let v = crosskd_sdk::onnx::tensor::tensor_f32(t).unwrap();
            (t.name.clone(), v)
        })
        .collect()
}

/// The FPN + head rebuilt in burn from the file equals the exported graph's
/// outputs on the same input, trainable neck or not (weights are mapped by the
/// exporter's names, GN affine and Scales included).
#[test]
fn rebuilt_head_matches_the_exported_graph() {
    for kind in [
        HeadKind::Gfl,
        HeadKind::Fcos,
        HeadKind::RetinaNet,
        HeadKind::Atss,
    ] {
        let model = exported(kind);
        let meta =
            crosskd_sdk::ModelMeta::from_json(get_prop(&model, "crosskd.meta").unwrap()).unwrap();
        let x = input(SIZE as usize, SIZE as usize, 3);
        let want = OnnxRunner::from_proto(&model).unwrap().run(&x).unwrap();
        let configs = NetConfigs::from_props(|k| get_prop(&model, k)).unwrap();
        let levels = configs.strides().len();
        for train_neck in [true, false] {
            let dev = Default::default();
            let mut net = configs.init::<Flex>(train_neck, &dev);
            weights::load(&mut net, &model, levels, &dev).unwrap();
            let frozen = FrozenFeatures::new(&model, &meta, train_neck, 3, levels).unwrap();
            let feats = frozen
                .run(&x)
                .unwrap()
                .into_iter()
                .map(|(s, d)| Tensor::<Flex, 4>::from_data(TensorData::new(d, s), &dev))
                .collect();
            let got = net.forward(feats);
            let v = |t: &Tensor<Flex, 4>| t.to_data().to_vec::<f32>().unwrap();
            let mut k = 0;
            for o in &got {
                for t in [
                    Some(&o.cls_score),
                    Some(&o.bbox_pred),
                    o.centerness.as_ref(),
                ]
                .into_iter()
                .flatten()
                {
                    let e = rel_err(&v(t), &want[k].data);
                    assert!(
                        e < 1e-4,
                        "{kind:?} train_neck={train_neck} {}: {e:e}",
                        want[k].name
                    );
                    k += 1;
                }
            }
            assert_eq!(k, want.len(), "{kind:?}: every exported output compared");
        }
    }
}

fn synth_set(dir: &Path) {
    let cfg = SynthConfig {
        train: 6,
        val: 0,
        size: SIZE,
        classes: 3,
        seed: 5,
        ..Default::default()
    };
    generate(&cfg, dir, false).unwrap();
}

fn quick(freeze_neck: bool) -> FinetuneConfig {
    FinetuneConfig {
        iters: 3,
        batch_size: 2,
        warmup_iters: 1,
        lr: 0.01,
        freeze_neck,
        calib_images: 4,
        ..Default::default()
    }
}

#[test]
fn finetune_changes_head_only_and_swaps_with_rollback() {
    let tmp = scratch("swap");
    let data = tmp.as_path().join("local");
    synth_set(&data);
    let model = exported(HeadKind::Gfl);
    let deployed = tmp.as_path().join("student.onnx");
    write_model(&deployed, &model).unwrap();
    let before = initializers(&model);

    for freeze_neck in [false, true] {
        let tuner = Finetuner::from_file(&deployed, None, &quick(freeze_neck)).unwrap();
        let set = tuner
            .load_coco(&data.join("train.json"), &data.join("train"))
            .unwrap();
        assert_eq!(set.len(), 6);
        let mut steps = 0;
        let outcome = tuner
            .run_flex(&set, &mut |p| steps = steps.max(p.done), None)
            .unwrap();
        assert_eq!(outcome.report.iters_done, 3);
        assert!(outcome.int8.is_none(), "fp32 in, fp32 out");
        let after = initializers(&outcome.fp32);
        let changed = |prefix: &str| {
            before
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .filter(|(k, v)| after[*k] != **v)
                .count()
        };
        assert_eq!(
            changed("backbone."),
            0,
            "backbone weights must stay bit-identical"
        );
        assert!(changed("head.") > 0, "the head was trained");
        if freeze_neck {
            assert_eq!(changed("neck."), 0, "frozen FPN stays bit-identical");
        } else {
            assert!(changed("neck.") > 0, "the FPN was trained");
        }
        assert!(get_prop(&outcome.fp32, "crosskd.finetune").is_some());
    }

    // Hot swap on a running Detector, then rollback to identical outputs.
    let tuned = tmp.as_path().join("student.tuned.onnx");
    let tuner = Finetuner::from_file(&deployed, None, &quick(false)).unwrap();
    let set = tuner
        .load_coco(&data.join("train.json"), &data.join("train"))
        .unwrap();
    tuner
        .run_flex(&set, &mut |_| {}, None)
        .unwrap()
        .save(&tuned)
        .unwrap();
    let cfg = DeviceConfig::from_toml_str("[detect]\nscore_thr = 0.0\n", "t.toml").unwrap();
    let img = image::open(set.samples()[0].origin.as_str()).unwrap();
    let mut det = Detector::from_file(&deployed, &cfg).unwrap();
    let d0 = det.detect(&img).unwrap();
    assert!(!d0.is_empty());
    det.swap_model(&tuned, &cfg).unwrap();
    let d1 = det.detect(&img).unwrap();
    assert_ne!(d0, d1, "the tuned model predicts differently");
    det.rollback().unwrap();
    assert_eq!(
        det.detect(&img).unwrap(),
        d0,
        "rollback restores identical outputs"
    );
    assert!(det.rollback().is_err(), "only one level of rollback");
}

#[test]
fn int8_deployment_is_requantized() {
    let tmp = scratch("int8");
    let data = tmp.as_path().join("local");
    synth_set(&data);
    let model = exported(HeadKind::Atss);
    let fp32_path = tmp.as_path().join("student.onnx");
    write_model(&fp32_path, &model).unwrap();
    let x = input(SIZE as usize, SIZE as usize, 1);
    let (int8, _) = quantize(
        &model,
        2,
        &mut |_| Ok(x.clone()),
        &QuantizeOptions::default(),
        &mut |_, _| {},
    )
    .unwrap();
    let int8_path = tmp.as_path().join("student.int8.onnx");
    write_model(&int8_path, &int8).unwrap();

    // The fp32 source is found beside the int8 model.
    let tuner = Finetuner::from_file(&int8_path, None, &quick(true)).unwrap();
    let set = tuner
        .load_coco(&data.join("train.json"), &data.join("train"))
        .unwrap();
    let outcome = tuner.run_flex(&set, &mut |_| {}, None).unwrap();
    let q = outcome.int8.as_ref().expect("int8 in, int8 out");
    assert_eq!(get_prop(q, "crosskd.precision"), Some("int8"));
    let out = tmp.as_path().join("tuned.int8.onnx");
    let files = outcome.save(&out).unwrap();
    assert_eq!(files, vec![out.clone(), tmp.as_path().join("tuned.onnx")]);
    let cfg = DeviceConfig::default();
    let mut det = Detector::from_file(&out, &cfg).unwrap();
    let img = image::open(set.samples()[0].origin.as_str()).unwrap();
    det.detect(&img).unwrap();

    // Without the fp32 source the error says where it was looked for.
    std::fs::remove_file(&fp32_path).unwrap();
    let e = Finetuner::from_file(&int8_path, None, &quick(true))
        .err()
        .unwrap();
    assert!(e.to_string().contains("student.onnx"), "{e}");
}

/// Every corruption is rejected before training, naming the file, and the
/// deployed model's bytes stay as they were.
#[test]
fn corrupt_local_sets_are_rejected_and_the_model_untouched() {
    let tmp = scratch("corrupt");
    let data = tmp.as_path().join("local");
    synth_set(&data);
    let deployed = tmp.as_path().join("student.onnx");
    write_model(&deployed, &exported(HeadKind::Fcos)).unwrap();
    let bytes = std::fs::read(&deployed).unwrap();
    let tuner = Finetuner::from_file(&deployed, None, &quick(false)).unwrap();
    let ann = data.join("train.json");
    let good: serde_json::Value = serde_json::from_slice(&std::fs::read(&ann).unwrap()).unwrap();

    type Corrupt = Box<dyn Fn(&mut serde_json::Value, &Path)>;
    let cases: Vec<(&str, Corrupt, &str)> = vec![
        (
            "malformed JSON",
            Box::new(|_, p| std::fs::write(p, b"{\"images\": [").unwrap()),
            "bad.json",
        ),
        (
            "missing image",
            Box::new(|v, _| v["images"][0]["file_name"] = "nope.png".into()),
            "nope.png",
        ),
        (
            "unknown category",
            Box::new(|v, _| v["categories"][0]["name"] = "teapot".into()),
            "teapot",
        ),
        (
            "box outside the image",
            Box::new(|v, _| {
                v["annotations"][0]["bbox"] = serde_json::json!([60.0, 60.0, 30.0, 30.0])
            }),
            "outside",
        ),
    ];
    for (what, corrupt, needle) in cases {
        let bad = data.join("bad.json");
        let mut v = good.clone();
        corrupt(&mut v, &bad);
        if what != "malformed JSON" {
            std::fs::write(&bad, serde_json::to_vec(&v).unwrap()).unwrap();
        }
        let e: FinetuneError = tuner.load_coco(&bad, &data.join("train")).err().unwrap();
        let msg = e.to_string();
        assert!(matches!(e, FinetuneError::Data(_)), "{what}: {msg}");
        assert!(
            msg.contains(needle),
            "{what}: `{msg}` should name `{needle}`"
        );
    }
    let empty = LocalSet::new(3);
    assert!(tuner.run_flex(&empty, &mut |_| {}, None).is_err());
    assert_eq!(
        std::fs::read(&deployed).unwrap(),
        bytes,
        "deployed model untouched"
    );
    // A model without the head metadata (exported before fine-tuning existed).
    let mut old = read_model(&deployed).unwrap();
    old.metadata_props
        .retain(|p| p.key != "crosskd.head_config");
    let e = Finetuner::from_models(old, None, &quick(false))
        .err()
        .unwrap();
    assert!(e.to_string().contains("re-export"), "{e}");
}
