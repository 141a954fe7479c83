//! `crosskd quickstart [--out DIR] [--tiny]`: the whole product in one command,
//! with nothing to download.
//!
//! 1. generate the synthetic benchmark (`crosskd synth`),
//! 2. train a teacher (`crosskd train`),
//! 3. train the student baseline (`crosskd distill --mode none`),
//! 4. train the CrossKD student (`crosskd distill --mode crosskd`), both on the
//!    same short schedule; the training loop evaluates every model on the val
//!    set with the COCO evaluator and plots its loss and AP curves,
//! 5. export the CrossKD student to fp32 ONNX (`crosskd export`) and int8 ONNX
//!    (`crosskd quantize`),
//! 6. run both files with the edge SDK on the val set, score them
//!    (`crosskd eval-onnx`) and time them,
//! 7. draw the fp32 model's detections on a few val images,
//! 8. write `summary.md` and `summary.json`.
//!
//! Every stage calls the code behind its own verb; the quickstart only chooses
//! the settings: the embedded `trainer/configs/quickstart_{teacher,student}.toml`
//! and the dataset size below, tuned to finish in about 10 minutes on 2 CPU cores
//! (measurements in `docs/results.md`). `--tiny` shrinks everything to a
//! seconds-long smoke run (its numbers mean nothing).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use crosskd_sdk::draw::{draw_detections, save_image, DrawOptions};
use crosskd_sdk::{Detector, DeviceConfig};
use serde::{Deserialize, Serialize};

use super::eval_onnx::{evaluate_onnx, OnnxEvaluation};
use super::export::export_checkpoint;
use super::quantize::quantize_file;
use crate::backend::DeviceSpec;
use crate::config::TrainConfig;
use crate::data::coco::load_gt;
use crate::data::synth::{generate, SynthConfig};
use crate::distill::{DistillConfig, DistillMode};
use crate::eval::coco::CocoStats;
use crate::export::quantize::QuantizeOptions;
use crate::export::DEFAULT_OPSET;
use crate::train::runner::{distill, train, RunOptions, TrainSummary};

/// The quickstart teacher (GFL, ResNet-18 at half width), embedded in the binary.
pub const TEACHER_TOML: &str = include_str!("../../configs/quickstart_teacher.toml");
/// The quickstart student (GFL, ResNet-18 at quarter width, `[distill] mode = "crosskd"`).
pub const STUDENT_TOML: &str = include_str!("../../configs/quickstart_student.toml");

/// `crosskd quickstart` arguments.
#[derive(Debug, Clone, Args)]
pub struct QuickstartArgs {
    /// Output directory (created if missing; files of an earlier run are overwritten).
    #[arg(long, default_value = "quickstart")]
    pub out: PathBuf,
    /// A seconds-long run at a tiny size (a smoke test: the numbers mean nothing).
    #[arg(long)]
    pub tiny: bool,
    /// Training device: flex (default), ndarray or cuda:N.
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// CPU threads for training (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// Everything the quickstart runs with.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The synthetic dataset.
    pub synth: SynthConfig,
    /// The teacher's training config.
    pub teacher: TrainConfig,
    /// The students' config (its `[distill]` mode is set per run).
    pub student: TrainConfig,
    /// Calibration images for int8.
    pub calib_images: usize,
    /// Val images drawn with their detections.
    pub annotated_images: usize,
}

fn parse_embedded(text: &str, name: &str) -> anyhow::Result<TrainConfig> {
    Ok(TrainConfig::from_toml(text, Path::new(name))?)
}

impl Plan {
    /// The measured default: the embedded configs on 400 + 100 images of 96 px,
    /// 4 classes, objects 2× the benchmark's size (`docs/results.md`).
    pub fn full() -> anyhow::Result<Self> {
        Ok(Self {
            synth: SynthConfig {
                train: 400,
                val: 100,
                size: 96,
                classes: 4,
                object_scale: 2.0,
                ..SynthConfig::default()
            },
            teacher: parse_embedded(TEACHER_TOML, "trainer/configs/quickstart_teacher.toml")?,
            student: parse_embedded(STUDENT_TOML, "trainer/configs/quickstart_student.toml")?,
            calib_images: 32,
            annotated_images: 6,
        })
    }

