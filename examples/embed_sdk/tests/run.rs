//! The example runs on a synthetic model and reports bad input without panicking.

use std::path::{Path, PathBuf};
use std::process::Command;

use crosskd_sdk::testing::SyntheticDetector;
use crosskd_sdk::HeadKind;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn prints_detections_for_an_image_and_names_a_missing_file() {
    let dir = std::env::temp_dir().join(format!("embed-sdk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("model.onnx");
    SyntheticDetector::new(HeadKind::Gfl, 3, (64, 64), &[8, 16])
        .write(&model)
        .unwrap();
    let image = dir.join("frame.png");
    image::RgbImage::from_fn(80, 60, |x, y| {
        image::Rgb([(x * 3) as u8, (y * 4) as u8, 90])
    })
    .save(&image)
    .unwrap();
    let config = workspace().join("firmware-configs/x86-64-dev.toml");
    let run = |args: &[&Path]| {
        Command::new(env!("CARGO_BIN_EXE_embed_sdk"))
            .args(args)
            .output()
            .unwrap()
    };

    let out = run(&[&model, &config, &image]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("class"), "one line per detection: {stdout}");

    let missing = dir.join("missing.png");
    let out = run(&[&model, &config, &missing]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("missing.png") && !stderr.contains("panicked"),
        "{stderr}"
    );

    let out = run(&[&model]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
    std::fs::remove_dir_all(&dir).unwrap();
}
