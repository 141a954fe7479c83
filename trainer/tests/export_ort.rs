//! Material for the onnxruntime cross-check and the tract latency table
//! (`trainer/benches/onnxruntime/compare.sh` runs this, then `compare.py`).
//! Ignored by default: it is a measurement, not a check.
//!
//! Writes to `$CROSSKD_ORT_DIR` (default `target/tmp/ort`), for each model:
//! `{name}.onnx` (fp32), `{name}.int8.onnx` (QOperator, minmax),
//! `{name}.qdq.onnx`, the input (`input.bin`, f32 LE), tract's outputs of each
//! (`{name}.{precision}.{output}.bin`) and `manifest.json` with shapes, file sizes
//! and tract latencies (median of `$CROSSKD_ORT_ITERS`, default 10) at 1 and 2 threads.
//!
//! Models: the tiny GFL/FCOS test students (64×96) and a realistic edge student
//! (GFL, ResNet-18, 256-channel FPN and 4-conv head, 80 classes, 320×320) with
//! random weights — latency does not depend on the values. `CROSSKD_ORT_CKPT`
//! adds a trained checkpoint (exported at its config's test size,
//! `CROSSKD_ORT_CALIB` = calibration image folder).

mod export_util;

use std::path::PathBuf;
use std::time::Instant;

use crosskd_sdk::HeadKind;
use crosskd_trainer::export::quantize::calib_data::CalibSet;
use crosskd_trainer::export::quantize::{quantize, QuantFormat, QuantizeOptions};
use crosskd_trainer::export::runner::{write_model, OnnxRunner};
use crosskd_trainer::export::source::ExportSource;
use crosskd_trainer::export::{export_detector, DEFAULT_OPSET};
use crosskd_trainer::model::detector::DetectorConfig;
use export_util::{input, meta_for, randomized, tiny};
use serde_json::json;
use tract_onnx::pb::ModelProto;
use tract_onnx::tract_core::tract_linalg::multithread::{multithread_tract_scope, Executor};

fn median_ms(runner: &OnnxRunner, x: &[f32], iters: usize, threads: usize) -> f64 {
    let exec = if threads > 1 {
        Executor::multithread(threads)
    } else {
        Executor::SingleThread
    };
    multithread_tract_scope(exec, || {
        runner.run(x).unwrap(); // warm-up
        let mut t: Vec<f64> = (0..iters)
            .map(|_| {
                let s = Instant::now();
                runner.run(x).unwrap();
                s.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        t.sort_by(|a, b| a.partial_cmp(b).unwrap());
        t[t.len() / 2]
    })
}

struct Case {
    name: String,
    fp32: ModelProto,
    calib: Box<dyn FnMut(usize) -> Vec<f32>>,
    h: usize,
    w: usize,
}

fn random_case(name: &str, cfg: DetectorConfig, w: usize, h: usize) -> Case {
    let det = randomized(&cfg);
    let ids: Vec<u64> = (1..=cfg.head.num_classes() as u64).collect();
    let fp32 = export_detector(
        &det,
        &meta_for(&cfg, (w as u32, h as u32)),
        &ids,
        DEFAULT_OPSET,
    )
    .unwrap();
    Case {
        name: name.into(),
        fp32,
        calib: Box::new(move |i| input(h, w, 100 + i as u32)),
        h,
        w,
    }
}

#[test]
#[ignore = "measurement for docs/export.md; run via trainer/benches/onnxruntime/compare.sh"]
fn dump_models_outputs_and_tract_latency() {
    let dir = PathBuf::from(std::env::var("CROSSKD_ORT_DIR").unwrap_or("target/tmp/ort".into()));
    std::fs::create_dir_all(&dir).unwrap();
    let iters: usize = std::env::var("CROSSKD_ORT_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let mut cases = vec![
        random_case("tiny_gfl", tiny(HeadKind::Gfl), 96, 64),
        random_case("tiny_fcos", tiny(HeadKind::Fcos), 96, 64),
        random_case(
            "gfl_r18_320",
            DetectorConfig::preset(HeadKind::Gfl, 18, 80),
            320,
            320,
        ),
    ];
    if let Ok(ckpt) = std::env::var("CROSSKD_ORT_CKPT") {
        let src = ExportSource::load(ckpt.as_ref(), None).unwrap();
        let (w, h) = src.default_input_size();
        let meta = src.meta((w, h));
        let fp32 = export_detector(
            &src.detector,
            &meta,
            &src.header.category_ids,
            DEFAULT_OPSET,
        )
        .unwrap();
        let calib_dir =
            PathBuf::from(std::env::var("CROSSKD_ORT_CALIB").expect("CROSSKD_ORT_CALIB"));
        let mut set = CalibSet::from_path(&calib_dir, None, 32, &meta).unwrap();
        cases.push(Case {
            name: "trained".into(),
            fp32,
            calib: Box::new(move |i| set.input(i % set.len()).unwrap()),
            h,
            w,
        });
    }
    let mut manifest = vec![];
    for mut case in cases {
        let (h, w) = (case.h, case.w);
        let x = if case.name == "trained" {
            (case.calib)(0)
        } else {
            input(h, w, 3)
        };
        let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(dir.join(format!("{}.input.bin", case.name)), bytes).unwrap();
        let mut entry = json!({"name": case.name, "input_shape": [1, 3, h, w], "models": {}});
        let mut variants = vec![("fp32", case.fp32.clone())];
        for (label, format) in [("int8", QuantFormat::QOperator), ("qdq", QuantFormat::Qdq)] {
            let opts = QuantizeOptions {
                format,
                ..Default::default()
            };
            let calib = &mut case.calib;
            let (m, _) =
                quantize(&case.fp32, 8, &mut |i| Ok(calib(i)), &opts, &mut |_, _| {}).unwrap();
            variants.push((label, m));
        }
        for (label, model) in variants {
            let path = dir.join(format!("{}.{label}.onnx", case.name));
            write_model(&path, &model).unwrap();
            let runner = OnnxRunner::from_proto(&model).unwrap();
            let outs = runner.run(&x).unwrap();
            for o in &outs {
                let b: Vec<u8> = o.data.iter().flat_map(|v| v.to_le_bytes()).collect();
                std::fs::write(dir.join(format!("{}.{label}.{}.bin", case.name, o.name)), b)
                    .unwrap();
            }
            let t1 = median_ms(&runner, &x, iters, 1);
            let t2 = median_ms(&runner, &x, iters, 2);
            eprintln!(
                "{} {label}: tract {t1:.2} ms (1 thread), {t2:.2} ms (2 threads)",
                case.name
            );
            entry["models"][label] = json!({
                "file": path.file_name().unwrap().to_string_lossy(),
                "bytes": std::fs::metadata(&path).unwrap().len(),
                "tract_ms_1t": t1,
                "tract_ms_2t": t2,
                "outputs": outs.iter().map(|o| json!({"name": o.name, "shape": o.shape})).collect::<Vec<_>>(),
            });
        }
        manifest.push(entry);
    }
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&json!({
            "tract_cpu_isa": std::env::var("TRACT_CPU_ISA").unwrap_or_default(),
            "cases": manifest,
        }))
        .unwrap(),
    )
    .unwrap();
}
