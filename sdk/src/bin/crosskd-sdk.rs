//! `crosskd-sdk`: run an exported model on images, folders or a camera
//! (`detect`), measure latency (`bench`), or write a synthetic model to try
//! both before a real export exists (`synth-model`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use crosskd_sdk::detection::to_coco_results;
use crosskd_sdk::draw::{draw_detections, save_image, DrawOptions};
use crosskd_sdk::source::{open_path, FrameSource};
use crosskd_sdk::testing::{Quant, SyntheticDetector};
use crosskd_sdk::{CocoResult, Detector, DeviceConfig, HeadKind, Precision, SdkError, StageTimes};

#[cfg(feature = "finetune")]
#[path = "crosskd-sdk/finetune.rs"]
mod finetune;

#[derive(Parser)]
#[command(
    name = "crosskd-sdk",
    version,
    about = "Run CrossKD detectors exported to ONNX on the edge"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Detect objects in an image, a folder of images, or a camera stream.
    Detect(DetectArgs),
    /// Measure pre/infer/post latency (median, p95) and FPS.
    Bench(BenchArgs),
    /// Write a synthetic model in the export contract (random weights), for trying the SDK.
    SynthModel(SynthArgs),
    /// Fine-tune the deployed model on a local labelled set (feature `finetune`).
    #[cfg(feature = "finetune")]
    Finetune(finetune::FinetuneArgs),
}

#[derive(clap::Args)]
struct DetectArgs {
    /// Exported model (.onnx with crosskd.meta metadata).
    #[arg(long)]
    model: PathBuf,
    /// Board settings, e.g. firmware-configs/x86-64-dev.toml.
    #[arg(long)]
    config: PathBuf,
    /// An image, a folder of images, or `camera` / `camera:N` (feature `camera`).
    #[arg(long)]
    source: String,
    /// Folder for annotated images (PNG/JPEG as the input; camera frames as JPEG).
    #[arg(long)]
    out: Option<PathBuf>,
    /// COCO results JSON to write.
    #[arg(long)]
    json: Option<PathBuf>,
    /// COCO ground-truth JSON: image ids (by file name) and category ids (by class name).
    #[arg(long)]
    gt: Option<PathBuf>,
    /// Override runtime.threads of the config.
    #[arg(long)]
    threads: Option<usize>,
    /// Stop a camera stream after this many frames.
    #[arg(long)]
    max_frames: Option<u64>,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Exported model.
    #[arg(long)]
    model: PathBuf,
    /// Board settings.
    #[arg(long)]
    config: PathBuf,
    /// Thread counts to measure, e.g. `1,2`; default: the config's.
    #[arg(long, value_delimiter = ',')]
    threads: Vec<usize>,
    /// Timed iterations per thread count.
    #[arg(long, default_value_t = 50)]
    iters: usize,
    /// Untimed warm-up iterations.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Image to run on; default: a synthetic 640×480 frame.
    #[arg(long)]
    image: Option<PathBuf>,
    /// Also time every plan node over this many runs and print where inference goes.
    #[arg(long, default_value_t = 0)]
    profile: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum QuantArg {
    Fp32,
    Qoperator,
    Qdq,
}

#[derive(clap::Args)]
struct SynthArgs {
    /// Output .onnx file.
    #[arg(long)]
    out: PathBuf,
    /// Head kind: gfl, retinanet, fcos or atss.
    #[arg(long, default_value = "gfl")]
    kind: String,
    /// Number of classes.
    #[arg(long, default_value_t = 80)]
    classes: usize,
    /// Square input side.
    #[arg(long, default_value_t = 320)]
    input: u32,
    /// Channels per level.
    #[arg(long, default_value_t = 64)]
    hidden: usize,
    /// 3×3 convs per level.
    #[arg(long, default_value_t = 2)]
    tower: usize,
    /// Strides, e.g. 8,16,32,64,128.
    #[arg(long, value_delimiter = ',', default_value = "8,16,32,64,128")]
    strides: Vec<u32>,
    /// Storage of the stem convs.
    #[arg(long, value_enum, default_value = "fp32")]
    quant: QuantArg,
    /// Mean classification bias (-4.6 = the focal prior 0.01 of a trained head).
    #[arg(long, default_value_t = -4.6, allow_hyphen_values = true)]
    cls_bias: f32,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Detect(a) => detect(a),
        Cmd::Bench(a) => bench(a),
        Cmd::SynthModel(a) => synth(a),
        #[cfg(feature = "finetune")]
        Cmd::Finetune(a) => finetune::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: &Path, threads: Option<usize>) -> Result<DeviceConfig, SdkError> {
    let mut cfg = DeviceConfig::from_file(path)?;
    if let Some(t) = threads {
        cfg.runtime.threads = t;
        cfg.validate()
            .map_err(|m| SdkError::config(path, format!("--threads: {m}")))?;
    }
    Ok(cfg)
}

/// The parts of a COCO ground-truth file the CLI needs.
#[derive(Deserialize)]
struct GtFile {
    images: Vec<GtImage>,
    categories: Vec<GtCategory>,
}

#[derive(Deserialize)]
struct GtImage {
    id: u64,
    file_name: String,
}

#[derive(Deserialize)]
struct GtCategory {
    id: u64,
    name: String,
}

/// Image ids by file name, and the category id of each class.
struct GtIds {
    images: HashMap<String, u64>,
    category_ids: Vec<u64>,
}

fn read_gt(path: &Path, class_names: &[String]) -> Result<GtIds, SdkError> {
    let text = std::fs::read_to_string(path).map_err(|e| SdkError::io(path, e))?;
    let gt: GtFile = serde_json::from_str(&text)
        .map_err(|e| SdkError::config(path, format!("not a COCO ground-truth file: {e}")))?;
    // Frames are matched to images by base name, so two images may not share one.
    let mut images = HashMap::new();
    for i in gt.images {
        let base = Path::new(&i.file_name)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| i.file_name.clone());
        if let Some(other) = images.insert(base.clone(), i.id) {
            return Err(SdkError::config(
                path,
                format!(
                    "images {other} and {} share the file name `{base}`; detections are \
                     matched to images by file name, so run each folder with its own GT file",
                    i.id
                ),
            ));
        }
    }
    // Classes map to categories by name; failing that, by order of category id
    // (the trainer numbers classes that way).
    let by_name: Option<Vec<u64>> = class_names
        .iter()
        .map(|n| gt.categories.iter().find(|c| &c.name == n).map(|c| c.id))
        .collect();
    let category_ids = match by_name {
        Some(ids) => ids,
        None if gt.categories.len() == class_names.len() => {
            let mut ids: Vec<u64> = gt.categories.iter().map(|c| c.id).collect();
            ids.sort_unstable();
            eprintln!(
                "warning: {}: category names differ from the model's classes {class_names:?}; \
                 mapping class k to the k-th category id in id order {ids:?}",
                path.display()
            );
            ids
        }
        None => {
            return Err(SdkError::config(
                path,
                format!(
                    "categories do not match the model's {} classes by name or count",
                    class_names.len()
                ),
            ))
        }
    };
    Ok(GtIds {
        images,
        category_ids,
    })
}

