//! The export verbs end to end through their CLI entry points (checkpoint →
//! `export` → `quantize` → `eval-onnx`), and the bad inputs that must fail with
//! a clear message instead of a panic.

mod export_util;

use std::path::{Path, PathBuf};

use crosskd_sdk::HeadKind;
use crosskd_trainer::cli::eval_onnx::{self, EvalOnnxArgs};
use crosskd_trainer::cli::export::{self, ExportArgs};
use crosskd_trainer::cli::quantize::{self, QuantizeArgs};
use crosskd_trainer::data::pipeline::PipelineConfig;
use crosskd_trainer::export::input_size::parse_input_size;
use crosskd_trainer::export::metadata::get_prop;
use crosskd_trainer::export::runner::read_model;
use crosskd_trainer::export::source::ExportSource;
use crosskd_trainer::export::{export_detector, ExportError};
use crosskd_trainer::model::detector::DetectorConfig;
use export_util::{meta_for, randomized, test_image, tiny, write_checkpoint};
use serde::Serialize;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("crosskd-export-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[derive(Serialize)]
struct Data<'a> {
    val_pipeline: &'a PipelineConfig,
}

#[derive(Serialize)]
struct Cfg<'a> {
    model: &'a DetectorConfig,
    data: Data<'a>,
}

fn write_config(path: &Path, model: &DetectorConfig) {
    let pipeline = PipelineConfig::test((96, 64));
    let text = toml::to_string(&Cfg {
        model,
        data: Data {
            val_pipeline: &pipeline,
        },
    })
    .unwrap();
    std::fs::write(path, text).unwrap();
}

/// `n` PNGs of 80×50 (w×h) with coloured rectangles, plus a COCO GT naming them.
fn write_images(dir: &Path, n: usize) -> PathBuf {
    let mut images = vec![];
    let mut anns = vec![];
    for i in 0..n {
        let img = test_image(i);
        let name = format!("{i}.png");
        img.save(dir.join(&name)).unwrap();
        images.push(serde_json::json!({"id": i + 1, "file_name": name, "width": 80, "height": 50}));
        anns.push(serde_json::json!({
            "id": i + 1, "image_id": i + 1, "category_id": 1 + i % 3,
            "bbox": [10 + i * 5, 8, 40 - i * 5, 32], "area": 1000.0, "iscrowd": 0
        }));
    }
    let gt = serde_json::json!({
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}],
    });
    let path = dir.join("gt.json");
    std::fs::write(&path, gt.to_string()).unwrap();
    path
}

#[test]
fn checkpoint_to_int8_through_the_cli() {
    let dir = tmpdir("cli");
    let cfg = tiny(HeadKind::Atss);
    let (ckpt, config) = (dir.join("s.ckpt"), dir.join("s.toml"));
    write_checkpoint(&ckpt, &cfg);
    write_config(&config, &cfg);
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let gt = write_images(&images, 3);

    let fp32 = dir.join("s.onnx");
    export::run(ExportArgs {
        checkpoint: ckpt.clone(),
        config: Some(config.clone()),
        out: fp32.clone(),
        input_size: None,
        opset: 13,
        no_check: false,
    })
    .unwrap();
    // Default input size: the test scale (96, 64) → 96×64.
    let model = read_model(&fp32).unwrap();
    assert_eq!(get_prop(&model, "crosskd.input_size"), Some("96x64"));
    assert_eq!(get_prop(&model, "crosskd.category_ids"), Some("[1,2,3]"));

    let int8 = dir.join("s.int8.onnx");
    quantize::run(QuantizeArgs {
        model: fp32.clone(),
        calib: images.clone(),
        image_dir: None,
        num_images: 2,
        method: "minmax".parse().unwrap(),
        format: "qoperator".parse().unwrap(),
        keep_float_outputs: false,
        out: int8.clone(),
    })
    .unwrap();
    // A COCO file works as the calibration set too (images next to it).
    quantize::run(QuantizeArgs {
        model: fp32.clone(),
        calib: gt.clone(),
        image_dir: Some(images.clone()),
        num_images: 8,
        method: "entropy".parse().unwrap(),
        format: "qdq".parse().unwrap(),
        keep_float_outputs: true,
        out: dir.join("s.qdq.onnx"),
    })
    .unwrap();
    for m in [&fp32, &int8] {
        eval_onnx::run(EvalOnnxArgs {
            model: m.clone(),
            gt: gt.clone(),
            images: images.clone(),
            threads: 1,
            out: Some(dir.join("dets.json")),
            json: true,
        })
        .unwrap();
    }
}

