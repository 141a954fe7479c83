//! The `crosskd-sdk` binary: detect over a folder (annotated images, COCO JSON
//! with ids from a ground-truth file), bench, and its error messages.

mod common;

use std::process::Command;

use common::{image, write_model, TempDir};
use crosskd_sdk::testing::SyntheticDetector;
use crosskd_sdk::{CocoResult, HeadKind};

const DEV_CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../firmware-configs/x86-64-dev.toml"
);

fn sdk(args: &[&str]) -> (bool, String, String) {
    let bin = env!("CARGO_BIN_EXE_crosskd-sdk");
    // Cross-compiled tests run under qemu (cargo's target runner); the binary
    // they spawn needs the same runner unless the host has binfmt set up.
    let runner = std::env::var("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER")
        .ok()
        .filter(|_| cfg!(target_arch = "aarch64"));
    let mut cmd = match runner.as_deref().map(str::split_whitespace) {
        Some(mut parts) => {
            let mut c = Command::new(parts.next().expect("runner program"));
            c.args(parts).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    let out = cmd.args(args).output().expect("binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn detect_writes_annotated_images_and_coco_json_with_gt_ids() {
    let dir = TempDir::new("cli");
    let net = SyntheticDetector::new(HeadKind::Gfl, 2, (64, 64), &[16, 32]);
    let model = write_model(&dir, "m.onnx", &net);
    let imgs = dir.join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    image(80, 60, 1).save(imgs.join("b.png")).unwrap();
    image(50, 70, 2).save(imgs.join("a.jpg")).unwrap();
    std::fs::write(imgs.join("notes.txt"), "not an image").unwrap();
    // Ground truth names the classes in reverse order of id, to check mapping by name.
    let gt = dir.join("gt.json");
    std::fs::write(
        &gt,
        r#"{"images": [{"id": 11, "file_name": "sub/a.jpg", "width": 50, "height": 70},
                        {"id": 22, "file_name": "b.png", "width": 80, "height": 60}],
            "annotations": [],
            "categories": [{"id": 5, "name": "class1"}, {"id": 9, "name": "class0"}]}"#,
    )
    .unwrap();
    let (out_dir, json) = (dir.join("out"), dir.join("dets.json"));
    let (ok, stdout, stderr) = sdk(&[
        "detect",
        "--model",
        model.to_str().unwrap(),
        "--config",
        DEV_CONFIG,
        "--source",
        imgs.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--gt",
        gt.to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    // Sorted by name; the text file is skipped and counted.
    assert!(
        stdout.find("a.jpg").unwrap() < stdout.find("b.png").unwrap(),
        "{stdout}"
    );
    assert!(
        stderr.contains("2 images, 1 other files skipped"),
        "{stderr}"
    );
    for name in ["a.jpg", "b.png"] {
        let img = image::open(out_dir.join(name)).unwrap();
        assert!(img.width() > 0);
    }
    let results: Vec<CocoResult> =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(!results.is_empty());
    assert!(results.iter().all(|r| [11, 22].contains(&r.image_id)));
    assert!(results.iter().all(|r| [5, 9].contains(&r.category_id)));
}

#[test]
fn bench_prints_latency_table() {
    let dir = TempDir::new("bench");
    let net = SyntheticDetector::new(HeadKind::Fcos, 2, (64, 64), &[16, 32]);
    let model = write_model(&dir, "m.onnx", &net);
    let (ok, stdout, stderr) = sdk(&[
        "bench",
        "--model",
        model.to_str().unwrap(),
        "--config",
        DEV_CONFIG,
        "--threads",
        "1,2",
        "--iters",
        "3",
        "--warmup",
        "1",
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("infer med/p95") && stdout.contains("FPS"),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().filter(|l| l.contains("fp32")).count(),
        2,
        "{stdout}"
    );
}

#[test]
fn errors_name_the_file_and_exit_non_zero() {
    let dir = TempDir::new("clierr");
    let net = SyntheticDetector::new(HeadKind::Gfl, 2, (64, 64), &[32]);
    let model = write_model(&dir, "m.onnx", &net);
    let bad_cfg = dir.join("bad.toml");
    std::fs::write(&bad_cfg, "[runtime]\nthreads = 0\n").unwrap();
    let img = dir.join("x.png");
    image(10, 10, 0).save(&img).unwrap();
    let m = model.to_str().unwrap();
    let (ok, _, err) = sdk(&[
        "detect",
        "--model",
        m,
        "--config",
        bad_cfg.to_str().unwrap(),
        "--source",
        img.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("bad.toml") && err.contains("runtime.threads"),
        "{err}"
    );
    let (ok, _, err) = sdk(&[
        "detect",
        "--model",
        "nope.onnx",
        "--config",
        DEV_CONFIG,
        "--source",
        img.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("nope.onnx"), "{err}");
    #[cfg(not(feature = "camera"))]
    {
        let (ok, _, err) = sdk(&[
            "detect", "--model", m, "--config", DEV_CONFIG, "--source", "camera:0",
        ]);
        assert!(!ok && err.contains("--features camera"), "{err}");
    }
    let (ok, _, err) = sdk(&[
        "detect",
        "--model",
        m,
        "--config",
        DEV_CONFIG,
        "--source",
        dir.join("none").to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("none"), "{err}");
}