/// `Some(index)` for `camera` (the config's index, `None` inside) or `camera:N`;
/// `None` for anything else, e.g. a folder `cameras/` or a file `camera1.jpg`.
fn camera_spec(spec: &str) -> Option<Option<&str>> {
    match spec.strip_prefix("camera")? {
        "" => Some(None),
        rest => rest.strip_prefix(':').map(Some),
    }
}

fn open_source(spec: &str, cfg: &DeviceConfig) -> Result<Box<dyn FrameSource>, SdkError> {
    if let Some(index) = camera_spec(spec) {
        let mut cam = cfg.camera.clone();
        if let Some(ix) = index {
            cam.index = ix.parse().map_err(|_| SdkError::Source {
                source_name: spec.into(),
                message: "expected camera:<index>, e.g. camera:0".into(),
            })?;
        }
        return open_camera(&cam, spec);
    }
    let src = open_path(spec)?;
    Ok(src)
}

#[cfg(feature = "camera")]
fn open_camera(
    cam: &crosskd_sdk::config::CameraConfig,
    _spec: &str,
) -> Result<Box<dyn FrameSource>, SdkError> {
    Ok(Box::new(crosskd_sdk::source::CameraSource::open(cam)?))
}

#[cfg(not(feature = "camera"))]
fn open_camera(
    _cam: &crosskd_sdk::config::CameraConfig,
    spec: &str,
) -> Result<Box<dyn FrameSource>, SdkError> {
    Err(SdkError::Source {
        source_name: spec.into(),
        message: "this build has no camera support: rebuild with `--features camera`".into(),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn detect(a: DetectArgs) -> Result<ExitCode, SdkError> {
    let cfg = load_config(&a.config, a.threads)?;
    let mut det = Detector::from_file(&a.model, &cfg)?;
    let meta = det.meta().clone();
    eprintln!(
        "model {}: {} head, {} classes, input {}x{}, precision {}; board {:?}, {} thread(s)",
        a.model.display(),
        meta.decode.kind,
        meta.decode.num_classes,
        meta.input_size.0,
        meta.input_size.1,
        det.precision().map_or("unknown".into(), |p| p.to_string()),
        cfg.board,
        cfg.runtime.threads
    );
    let gt =
        a.gt.as_deref()
            .map(|p| read_gt(p, &meta.class_names))
            .transpose()?;
    // Without ground truth, categories are numbered 1..=C like a fresh COCO file.
    let category_ids: Vec<u64> = gt.as_ref().map_or_else(
        || (1..=meta.decode.num_classes as u64).collect(),
        |g| g.category_ids.clone(),
    );
    if let Some(out) = &a.out {
        std::fs::create_dir_all(out).map_err(|e| SdkError::io(out, e))?;
    }
    let mut src = open_source(&a.source, &cfg)?;
    eprintln!("source: {}", src.describe());
    let mut results: Vec<CocoResult> = Vec::new();
    let (mut frames, mut failed, mut unmatched) = (0u64, 0u64, 0u64);
    let mut total = StageTimes::default();
    loop {
        if a.max_frames.is_some_and(|m| frames >= m) {
            break;
        }
        let frame = match src.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
                // A lost camera does not come back by asking again.
                if camera_spec(&a.source).is_some() {
                    break;
                }
                continue;
            }
        };
        let (dets, t) = match det.detect_timed(&frame.image) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {}: {e}", frame.name);
                failed += 1;
                continue;
            }
        };
        frames += 1;
        total.pre += t.pre;
        total.infer += t.infer;
        total.post += t.post;
        println!(
            "{}: {} detections (pre {:.1} ms, infer {:.1} ms, post {:.1} ms)",
            frame.name,
            dets.len(),
            ms(t.pre),
            ms(t.infer),
            ms(t.post)
        );
        let image_id = match &gt {
            Some(g) => g.images.get(&frame.name).copied(),
            None => Some(frames),
        };
        match image_id {
            Some(id) => results.extend(to_coco_results(&dets, id, &category_ids)),
            None => unmatched += 1,
        }
        if let Some(out) = &a.out {
            let mut img = frame.image.to_rgb8();
            draw_detections(&mut img, &dets, &DrawOptions::default());
            let name = if frame.path.is_some() {
                frame.name.clone()
            } else {
                format!("{}.jpg", frame.name)
            };
            save_image(&img, out.join(name))?;
        }
    }
    if let Some(path) = &a.json {
        let json = serde_json::to_string(&results).expect("COCO results serialise");
        std::fs::write(path, json).map_err(|e| SdkError::io(path, e))?;
        eprintln!("wrote {} detections to {}", results.len(), path.display());
    }
    if unmatched > 0 {
        eprintln!("warning: {unmatched} images are not in the --gt file; their detections are not in the JSON");
    }
    if frames > 0 {
        let n = frames as u32;
        eprintln!(
            "{frames} frames, mean pre {:.1} ms, infer {:.1} ms, post {:.1} ms",
            ms(total.pre / n),
            ms(total.infer / n),
            ms(total.post / n)
        );
    }
    if failed > 0 {
        eprintln!("{failed} frames failed");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Median and 95th percentile in milliseconds.
/// Median, 95th percentile and minimum in milliseconds (the minimum is the
/// least disturbed run on a busy machine).
fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let pick = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (pick(0.5), pick(0.95), v[0])
}

