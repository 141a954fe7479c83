//! `crosskd distill` machinery end to end on generated data: a tiny teacher is
//! trained, then students are distilled from its checkpoint. Checks that an
//! interrupted-and-resumed distillation takes exactly the steps of an
//! uninterrupted one (same losses), and that a NaN loss stops the run with the
//! last good checkpoint intact.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crosskd_trainer::backend::{Flex, FlexAutodiff};
use crosskd_trainer::config::TrainConfig;
use crosskd_trainer::data::synth::{generate, SynthConfig};
use crosskd_trainer::data::Batch;
use crosskd_trainer::distill::{DistillStudent, Distiller};
use crosskd_trainer::model::detector::{Detector, InputError};
use crosskd_trainer::model::loss_dict::LossDict;
use crosskd_trainer::train::checkpoint::{latest, load_detector, CheckpointFile};
use crosskd_trainer::train::runner::{distill, train, train_objective, RunOptions};
use crosskd_trainer::train::Objective;

type B = FlexAutodiff;

/// burn's RNG is process-wide: runs whose initialisation must be reproducible
/// may not interleave with another test's.
static RUN_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A tiny ATSS config; `width` sets FPN and head channels, `distill` appends a section.
fn config(
    data: &Path,
    work: &Path,
    iters: usize,
    width: usize,
    distill: &str,
) -> (TrainConfig, String) {
    let d = data.display();
    let text = format!(
        r#"
work_dir = "{w}"
[model.backbone]
depth = 18
width_mult = 0.125
frozen_stages = -1
[model.neck]
out_channels = {width}
[model.head]
type = "atss"
num_classes = 3
in_channels = {width}
feat_channels = {width}
stacked_convs = 2
gn_groups = 4
[data]
train_ann = "{d}/train.json"
train_images = "{d}/train"
val_ann = "{d}/val.json"
val_images = "{d}/val"
batch_size = 4
seed = 3
[data.train_pipeline]
scales = [[64, 64]]
flip_prob = 0.5
[data.val_pipeline]
scales = [[64, 64]]
[schedule]
iters = {iters}
base_lr = 0.01
eval_interval = 0
checkpoint_interval = 2
log_interval = 1
[schedule.policy]
type = "step"
steps = [100]
[schedule.warmup]
iters = 2
{distill}
"#,
        w = work.display()
    );
    (
        TrainConfig::from_toml(&text, Path::new("distill_run.toml")).unwrap(),
        text,
    )
}

fn opts(text: &str, resume: bool) -> RunOptions {
    RunOptions {
        resume,
        progress: false,
        config_text: text.to_string(),
    }
}

/// `(iter, total loss)` step rows of a metrics.csv.
fn step_losses(work: &Path) -> Vec<(usize, f64)> {
    let csv = std::fs::read_to_string(work.join("metrics.csv")).unwrap();
    csv.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1].parse().unwrap(), f[4].parse().unwrap())
        })
        .collect()
}

fn setup(name: &str) -> (PathBuf, PathBuf, String) {
    let root = std::env::temp_dir().join(format!("crosskd-{name}-{}", std::process::id()));
    let data = root.join("data");
    let synth = SynthConfig {
        train: 8,
        val: 4,
        size: 64,
        classes: 3,
        seed: 11,
        ..SynthConfig::default()
    };
    generate(&synth, &data, false).unwrap();
    let twork = root.join("teacher");
    let (tcfg, ttext) = config(&data, &twork, 2, 16, "");
    let device = Default::default();
    train::<B>(&tcfg, &twork, &device, &opts(&ttext, false)).unwrap();
    let ckpt = latest(&twork).unwrap();
    let section = format!(
        "[distill]\nmode = \"crosskd+pkd\"\nreused_teacher_head_idx = 1\nteacher_checkpoint = \"{}\"",
        ckpt.display()
    );
    (root, data, section)
}

