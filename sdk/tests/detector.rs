//! `Detector` end to end on synthetic ONNX models: parity with the trainer's
//! path (same preprocessing, reference forward, shared decoder), int8 graphs,
//! threads, input-size override, and every kind of bad input.

mod common;

use common::{assert_same, image, reference_detections, write_model, TempDir};
use crosskd_sdk::config::{DeviceConfig, Precision};
use crosskd_sdk::model::OnnxModel;
use crosskd_sdk::preprocess::{pad_into, resize_normalize, Normalization};
use crosskd_sdk::testing::{Quant, SyntheticDetector, STEM_SCALE};
use crosskd_sdk::{Detector, HeadKind, SdkError};
use image::DynamicImage;
use tract_onnx::prelude::*;

fn cfg() -> DeviceConfig {
    DeviceConfig::default()
}

#[test]
fn every_head_kind_matches_the_reference_pipeline() {
    let dir = TempDir::new("parity");
    for (i, kind) in HeadKind::ALL.into_iter().enumerate() {
        // Non-square input, two levels, frames of odd sizes in both orientations.
        let mut net = SyntheticDetector::new(kind, 3, (96, 64), &[16, 32]);
        net.seed = 10 + i as u64;
        let path = write_model(&dir, &format!("{kind}.onnx"), &net);
        let mut det = Detector::from_file(&path, &cfg()).unwrap();
        assert_eq!(det.meta(), &net.meta());
        for (w, h) in [(75, 41), (40, 90), (96, 64), (300, 200)] {
            let img = image(w, h, w + h);
            let want = reference_detections(&net, det.test_cfg(), &img);
            assert!(
                !want.is_empty(),
                "{kind} {w}x{h}: the test needs detections"
            );
            let got = det.detect(&DynamicImage::ImageRgb8(img)).unwrap();
            assert_same(&got, &want, 1e-3, 1e-5);
        }
    }
}

#[test]
fn network_input_is_the_trainer_preprocessing_bit_for_bit() {
    let dir = TempDir::new("input");
    let net = SyntheticDetector::new(HeadKind::Gfl, 2, (64, 64), &[32]);
    let mut det = Detector::from_file(write_model(&dir, "m.onnx", &net), &cfg()).unwrap();
    let img = image(50, 30, 1);
    let (input, fit) = det
        .network_input(&DynamicImage::ImageRgb8(img.clone()))
        .unwrap();
    let (rh, rw) = fit.img_shape;
    assert_eq!((rh, rw), (38, 64));
    let m = det.meta();
    let norm = Normalization {
        mean: m.mean,
        std: m.std,
        to_rgb: m.to_rgb,
    };
    let chw = resize_normalize(img.as_raw(), 30, 50, rh, rw, &norm);
    let mut want = vec![0.0; 3 * 64 * 64];
    pad_into(&chw, rh, rw, 64, 64, &mut want);
    assert!(input
        .iter()
        .zip(&want)
        .all(|(a, b)| a.to_bits() == b.to_bits()));
}

#[test]
fn grey_and_rgba_frames_are_converted_like_rgb() {
    let dir = TempDir::new("colour");
    let net = SyntheticDetector::new(HeadKind::Fcos, 2, (64, 64), &[16, 32]);
    let mut det = Detector::from_file(write_model(&dir, "m.onnx", &net), &cfg()).unwrap();
    let rgb = image(40, 30, 5);
    let rgba = DynamicImage::ImageRgb8(rgb.clone()).to_rgba8();
    let a = det.detect(&DynamicImage::ImageRgb8(rgb.clone())).unwrap();
    let b = det.detect(&DynamicImage::ImageRgba8(rgba)).unwrap();
    assert_eq!(a, b);
    let grey = DynamicImage::ImageRgb8(rgb).to_luma8();
    let grey_as_rgb = DynamicImage::ImageLuma8(grey.clone()).to_rgb8();
    let c = det.detect(&DynamicImage::ImageLuma8(grey)).unwrap();
    let d = det.detect(&DynamicImage::ImageRgb8(grey_as_rgb)).unwrap();
    assert_eq!(c, d);
}

