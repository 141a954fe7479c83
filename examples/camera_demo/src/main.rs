//! Live detection demo for a Jetson or Raspberry Pi: frames from a camera (feature
//! `camera`) or a folder of images → the exported CrossKD student on the edge SDK →
//! annotated frames and the frame rate.
//!
//! ```sh
//! # on the board (or cross-built, see README "Deploying to Jetson and Raspberry Pi")
//! cargo run --release -p camera_demo --features camera -- \
//!     --model student.onnx --config firmware-configs/jetson-orin-nano.toml \
//!     --source camera:0 --out frames/ --max-frames 300
//! # no camera: any folder of images (e.g. the quickstart's val set)
//! cargo run --release -p camera_demo -- --model quickstart/export/student_crosskd.onnx \
//!     --config firmware-configs/x86-64-dev.toml --source quickstart/data/val --out annotated/
//! ```

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use crosskd_sdk::config::CameraConfig;
use crosskd_sdk::draw::{draw_detections, draw_text, save_image, DrawOptions};
use crosskd_sdk::source::{open_path, FrameSource};
use crosskd_sdk::{Detector, DeviceConfig, SdkError};

/// Command line of the demo.
#[derive(Debug, Parser)]
#[command(
    name = "camera_demo",
    about = "Camera or folder -> detections -> annotated frames + FPS"
)]
struct Args {
    /// Exported model (`crosskd export` / `crosskd quantize`).
    #[arg(long)]
    model: PathBuf,
    /// Firmware config of the board (`firmware-configs/*.toml`): threads, precision, camera.
    #[arg(long)]
    config: PathBuf,
    /// `camera` / `camera:N` (the config's camera, or /dev/videoN), a folder, or an image file.
    #[arg(long, default_value = "camera")]
    source: String,
    /// Folder for the annotated frames (none: detect and print only).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Stop after this many frames (a camera runs until Ctrl-C otherwise).
    #[arg(long)]
    max_frames: Option<u64>,
}

/// Frames per second over the last `window` frames.
struct Fps {
    window: usize,
    times: VecDeque<Instant>,
}

impl Fps {
    fn tick(&mut self) -> f64 {
        self.times.push_back(Instant::now());
        if self.times.len() > self.window {
            self.times.pop_front();
        }
        let span = match (self.times.front(), self.times.back()) {
            (Some(a), Some(b)) if self.times.len() > 1 => b.duration_since(*a),
            _ => return 0.0,
        };
        (self.times.len() - 1) as f64 / span.as_secs_f64().max(1e-9)
    }
}

#[cfg(feature = "camera")]
fn open_camera(cam: &CameraConfig) -> Result<Box<dyn FrameSource>, SdkError> {
    Ok(Box::new(crosskd_sdk::source::CameraSource::open(cam)?))
}

#[cfg(not(feature = "camera"))]
fn open_camera(cam: &CameraConfig) -> Result<Box<dyn FrameSource>, SdkError> {
    Err(SdkError::Source {
        source_name: format!("camera:{}", cam.index),
        message: "this build has no camera support: rebuild with `--features camera`".into(),
    })
}

/// The frame source named by `spec`; a camera that cannot be opened is
/// reported with the way to run on a folder instead.
fn open_source(spec: &str, cfg: &DeviceConfig) -> Result<Box<dyn FrameSource>, String> {
    let Some(rest) = spec.strip_prefix("camera") else {
        return open_path(spec).map_err(|e| e.to_string());
    };
    let mut cam = cfg.camera.clone();
    if let Some(ix) = rest.strip_prefix(':') {
        cam.index = ix.parse().map_err(|_| {
            format!("--source {spec}: expected camera or camera:<index>, e.g. camera:0")
        })?;
    } else if !rest.is_empty() {
        return Err(format!(
            "--source {spec}: expected camera or camera:<index>, e.g. camera:0"
        ));
    }
    open_camera(&cam).map_err(|e| {
        format!("no camera: {e}\nrun on a folder of images instead: --source <folder>")
    })
}

fn run(a: &Args) -> Result<(u64, u64), String> {
    let cfg = DeviceConfig::from_file(&a.config).map_err(|e| e.to_string())?;
    let mut det = Detector::from_file(&a.model, &cfg).map_err(|e| e.to_string())?;
    let mut src = open_source(&a.source, &cfg)?;
    if let Some(out) = &a.out {
        std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    eprintln!(
        "{} on {} ({} thread(s))",
        a.model.display(),
        src.describe(),
        cfg.runtime.threads
    );
    let mut fps = Fps {
        window: 30,
        times: VecDeque::new(),
    };
    let (mut frames, mut failed, mut infer) = (0u64, 0u64, Duration::ZERO);
    let started = Instant::now();
    while a.max_frames.is_none_or(|m| frames < m) {
        let frame = match src.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            // A lost camera (after its reconnect attempts) ends the stream; a bad file does not.
            Err(e) if a.source.starts_with("camera") => return Err(e.to_string()),
            Err(e) => {
                eprintln!("skipped: {e}");
                failed += 1;
                continue;
            }
        };
        let (dets, t) = match det.detect_timed(&frame.image) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("skipped {}: {e}", frame.name);
                failed += 1;
                continue;
            }
        };
        frames += 1;
        infer += t.infer;
        let rate = fps.tick();
        println!(
            "{}: {} detections, {:.1} ms, {rate:.1} FPS",
            frame.name,
            dets.len(),
            t.total().as_secs_f64() * 1e3
        );
        if let Some(out) = &a.out {
            let mut img = frame.image.to_rgb8();
            draw_detections(&mut img, &dets, &DrawOptions::default());
            draw_text(
                &mut img,
                2,
                2,
                &format!("{rate:.1} FPS"),
                1,
                image::Rgb([255, 255, 0]),
            );
            let name = Path::new(&frame.name).with_extension("jpg");
            save_image(&img, out.join(name)).map_err(|e| e.to_string())?;
        }
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    if frames > 0 {
        eprintln!(
            "{frames} frames in {secs:.1} s: {:.1} FPS end to end, inference {:.1} ms/frame",
            frames as f64 / secs,
            infer.as_secs_f64() * 1e3 / frames as f64
        );
    }
    Ok((frames, failed))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok((_, 0)) => ExitCode::SUCCESS,
        Ok((_, failed)) => {
            eprintln!("{failed} frames failed");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
