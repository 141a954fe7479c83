//! `crosskd_sdk::onnx` through its public API, as the on-device fine-tuner
//! uses it: atomic model files, calibration sets from files and from memory,
//! and int8 quantization of a synthetic fp32 detector that the SDK's own
//! `Detector` then runs.

mod common;

use std::ffi::OsString;

use common::{image as textured, TempDir};
use crosskd_sdk::onnx::props::{get_prop, PRECISION_KEY};
use crosskd_sdk::onnx::quantize::calib_data::CalibSet;
use crosskd_sdk::onnx::quantize::{quantize, CalibMethod, QuantFormat, QuantizeOptions};
use crosskd_sdk::onnx::runner::{read_model, write_model, OnnxRunner};
use crosskd_sdk::onnx::OnnxError;
use crosskd_sdk::testing::SyntheticDetector;
use crosskd_sdk::{DecodeSpec, Detector, DeviceConfig, HeadKind, ModelMeta, Precision};
use image::DynamicImage;
use tract_onnx::pb::ModelProto;

fn frames(n: u32) -> Vec<DynamicImage> {
    (0..n)
        .map(|k| DynamicImage::ImageRgb8(textured(80, 60, k)))
        .collect()
}

#[test]
fn write_model_replaces_atomically_and_reads_back() {
    let dir = TempDir::new("onnx-write");
    let path = dir.join("sub").join("m.onnx");
    let mut model = ModelProto {
        producer_name: "first".into(),
        ..Default::default()
    };
    write_model(&path, &model).unwrap();
    model.producer_name = "second".into();
    write_model(&path, &model).unwrap();
    assert_eq!(read_model(&path).unwrap().producer_name, "second");
    // Only the model is left in the folder: no temporary files.
    let files: Vec<OsString> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, vec![OsString::from("m.onnx")]);
}

#[test]
fn file_errors_name_the_file() {
    let dir = TempDir::new("onnx-read");
    let err = read_model(&dir.join("missing.onnx")).unwrap_err();
    assert!(matches!(err, OnnxError::Io { .. }), "{err}");
    assert!(err.to_string().contains("missing.onnx"), "{err}");
    let junk = dir.join("junk.onnx");
    std::fs::write(&junk, [0xff, 0xff, 0xff]).unwrap();
    let err = read_model(&junk).unwrap_err();
    assert!(matches!(err, OnnxError::NotOnnx { .. }), "{err}");
    assert!(err.to_string().contains("junk.onnx"), "{err}");
    // A file where the folder should be.
    let err = write_model(&junk.join("m.onnx"), &ModelProto::default()).unwrap_err();
    assert!(err.to_string().contains("junk.onnx"), "{err}");
}

#[test]
fn calibration_files_and_frames_give_the_same_input() {
    let dir = TempDir::new("onnx-calib");
    let meta = ModelMeta::new(DecodeSpec::fcos(1), vec!["a".into()], (64, 32));
    let img = textured(40, 30, 7);
    img.save(dir.join("b.png")).unwrap();
    img.save(dir.join("a.png")).unwrap();
    std::fs::write(dir.join("notes.txt"), "not an image").unwrap();
    let mut files = CalibSet::from_path(&dir.0, None, 1, &meta).unwrap();
    assert_eq!(files.len(), 1);
    let from_file = files.input(0).unwrap();
    assert_eq!(from_file.len(), 3 * 64 * 32);
    let mut memory = CalibSet::from_images(vec![DynamicImage::ImageRgb8(img)], &meta).unwrap();
    assert_eq!(memory.input(0).unwrap(), from_file);
    // A corrupt file is reported by name when it is read.
    std::fs::write(dir.join("a.png"), b"not a png").unwrap();
    let err = files.input(0).unwrap_err().to_string();
    assert!(err.contains("a.png"), "{err}");
    // In-memory sets need at least one non-empty frame.
    let err = CalibSet::from_images(vec![], &meta).err().unwrap();
    assert!(err.to_string().contains("no images"), "{err}");
    let empty = vec![DynamicImage::new_rgb8(4, 4), DynamicImage::new_rgb8(0, 3)];
    let err = CalibSet::from_images(empty, &meta).err().unwrap();
    assert!(err.to_string().contains("image 1 of 2"), "{err}");
}