#[test]
fn batch_and_threads_agree_with_single_frames() {
    let dir = TempDir::new("threads");
    let mut net = SyntheticDetector::new(HeadKind::Atss, 2, (128, 128), &[8, 16]);
    net.hidden = 32;
    net.tower = 1;
    let path = write_model(&dir, "m.onnx", &net);
    let imgs: Vec<DynamicImage> = (0..3)
        .map(|i| DynamicImage::ImageRgb8(image(100 + i * 10, 80, i)))
        .collect();
    let mut one = Detector::from_file(&path, &cfg()).unwrap();
    let single: Vec<_> = imgs.iter().map(|i| one.detect(i).unwrap()).collect();
    assert_eq!(one.detect_batch(&imgs).unwrap(), single);
    let mut two_cfg = cfg();
    two_cfg.runtime.threads = 2;
    let mut two = Detector::from_file(&path, &two_cfg).unwrap();
    for (img, want) in imgs.iter().zip(&single) {
        assert_same(&two.detect(img).unwrap(), want, 1e-3, 1e-5);
    }
}

#[test]
fn config_overrides_thresholds_and_input_size() {
    let dir = TempDir::new("override");
    let net = SyntheticDetector::new(HeadKind::RetinaNet, 2, (64, 64), &[16, 32]);
    let path = write_model(&dir, "m.onnx", &net);
    let cfg = DeviceConfig::from_toml_str(
        "[runtime]\ninput_size = [128, 96]\n[detect]\nscore_thr = 0.2\nmax_detections = 5\n",
        "t.toml",
    )
    .unwrap();
    let mut det = Detector::from_file(&path, &cfg).unwrap();
    assert_eq!(det.meta().input_size, (128, 96));
    assert_eq!(
        (det.test_cfg().score_thr, det.test_cfg().max_per_img),
        (0.2, 5)
    );
    let dets = det
        .detect(&DynamicImage::ImageRgb8(image(200, 150, 3)))
        .unwrap();
    assert!(!dets.is_empty() && dets.len() <= 5);
    assert!(dets.iter().all(|d| d.score > 0.2));
    // Boxes are clipped to the original frame.
    assert!(dets
        .iter()
        .all(|d| d.bbox[2] <= 200.0 && d.bbox[3] <= 150.0));
}

/// Head outputs of the int8 graphs stay within one quantization step of the
/// stem (propagated through the 1×1 heads) of the exact integer reference.
#[test]
fn int8_qoperator_and_qdq_models_run_and_match_the_quantized_reference() {
    let dir = TempDir::new("int8");
    for quant in [Quant::QOperator, Quant::Qdq] {
        let mut net = SyntheticDetector::new(HeadKind::Gfl, 2, (64, 64), &[16, 32]);
        net.quant = quant;
        let path = write_model(&dir, &format!("{quant:?}.onnx"), &net);
        let mut model = OnnxModel::load(&path, &cfg()).unwrap();
        assert_eq!(model.precision(), Some(Precision::Int8));
        let img = image(64, 64, 9);
        let m = net.meta();
        let norm = Normalization {
            mean: m.mean,
            std: m.std,
            to_rgb: m.to_rgb,
        };
        let input = resize_normalize(img.as_raw(), 64, 64, 64, 64, &norm);
        let want = net.reference_forward(&input);
        let t = Tensor::from_shape(&[1, 3, 64, 64], &input).unwrap();
        let got = model.run(t.into_tvalue()).unwrap();
        let params = net.params();
        for (l, r) in want.iter().enumerate() {
            for (k, w) in r.outputs.iter().enumerate() {
                let g = got[l * 2 + k].to_plain_array_view::<f32>().unwrap();
                let g = g.as_slice().unwrap();
                let head = &params[l].heads[k];
                let per = head.in_c;
                let plane = w.len() / head.out_c;
                for (i, (a, b)) in g.iter().zip(w).enumerate() {
                    // QOperator may round a stem value one step differently
                    // (float accumulation order); QDQ is float after dequantizing.
                    let wsum: f32 = head.weight[(i / plane) * per..(i / plane + 1) * per]
                        .iter()
                        .map(|v| v.abs())
                        .sum();
                    let tol = if quant == Quant::QOperator {
                        STEM_SCALE * wsum
                    } else {
                        0.0
                    } + 1e-4;
                    assert!(
                        (a - b).abs() <= tol,
                        "{quant:?} level {l} out {k}[{i}]: {a} vs {b}"
                    );
                }
            }
        }
        let mut det = Detector::from_file(&path, &cfg()).unwrap();
        assert!(!det
            .detect(&DynamicImage::ImageRgb8(img))
            .unwrap()
            .is_empty());
    }
}

