//! The demo runs on a folder, writes annotated frames and reports FPS; asked for a
//! camera it cannot open, it says so and points to `--source <folder>`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crosskd_sdk::testing::SyntheticDetector;
use crosskd_sdk::HeadKind;

fn setup(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("camera-demo-{tag}-{}", std::process::id()));
    let frames = dir.join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    let model = dir.join("model.onnx");
    SyntheticDetector::new(HeadKind::Fcos, 2, (64, 64), &[8, 16])
        .write(&model)
        .unwrap();
    for i in 0..3u8 {
        image::RgbImage::from_fn(64, 48, |x, y| {
            image::Rgb([x as u8 * 4, y as u8 * 5, i * 80])
        })
        .save(frames.join(format!("{i:03}.png")))
        .unwrap();
    }
    (dir, model, frames)
}

fn demo(args: &[&str]) -> Output {
    let config =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../firmware-configs/x86-64-dev.toml");
    Command::new(env!("CARGO_BIN_EXE_camera_demo"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_folder_gives_annotated_frames_and_fps() {
    let (dir, model, frames) = setup("folder");
    let out = dir.join("annotated");
    let o = demo(&[
        "--model",
        model.to_str().unwrap(),
        "--source",
        frames.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert_eq!(
        stdout.lines().filter(|l| l.contains("FPS")).count(),
        3,
        "{stdout}"
    );
    assert!(stderr.contains("3 frames in"), "{stderr}");
    for i in 0..3 {
        assert!(out.join(format!("{i:03}.jpg")).is_file());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_camera_says_so_and_suggests_a_folder() {
    let (dir, model, _) = setup("nocam");
    // /dev/video63 does not exist here (and without the `camera` feature no camera opens).
    let o = demo(&["--model", model.to_str().unwrap(), "--source", "camera:63"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no camera") && stderr.contains("--source <folder>"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let o = demo(&["--model", model.to_str().unwrap(), "--source", "camera:x"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("camera:<index>"));
    std::fs::remove_dir_all(&dir).unwrap();
}