/// Largest |int8 − fp32| of any output, relative to that output's largest |fp32|.
fn worst_relative_error(int8: &ModelProto, fp32: &ModelProto, x: &[f32]) -> f32 {
    let a = OnnxRunner::from_proto(int8).unwrap().run(x).unwrap();
    let b = OnnxRunner::from_proto(fp32).unwrap().run(x).unwrap();
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(a, b)| {
            assert_eq!((&a.name, &a.shape), (&b.name, &b.shape));
            let scale = b.data.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            let err = a
                .data
                .iter()
                .zip(&b.data)
                .fold(0.0f32, |m, (p, q)| m.max((p - q).abs()));
            err / scale
        })
        .fold(0.0, f32::max)
}

#[test]
fn quantized_synthetic_detector_tracks_fp32() {
    let mut net = SyntheticDetector::new(HeadKind::Fcos, 2, (64, 48), &[8, 16]);
    net.tower = 1;
    let fp32 = net.model_proto();
    let mut calib = CalibSet::from_images(frames(4), &net.meta()).unwrap();
    let x = calib.input(0).unwrap();
    // Entropy calibration clips tails on purpose: only a loose bound there.
    for (format, method, keep, tolerance) in [
        (QuantFormat::QOperator, CalibMethod::MinMax, false, 0.05),
        (
            QuantFormat::Qdq,
            CalibMethod::Percentile(99.99),
            false,
            0.05,
        ),
        (QuantFormat::QOperator, CalibMethod::MinMax, true, 0.05),
        (QuantFormat::Qdq, CalibMethod::Entropy, true, 1.0),
    ] {
        let opts = QuantizeOptions {
            method,
            format,
            keep_float_outputs: keep,
        };
        let mut passes = 0;
        let (int8, summary) = quantize(
            &fp32,
            calib.len(),
            &mut |i| calib.input(i),
            &opts,
            &mut |done, _| passes = done,
        )
        .unwrap();
        let convs = 2 * (1 + 1 + 3); // per level: stem, tower, cls/bbox/centerness
        let float = if keep { 2 * 3 } else { 0 };
        assert_eq!(summary.quantized_convs, convs - float, "{opts:?}");
        assert_eq!(summary.float_convs, float, "{opts:?}");
        assert_eq!(passes, if method == CalibMethod::MinMax { 4 } else { 8 });
        assert_eq!(get_prop(&int8, PRECISION_KEY), Some("int8"));
        let qlinear = int8
            .graph
            .as_ref()
            .unwrap()
            .node
            .iter()
            .filter(|n| n.op_type == "QLinearConv")
            .count();
        let want = match format {
            QuantFormat::QOperator => convs - float,
            QuantFormat::Qdq => 0,
        };
        assert_eq!(qlinear, want, "{opts:?}");
        let err = worst_relative_error(&int8, &fp32, &x);
        assert!(err < tolerance, "{opts:?}: worst relative error {err}");
    }
}

#[test]
fn the_int8_file_runs_in_the_detector_and_is_not_quantized_twice() {
    let net = SyntheticDetector::new(HeadKind::Gfl, 1, (64, 64), &[16, 32]);
    let mut calib = CalibSet::from_images(frames(2), &net.meta()).unwrap();
    let (int8, _) = quantize(
        &net.model_proto(),
        calib.len(),
        &mut |i| calib.input(i),
        &QuantizeOptions::default(),
        &mut |_, _| {},
    )
    .unwrap();
    let dir = TempDir::new("onnx-int8");
    let path = dir.join("student.int8.onnx");
    write_model(&path, &int8).unwrap();
    assert_eq!(read_model(&path).unwrap(), int8);
    let mut cfg = DeviceConfig::default();
    cfg.runtime.precision = Precision::Int8;
    let mut det = Detector::from_file(&path, &cfg).unwrap();
    det.detect(&frames(1)[0]).unwrap();
    let err = quantize(
        &int8,
        1,
        &mut |i| calib.input(i),
        &QuantizeOptions::default(),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("already int8"), "{err}");
}