    /// [`Plan::full`] shrunk to a few seconds: 64 px, 16 + 8 images, 4 iterations per model.
    pub fn tiny() -> anyhow::Result<Self> {
        let mut plan = Self::full()?;
        plan.synth.train = 16;
        plan.synth.val = 8;
        plan.synth.size = 64;
        for cfg in [&mut plan.teacher, &mut plan.student] {
            let size = plan.synth.size as usize;
            cfg.data.train_pipeline.scales = vec![(size, size)];
            cfg.data.val_pipeline.scales = vec![(size, size)];
            cfg.data.batch_size = 4;
            let s = &mut cfg.schedule;
            s.iters = Some(4);
            s.warmup.iters = 2;
            (s.eval_interval, s.checkpoint_interval, s.log_interval) = (2, 4, 1);
        }
        plan.calib_images = 4;
        plan.annotated_images = 2;
        Ok(plan)
    }

    /// Point the configs' data at `out/data` (the work dirs are set per run).
    pub fn rooted(mut self, out: &Path) -> Self {
        let data = out.join("data");
        for cfg in [&mut self.teacher, &mut self.student] {
            cfg.data.train_ann = data.join("train.json");
            cfg.data.train_images = data.join("train");
            cfg.data.val_ann = data.join("val.json");
            cfg.data.val_images = data.join("val");
        }
        self
    }

    /// The student config for one distillation mode, with its teacher.
    fn student_for(&self, mode: DistillMode, teacher: Option<&Path>) -> TrainConfig {
        let mut cfg = self.student.clone();
        let mut d = cfg
            .distill
            .clone()
            .unwrap_or_else(|| DistillConfig::new(mode, None));
        d.mode = mode;
        d.teacher_checkpoint = teacher.map(Path::to_path_buf);
        cfg.distill = Some(d);
        cfg
    }
}

/// COCO AP numbers of one model, ×1 (0..1 as `crosskd eval --json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApRow {
    /// What was evaluated.
    pub name: String,
    /// AP@[.5:.95].
    #[serde(rename = "AP")]
    pub ap: f64,
    /// AP@.5.
    #[serde(rename = "AP50")]
    pub ap50: f64,
    /// AP@.75.
    #[serde(rename = "AP75")]
    pub ap75: f64,
}

impl ApRow {
    fn new(name: &str, s: &CocoStats) -> Self {
        Self {
            name: name.into(),
            ap: s.stats[0],
            ap50: s.stats[1],
            ap75: s.stats[2],
        }
    }

    /// `| name | AP | AP50 | AP75 |` (×100), the start of a markdown row.
    fn cells(&self) -> String {
        let pct = |v: f64| 100.0 * v;
        format!(
            "| {} | {:.1} | {:.1} | {:.1} |",
            self.name,
            pct(self.ap),
            pct(self.ap50),
            pct(self.ap75)
        )
    }
}

/// One trained model in the summary.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelRow {
    /// Final val-set AP (training loop's evaluator, burn).
    #[serde(flatten)]
    pub ap: ApRow,
    /// Training iterations.
    pub iters: usize,
    /// Training wall time (evaluation included), seconds.
    pub train_s: f64,
    /// The work directory (checkpoints, metrics.csv, loss/lr/AP plots).
    pub work_dir: PathBuf,
}