fn load_err(path: &std::path::Path, cfg: &DeviceConfig) -> SdkError {
    Detector::from_file(path, cfg).unwrap_err()
}

#[test]
fn broken_files_are_clear_errors() {
    let dir = TempDir::new("broken");
    let net = SyntheticDetector::new(HeadKind::Gfl, 2, (64, 64), &[32]);
    let bytes = net.to_bytes();
    let cases: [(&str, Vec<u8>); 4] = [
        ("empty.onnx", vec![]),
        ("truncated.onnx", bytes[..bytes.len() / 2].to_vec()),
        (
            "garbage.onnx",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
        ("text.onnx", b"this is not a model\n".repeat(20)),
    ];
    for (name, data) in cases {
        let path = dir.join(name);
        std::fs::write(&path, data).unwrap();
        let e = load_err(&path, &cfg());
        let msg = e.to_string();
        assert!(matches!(e, SdkError::Model { .. }), "{name}: {e:?}");
        assert!(
            msg.contains(name) && msg.contains("not a loadable ONNX model"),
            "{msg}"
        );
    }
    let e = load_err(&dir.join("missing.onnx"), &cfg());
    assert!(
        matches!(e, SdkError::Io { .. }) && e.to_string().contains("missing.onnx"),
        "{e}"
    );
}

#[test]
fn non_detector_models_are_clear_errors() {
    let dir = TempDir::new("nondet");
    // No metadata at all.
    let mut net = SyntheticDetector::new(HeadKind::Gfl, 2, (64, 64), &[32]);
    net.with_meta = false;
    let e = load_err(&write_model(&dir, "plain.onnx", &net), &cfg());
    assert!(matches!(e, SdkError::NotCrosskdModel { .. }), "{e:?}");
    assert!(e.to_string().contains("crosskd export"), "{e}");

    // Metadata of a head with centerness on a graph without it: missing output.
    let net = SyntheticDetector::new(HeadKind::Gfl, 2, (64, 64), &[32]);
    let mut proto = net.model_proto();
    let fcos = SyntheticDetector::new(HeadKind::Fcos, 2, (64, 64), &[32]).meta();
    proto.metadata_props[0].value = fcos.to_json();
    let path = dir.join("no-ctr.onnx");
    std::fs::write(&path, prost::Message::encode_to_vec(&proto)).unwrap();
    let e = load_err(&path, &cfg());
    assert!(
        e.to_string().contains("missing output `centerness_0`"),
        "{e}"
    );

    // Metadata with more classes than the graph's cls_score channels.
    let mut proto = net.model_proto();
    let five = SyntheticDetector::new(HeadKind::Gfl, 5, (64, 64), &[32]).meta();
    proto.metadata_props[0].value = five.to_json();
    let path = dir.join("channels.onnx");
    std::fs::write(&path, prost::Message::encode_to_vec(&proto)).unwrap();
    let e = load_err(&path, &cfg());
    assert!(
        e.to_string().contains("cls_score_0") && e.to_string().contains("[1, 5, H, W]"),
        "{e}"
    );

    // Broken metadata JSON names the field.
    let mut proto = net.model_proto();
    proto.metadata_props[0].value = proto.metadata_props[0]
        .value
        .replace("\"to_rgb\"", "\"to_rgbb\"");
    let path = dir.join("meta.onnx");
    std::fs::write(&path, prost::Message::encode_to_vec(&proto)).unwrap();
    let e = load_err(&path, &cfg());
    assert!(
        matches!(e, SdkError::Meta { .. }) && e.to_string().contains("to_rgbb"),
        "{e}"
    );

    // A wrong input name.
    let mut proto = net.model_proto();
    let g = proto.graph.as_mut().unwrap();
    g.input[0].name = "data".into();
    for n in &mut g.node {
        for i in &mut n.input {
            if i == "images" {
                *i = "data".into();
            }
        }
    }
    let path = dir.join("input.onnx");
    std::fs::write(&path, prost::Message::encode_to_vec(&proto)).unwrap();
    let e = load_err(&path, &cfg());
    assert!(e.to_string().contains("one input named `images`"), "{e}");
}

#[test]
fn precision_mismatch_is_a_clear_error() {
    let dir = TempDir::new("prec");
    let net = SyntheticDetector::new(HeadKind::Gfl, 2, (64, 64), &[32]);
    let path = write_model(&dir, "fp32.onnx", &net);
    let mut c = cfg();
    c.runtime.precision = Precision::Int8;
    let e = load_err(&path, &c);
    assert!(matches!(e, SdkError::Precision { .. }), "{e:?}");
    assert!(e.to_string().contains("runtime.precision"), "{e}");

    // Untagged files (another exporter): quantized nodes make a model int8.
    for (quant, want) in [
        (Quant::Fp32, Precision::Fp32),
        (Quant::QOperator, Precision::Int8),
    ] {
        let mut net = SyntheticDetector::new(HeadKind::Gfl, 2, (64, 64), &[32]);
        net.quant = quant;
        let mut proto = net.model_proto();
        proto
            .metadata_props
            .retain(|p| p.key != crosskd_sdk::model::PRECISION_KEY);
        let path = dir.join(format!("untagged-{quant:?}.onnx"));
        std::fs::write(&path, prost::Message::encode_to_vec(&proto)).unwrap();
        assert_eq!(
            OnnxModel::load(&path, &cfg()).unwrap().precision(),
            Some(want)
        );
        let mut c = cfg();
        c.runtime.precision = if want == Precision::Int8 {
            Precision::Fp32
        } else {
            Precision::Int8
        };
        let e = load_err(&path, &c);
        assert!(matches!(e, SdkError::Precision { .. }), "{quant:?}: {e:?}");
    }
}

#[test]
fn empty_and_huge_images_are_clear_errors() {
    let dir = TempDir::new("images");
    let net = SyntheticDetector::new(HeadKind::Gfl, 2, (64, 64), &[32]);
    let mut det = Detector::from_file(write_model(&dir, "m.onnx", &net), &cfg()).unwrap();
    for (w, h) in [(0, 0), (10, 0), (0, 10)] {
        let e = det.detect(&DynamicImage::new_rgb8(w, h)).unwrap_err();
        assert!(
            matches!(e, SdkError::Image(_)) && e.to_string().contains("empty"),
            "{e}"
        );
    }
    let e = det.detect(&DynamicImage::new_luma8(20_000, 1)).unwrap_err();
    assert!(e.to_string().contains("downscale"), "{e}");
    // Both sides under the side limit, but 108 MP in all.
    let e = det
        .detect(&DynamicImage::new_luma8(12_000, 9_000))
        .unwrap_err();
    assert!(e.to_string().contains("largest accepted area"), "{e}");
    let e = det.detect_rgb(&[0; 10], 2, 2).unwrap_err();
    assert!(e.to_string().contains("12 bytes"), "{e}");
    // The detector still works afterwards.
    det.detect(&DynamicImage::new_rgb8(32, 32)).unwrap();
}