fn bench(a: BenchArgs) -> Result<ExitCode, SdkError> {
    let mut cfg = DeviceConfig::from_file(&a.config)?;
    // The bench measures whatever precision the file has.
    cfg.runtime.precision = Precision::Any;
    let threads = if a.threads.is_empty() {
        vec![cfg.runtime.threads]
    } else {
        a.threads.clone()
    };
    let img = match &a.image {
        Some(p) => crosskd_sdk::source::load_image(p)?,
        None => image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(640, 480, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
        })),
    };
    if a.iters == 0 {
        return Err(SdkError::config(&a.config, "--iters must be at least 1"));
    }
    println!(
        "model {} | image {}x{} | {} iterations after {} warm-up",
        a.model.display(),
        img.width(),
        img.height(),
        a.iters,
        a.warmup
    );
    println!(
        "{:>7} {:>9} | {:>15} | {:>15} | {:>15} | {:>15} | {:>9} | {:>7}",
        "threads",
        "precision",
        "pre med/p95 ms",
        "infer med/p95",
        "post med/p95",
        "total med/p95",
        "total min",
        "FPS"
    );
    for &t in &threads {
        cfg.runtime.threads = t;
        cfg.validate()
            .map_err(|m| SdkError::config(&a.config, format!("--threads: {m}")))?;
        let mut det = Detector::from_file(&a.model, &cfg)?;
        for _ in 0..a.warmup {
            det.detect_timed(&img)?;
        }
        let mut samples: Vec<StageTimes> = Vec::with_capacity(a.iters);
        for _ in 0..a.iters {
            samples.push(det.detect_timed(&img)?.1);
        }
        let col =
            |f: fn(&StageTimes) -> Duration| stats(samples.iter().map(|s| ms(f(s))).collect());
        let pre = col(|s| s.pre);
        let inf = col(|s| s.infer);
        let post = col(|s| s.post);
        let tot = col(|s| s.total());
        println!(
            "{t:>7} {:>9} | {:>7.2} {:>7.2} | {:>7.2} {:>7.2} | {:>7.2} {:>7.2} | {:>7.2} {:>7.2} | {:>9.2} | {:>7.1}",
            det.precision().map_or("?".into(), |p| p.to_string()),
            pre.0,
            pre.1,
            inf.0,
            inf.1,
            post.0,
            post.1,
            tot.0,
            tot.1,
            tot.2,
            1e3 / tot.0
        );
        if a.profile > 0 {
            print_profile(&det.profile(&img, a.profile)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Inference time by op kind, then the slowest nodes with tract's description
/// (shapes, matmul kernel).
fn print_profile(p: &crosskd_sdk::model::Profile) {
    let total: f64 = p.nodes.iter().map(|n| n.ms).sum();
    println!(
        "  profile: run median {:.2} ms; {} nodes, sum of node medians {total:.2} ms",
        p.run_ms,
        p.nodes.len()
    );
    let mut by_op: Vec<(&str, f64, usize)> = Vec::new();
    for n in &p.nodes {
        match by_op.iter_mut().find(|(op, _, _)| *op == n.op) {
            Some(e) => {
                e.1 += n.ms;
                e.2 += 1;
            }
            None => by_op.push((&n.op, n.ms, 1)),
        }
    }
    by_op.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (op, ms, count) in by_op.iter().take(12) {
        println!(
            "    {op:<28} {ms:>8.2} ms {:>5.1}%  ({count} nodes)",
            100.0 * ms / total
        );
    }
    let mut slow: Vec<_> = p.nodes.iter().collect();
    slow.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    for n in slow.iter().take(12) {
        let what = n
            .info
            .iter()
            .find(|l| l.starts_with("Mult:"))
            .map_or("", String::as_str);
        println!("    {:>8.3} ms  {:<16} {} {what}", n.ms, n.op, n.node);
    }
}

fn synth(a: SynthArgs) -> Result<ExitCode, SdkError> {
    let kind = match a.kind.as_str() {
        "gfl" => HeadKind::Gfl,
        "retinanet" => HeadKind::RetinaNet,
        "fcos" => HeadKind::Fcos,
        "atss" => HeadKind::Atss,
        other => {
            return Err(SdkError::Source {
                source_name: "--kind".into(),
                message: format!("unknown head kind {other:?}: use gfl, retinanet, fcos or atss"),
            })
        }
    };
    let mut net = SyntheticDetector::new(kind, a.classes, (a.input, a.input), &a.strides);
    net.hidden = a.hidden;
    net.tower = a.tower;
    net.cls_bias = a.cls_bias;
    net.quant = match a.quant {
        QuantArg::Fp32 => Quant::Fp32,
        QuantArg::Qoperator => Quant::QOperator,
        QuantArg::Qdq => Quant::Qdq,
    };
    net.write(&a.out).map_err(|e| SdkError::io(&a.out, e))?;
    eprintln!("wrote {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::camera_spec;

    #[test]
    fn only_camera_and_camera_index_are_cameras() {
        assert_eq!(camera_spec("camera"), Some(None));
        assert_eq!(camera_spec("camera:2"), Some(Some("2")));
        // Paths that merely start with "camera" are files and folders.
        for path in ["cameras/", "camera1.jpg", "camera_roll", "images/camera"] {
            assert_eq!(camera_spec(path), None, "{path}");
        }
    }
}