/// One exported file run by the SDK.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeployRow {
    /// AP of the SDK's detections on the val set.
    #[serde(flatten)]
    pub ap: ApRow,
    /// The ONNX file.
    pub file: PathBuf,
    /// Its size in MB.
    pub size_mb: f64,
    /// Mean tract inference time per image, ms (1 thread).
    pub infer_ms: f64,
    /// Mean pre + inference + post time per image, ms (1 thread).
    pub total_ms: f64,
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// The synthetic dataset used.
    pub dataset: SynthConfig,
    /// Teacher, baseline student, CrossKD student.
    pub models: Vec<ModelRow>,
    /// CrossKD student AP − baseline student AP (0..1 scale).
    pub crosskd_gain_ap: f64,
    /// fp32 and int8 ONNX files run by the SDK.
    pub deploy: Vec<DeployRow>,
    /// Wall time of each stage, seconds.
    pub stages: Vec<(String, f64)>,
    /// Annotated val images.
    pub annotated: Vec<PathBuf>,
    /// Wall time of the whole run, seconds.
    pub total_s: f64,
}

/// Stage bookkeeping: a numbered header per stage and its wall time.
struct Stages {
    total: usize,
    done: Vec<(String, f64)>,
}

impl Stages {
    fn run<T>(&mut self, name: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        eprintln!("==> [{}/{}] {name}", self.done.len() + 1, self.total);
        let t0 = Instant::now();
        let out = f().with_context(|| format!("quickstart stage `{name}`"))?;
        let s = t0.elapsed().as_secs_f64();
        eprintln!("    {name}: {s:.1} s");
        self.done.push((name.to_string(), s));
        Ok(out)
    }
}

/// What the three training runs produced.
struct Trained {
    rows: Vec<ModelRow>,
    crosskd_checkpoint: PathBuf,
}

fn final_stats(s: &TrainSummary, what: &str) -> anyhow::Result<CocoStats> {
    s.last
        .clone()
        .with_context(|| format!("{what}: the training loop ran no evaluation"))
}

fn checkpoint_of(s: &TrainSummary, what: &str) -> anyhow::Result<PathBuf> {
    s.last_checkpoint
        .clone()
        .with_context(|| format!("{what}: no checkpoint was written"))
}

fn train_models<B: AutodiffBackend>(
    device: &B::Device,
    plan: &Plan,
    out: &Path,
    stages: &mut Stages,
    progress: bool,
) -> anyhow::Result<Trained> {
    let configs = out.join("configs");
    std::fs::create_dir_all(&configs).with_context(|| format!("creating {}", configs.display()))?;
    let mut rows = Vec::new();
    // Each run stores its config in the checkpoint and in out/configs/.
    let mut run = |name: &str, title: &str, cfg: &TrainConfig| -> anyhow::Result<TrainSummary> {
        let work_dir = out.join(name);
        let mut cfg = cfg.clone();
        cfg.work_dir = Some(work_dir.clone());
        let cfg = &cfg;
        let text = toml::to_string(cfg).context("serialising a quickstart config")?;
        let path = configs.join(format!("{name}.toml"));
        std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
        let opts = RunOptions {
            resume: false,
            progress,
            config_text: text,
        };
        let t0 = Instant::now();
        let summary = stages.run(title, || {
            if cfg.distill.is_some() {
                distill::<B>(cfg, &work_dir, device, &opts)
            } else {
                train::<B>(cfg, &work_dir, device, &opts)
            }
        })?;
        if summary.interrupted {
            bail!("interrupted during `{title}`");
        }
        rows.push(ModelRow {
            ap: ApRow::new(title, &final_stats(&summary, title)?),
            iters: summary.iters,
            train_s: t0.elapsed().as_secs_f64(),
            work_dir,
        });
        Ok(summary)
    };
    let teacher = run("teacher", "teacher", &plan.teacher)?;
    let teacher_ckpt = checkpoint_of(&teacher, "teacher")?;
    run(
        "student_baseline",
        "student baseline",
        &plan.student_for(DistillMode::None, None),
    )?;
    let crosskd = run(
        "student_crosskd",
        "CrossKD student",
        &plan.student_for(DistillMode::CrossKd, Some(&teacher_ckpt)),
    )?;
    Ok(Trained {
        rows,
        crosskd_checkpoint: checkpoint_of(&crosskd, "CrossKD student")?,
    })
}