#[test]
fn bad_inputs_are_clear_errors() {
    let dir = tmpdir("errors");
    let cfg = tiny(HeadKind::Gfl);
    let ckpt = dir.join("g.ckpt");
    write_checkpoint(&ckpt, &cfg);

    // Config describing another network than the checkpoint's.
    let mut other = cfg.clone();
    other.backbone.width_mult = 0.5;
    let config = dir.join("other.toml");
    write_config(&config, &other);
    let err = ExportSource::load(&ckpt, Some(&config)).err().unwrap();
    assert!(matches!(err, ExportError::Mismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("model.backbone.width_mult") && msg.contains("other.toml"),
        "{msg}"
    );
    // Another head kind entirely.
    write_config(&config, &tiny(HeadKind::Fcos));
    let msg = ExportSource::load(&ckpt, Some(&config))
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("model.head"), "{msg}");

    // Not a checkpoint.
    std::fs::write(dir.join("junk.ckpt"), b"hello").unwrap();
    let msg = ExportSource::load(&dir.join("junk.ckpt"), None)
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("not a crosskd checkpoint"), "{msg}");

    // Input sizes that are not multiples of 32.
    let msg = parse_input_size("100x64").unwrap_err().to_string();
    assert!(
        msg.contains("multiple of 32") && msg.contains("128x64"),
        "{msg}"
    );
    let det = randomized(&cfg);
    let err = export_detector(&det, &meta_for(&cfg, (96, 80)), &[1, 2, 3], 13).unwrap_err();
    assert!(err.to_string().contains("multiple of 32"), "{err}");
    let err = export::run(ExportArgs {
        checkpoint: ckpt.clone(),
        config: None,
        out: dir.join("x.onnx"),
        input_size: Some("64x50".into()),
        opset: 13,
        no_check: true,
    })
    .unwrap_err();
    assert!(format!("{err:#}").contains("multiple of 32"), "{err:#}");
    // Unsupported opset.
    let err = export_detector(&det, &meta_for(&cfg, (64, 64)), &[1, 2, 3], 11).unwrap_err();
    assert!(err.to_string().contains("--opset 11"), "{err}");

    // Empty calibration folder.
    let fp32 = dir.join("g.onnx");
    export::run(ExportArgs {
        checkpoint: ckpt,
        config: None,
        out: fp32.clone(),
        input_size: Some("64x64".into()),
        opset: 13,
        no_check: true,
    })
    .unwrap();
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = quantize::run(QuantizeArgs {
        model: fp32.clone(),
        calib: empty,
        image_dir: None,
        num_images: 10,
        method: "minmax".parse().unwrap(),
        format: "qoperator".parse().unwrap(),
        keep_float_outputs: false,
        out: dir.join("g.int8.onnx"),
    })
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("no .png/.jpg/.jpeg images"),
        "{err:#}"
    );
    // A non-ONNX model file.
    let err = quantize::run(QuantizeArgs {
        model: dir.join("g.ckpt"),
        calib: dir.clone(),
        image_dir: None,
        num_images: 10,
        method: "minmax".parse().unwrap(),
        format: "qoperator".parse().unwrap(),
        keep_float_outputs: false,
        out: dir.join("g.int8.onnx"),
    })
    .unwrap_err();
    assert!(format!("{err:#}").contains("g.ckpt"), "{err:#}");
}