#[test]
fn resumed_distillation_repeats_the_uninterrupted_steps() {
    let _guard = RUN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let (root, data, section) = setup("distill-resume");
    let device = Default::default();
    // Uninterrupted: 4 iterations. Student is narrower (8 vs 16 channels): adapters train too.
    let full = root.join("full");
    let (cfg4, text4) = config(&data, &full, 4, 8, &section);
    distill::<B>(&cfg4, &full, &device, &opts(&text4, false)).unwrap();
    // Interrupted after 2 (its checkpoint holds student, adapters and optimizer), then resumed to 4.
    let part = root.join("part");
    let (cfg2, text2) = config(&data, &part, 2, 8, &section);
    distill::<B>(&cfg2, &part, &device, &opts(&text2, false)).unwrap();
    let (cfg4b, text4b) = config(&data, &part, 4, 8, &section);
    let s = distill::<B>(&cfg4b, &part, &device, &opts(&text4b, true)).unwrap();
    assert_eq!(s.iters, 4);
    let (a, b) = (step_losses(&full), step_losses(&part));
    assert_eq!(a.iter().map(|r| r.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
    assert_eq!(b.iter().map(|r| r.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
    for ((i, x), (_, y)) in a.iter().zip(&b) {
        assert!(
            (x - y).abs() <= 1e-5 * x.abs().max(1.0),
            "iteration {i}: uninterrupted loss {x} vs resumed {y}"
        );
    }
    // The distilled checkpoint is a plain student detector for inference.
    let (det, header) = load_detector::<Flex>(&latest(&part).unwrap(), &device).unwrap();
    assert_eq!(header.iter, 4);
    assert_eq!(det.config.neck.out_channels, 8);
    std::fs::remove_dir_all(&root).ok();
}

/// The distiller with a NaN loss component injected at one call.
struct NanAt {
    inner: Distiller<B>,
    at: usize,
    calls: AtomicUsize,
}

impl Objective<B> for NanAt {
    type Model = DistillStudent<B>;
    fn detector<'a>(&self, m: &'a DistillStudent<B>) -> &'a Detector<B> {
        &m.detector
    }
    fn loss(&self, m: &DistillStudent<B>, batch: &Batch<B>) -> Result<LossDict<B>, InputError> {
        let mut l = self.inner.loss(m, batch)?;
        if self.calls.fetch_add(1, Ordering::SeqCst) == self.at {
            let nan = l.items[0].1.clone().mul_scalar(f32::NAN);
            l.items[0].1 = nan;
        }
        Ok(l)
    }
    fn loss_names(&self, m: &DistillStudent<B>) -> Vec<String> {
        Objective::<B>::loss_names(&self.inner, m)
    }
    fn extra_bytes(&self, m: &DistillStudent<B>) -> Option<Vec<u8>> {
        Objective::<B>::extra_bytes(&self.inner, m)
    }
    fn load(
        &self,
        m: DistillStudent<B>,
        f: &CheckpointFile,
        d: &burn::tensor::Device<B>,
    ) -> anyhow::Result<DistillStudent<B>> {
        Objective::<B>::load(&self.inner, m, f, d)
    }
}

#[test]
fn a_nan_loss_stops_distillation_and_keeps_the_last_good_checkpoint() {
    let _guard = RUN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let (root, data, section) = setup("distill-nan");
    let device = Default::default();
    let work = root.join("nan");
    let (cfg, text) = config(&data, &work, 4, 8, &section);
    let d = cfg.distill.as_ref().unwrap();
    let (teacher, _) = load_detector::<B>(d.teacher_checkpoint.as_ref().unwrap(), &device).unwrap();
    let inner = Distiller::new(Some(teacher), &cfg.model, d).unwrap();
    let student = inner.student(cfg.model.init(&device).unwrap(), &device);
    let objective = NanAt {
        inner,
        at: 3,
        calls: AtomicUsize::new(0),
    };
    std::fs::create_dir_all(&work).unwrap();
    let err = train_objective(
        &cfg,
        &work,
        &device,
        &opts(&text, false),
        &objective,
        student,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("iteration 3") && err.contains("NaN"), "{err}");
    assert!(err.contains("iter_2.ckpt"), "{err}");
    let last = latest(&work).unwrap();
    assert!(last.ends_with("iter_2.ckpt"));
    let (_, h) = load_detector::<Flex>(&last, &device).unwrap();
    assert_eq!(h.iter, 2);
    std::fs::remove_dir_all(&root).ok();
}