fn deploy_row(name: &str, file: &Path, e: &OnnxEvaluation) -> DeployRow {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    DeployRow {
        ap: ApRow::new(name, &e.stats),
        file: file.to_path_buf(),
        size_mb: std::fs::metadata(file).map_or(0.0, |m| m.len() as f64 / 1e6),
        infer_ms: ms(e.infer),
        total_ms: ms(e.total),
    }
}

/// Lowest score drawn on the annotated images.
pub const ANNOTATE_SCORE_THR: f32 = 0.2;
/// Most detections drawn per annotated image (the most confident ones).
pub const ANNOTATE_MAX_DETECTIONS: usize = 5;

/// Draw the model's most confident detections on the first `n` val images,
/// enlarged 4× so the labels are readable.
fn annotate(
    model: &Path,
    val_json: &Path,
    val_dir: &Path,
    n: usize,
    out: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let gt = load_gt(val_json).with_context(|| format!("loading {}", val_json.display()))?;
    let mut cfg = DeviceConfig::default();
    cfg.detect.score_thr = Some(ANNOTATE_SCORE_THR);
    cfg.detect.max_detections = Some(ANNOTATE_MAX_DETECTIONS);
    let mut det =
        Detector::from_file(model, &cfg).with_context(|| format!("loading {}", model.display()))?;
    const ZOOM: u32 = 4;
    let mut written = Vec::new();
    for img in gt.images.iter().take(n) {
        let path = val_dir.join(&img.file_name);
        let image = image::open(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut dets = det
            .detect(&image)
            .with_context(|| format!("running on {}", path.display()))?;
        for d in &mut dets {
            d.bbox = d.bbox.map(|v| v * ZOOM as f32);
        }
        let rgb = image.to_rgb8();
        let mut big = image::imageops::resize(
            &rgb,
            rgb.width() * ZOOM,
            rgb.height() * ZOOM,
            image::imageops::FilterType::Nearest,
        );
        draw_detections(&mut big, &dets, &DrawOptions::default());
        let name = Path::new(&img.file_name).with_extension("png");
        let file = out.join(name.file_name().unwrap_or(name.as_os_str()));
        save_image(&big, &file)?;
        written.push(file);
    }
    Ok(written)
}

/// Run `crosskd quickstart`.
pub fn run(args: QuickstartArgs) -> anyhow::Result<()> {
    quickstart(args).map(drop)
}

/// The quickstart pipeline; returns what `summary.json` holds.
pub fn quickstart(args: QuickstartArgs) -> anyhow::Result<Summary> {
    let t_start = Instant::now();
    let spec: DeviceSpec = args.device.parse()?;
    spec.check_available()?;
    crate::backend::set_cpu_threads(args.threads);
    let out = args.out.clone();
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let plan = if args.tiny {
        Plan::tiny()?
    } else {
        Plan::full()?
    }
    .rooted(&out);
    let progress = !args.quiet;
    let mut stages = Stages {
        total: 8,
        done: Vec::new(),
    };
    let data = out.join("data");
    stages.run("synthetic benchmark", || {
        let s = generate(&plan.synth, &data, progress)?;
        eprintln!(
            "    {} train + {} val images ({} px, {} classes) in {}",
            s.train.images,
            s.val.images,
            plan.synth.size,
            s.categories.len(),
            data.display()
        );
        Ok(())
    })?;
    let trained =
        crate::with_autodiff_backend!(spec, train_models(&plan, &out, &mut stages, progress))?;
    let export_dir = out.join("export");
    std::fs::create_dir_all(&export_dir)
        .with_context(|| format!("creating {}", export_dir.display()))?;
    let fp32 = export_dir.join("student_crosskd.onnx");
    let int8 = export_dir.join("student_crosskd.int8.onnx");
    stages.run("export fp32 + int8 ONNX", || {
        export_checkpoint(
            &trained.crosskd_checkpoint,
            None,
            &fp32,
            None,
            DEFAULT_OPSET,
            true,
        )?;
        quantize_file(
            &fp32,
            &plan.teacher.data.train_ann,
            None,
            plan.calib_images,
            &QuantizeOptions::default(),
            &int8,
            progress,
        )
    })?;
    let (val_json, val_dir) = (&plan.teacher.data.val_ann, &plan.teacher.data.val_images);
    let mut deploy = Vec::new();
    for (name, file) in [("SDK fp32", &fp32), ("SDK int8", &int8)] {
        let e = stages.run(&format!("{name}: detect + evaluate the val set"), || {
            evaluate_onnx(file, val_json, val_dir, 1, progress)
        })?;
        deploy.push(deploy_row(name, file, &e));
    }
    let annotated = stages.run("annotated images", || {
        annotate(
            &fp32,
            val_json,
            val_dir,
            plan.annotated_images,
            &out.join("annotated"),
        )
    })?;
    let gain = trained.rows[2].ap.ap - trained.rows[1].ap.ap;
    let mut summary = Summary {
        dataset: plan.synth.clone(),
        models: trained.rows,
        crosskd_gain_ap: gain,
        deploy,
        stages: Vec::new(),
        annotated,
        total_s: 0.0,
    };
    summary.stages = stages.done.clone();
    summary.total_s = t_start.elapsed().as_secs_f64();
    write_summary(&summary, &out)?;
    print!("{}", markdown(&summary));
    eprintln!(
        "quickstart done in {:.0} s: {}",
        summary.total_s,
        out.join("summary.md").display()
    );
    Ok(summary)
}

/// Write `summary.json` and `summary.md` into `out`.
fn write_summary(s: &Summary, out: &Path) -> anyhow::Result<()> {
    let json = out.join("summary.json");
    std::fs::write(&json, serde_json::to_string_pretty(s)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let md = out.join("summary.md");
    std::fs::write(&md, markdown(s)).with_context(|| format!("writing {}", md.display()))?;
    Ok(())
}

/// The summary as markdown tables (AP ×100, as the papers print it).
pub fn markdown(s: &Summary) -> String {
    use std::fmt::Write as _;
    let d = &s.dataset;
    let mut m = String::new();
    let _ = writeln!(m, "# CrossKD quickstart\n");
    let _ = writeln!(
        m,
        "Synthetic benchmark: {} train / {} val images, {} px, {} classes, seed {}. \
         COCO box AP on the val set (×100).\n",
        d.train, d.val, d.size, d.classes, d.seed
    );
    let _ = writeln!(m, "| model | AP | AP50 | AP75 | iters | train s |");
    let _ = writeln!(m, "|---|---|---|---|---|---|");
    for r in &s.models {
        let _ = writeln!(m, "{} {} | {:.0} |", r.ap.cells(), r.iters, r.train_s);
    }
    let _ = writeln!(
        m,
        "\nCrossKD gain over the baseline student: **{:+.1} AP**.\n",
        100.0 * s.crosskd_gain_ap
    );
    let _ = writeln!(
        m,
        "CrossKD student exported and run by the edge SDK (tract, 1 thread) on the val set:\n"
    );
    let _ = writeln!(m, "| model | AP | AP50 | AP75 | MB | infer ms | total ms |");
    let _ = writeln!(m, "|---|---|---|---|---|---|---|");
    for r in &s.deploy {
        let _ = writeln!(
            m,
            "{} {:.2} | {:.1} | {:.1} |",
            r.ap.cells(),
            r.size_mb,
            r.infer_ms,
            r.total_ms
        );
    }
    let _ = writeln!(m, "\n| stage | wall s |");
    let _ = writeln!(m, "|---|---|");
    for (name, secs) in &s.stages {
        let _ = writeln!(m, "| {name} | {secs:.1} |");
    }
    let _ = writeln!(m, "| **total** | {:.1} |", s.total_s);
    let _ = writeln!(
        m,
        "\nLoss, learning-rate and AP curves: `<model>/loss.png`, `lr.png`, `ap.png`; \
         annotated val images (the fp32 model's {ANNOTATE_MAX_DETECTIONS} most confident \
         detections with score ≥ {ANNOTATE_SCORE_THR}): `annotated/`; configs: `configs/`."
    );
    m
}
