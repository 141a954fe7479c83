//! Data-parallel training on CPU replicas, so CI exercises the multi-device
//! and multi-node paths without GPUs: two flex replicas in one process (one
//! thread each), and two `crosskd` processes joined over loopback through
//! burn-collective's orchestrator.
#![cfg(feature = "collective")]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;
use crosskd_trainer::backend::FlexAutodiff;
use crosskd_trainer::config::TrainConfig;
use crosskd_trainer::data::loader::collate;
use crosskd_trainer::data::pipeline::Sample;
use crosskd_trainer::data::synth::{generate, SynthConfig};
use crosskd_trainer::data::ImageMeta;
use crosskd_trainer::model::detector::Detector;
use crosskd_trainer::train::checkpoint::latest;
use crosskd_trainer::train::parallel::{parallel_step, ParallelOutcome};
use crosskd_trainer::train::parallel_cluster::{collective, ClusterConfig, Placement, World};
use crosskd_trainer::train::runner::{distill_on, init_detector, sgd, train_on, RunOptions};
use crosskd_trainer::train::{train_step, GtObjective};

type B = FlexAutodiff;

/// burn-collective keeps one local server per backend and process, and burn's
/// RNG is process-wide: these tests must not interleave.
static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn config_text(data: &Path, work: &Path, iters: usize, distill: &str) -> String {
    let d = data.display();
    format!(
        r#"
work_dir = "{w}"
[model.backbone]
depth = 18
width_mult = 0.125
frozen_stages = -1
[model.neck]
out_channels = 16
[model.head]
type = "atss"
num_classes = 3
in_channels = 16
feat_channels = 16
stacked_convs = 2
gn_groups = 4
[data]
train_ann = "{d}/train.json"
train_images = "{d}/train"
val_ann = "{d}/val.json"
val_images = "{d}/val"
batch_size = 2
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
checkpoint_interval = {iters}
log_interval = 1
[schedule.policy]
type = "step"
steps = [100]
{distill}
"#,
        w = work.display()
    )
}

fn config(data: &Path, work: &Path, iters: usize, distill: &str) -> (TrainConfig, String) {
    let text = config_text(data, work, iters, distill);
    (
        TrainConfig::from_toml(&text, Path::new("multi_device.toml")).unwrap(),
        text,
    )
}

fn synth(root: &Path) -> PathBuf {
    let data = root.join("data");
    let synth = SynthConfig {
        train: 8,
        val: 2,
        size: 64,
        classes: 3,
        seed: 5,
        ..SynthConfig::default()
    };
    generate(&synth, &data, false).unwrap();
    data
}

fn temp_root(name: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("crosskd-md-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&root).ok();
    std::fs::create_dir_all(&root).unwrap();
    root
}

/// Every float parameter, flattened, in visiting order.
struct Weights(Vec<Vec<f32>>);

impl<AB: AutodiffBackend> ModuleVisitor<AB> for Weights {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<AB, D>>) {
        self.0.push(p.val().into_data().to_vec::<f32>().unwrap());
    }
}

fn weights<M: Module<B>>(m: &M) -> Vec<Vec<f32>> {
    let mut w = Weights(Vec::new());
    m.visit(&mut w);
    w.0
}

/// A 64×64 image with fixed pseudo-random pixels (`seed`) and the same two boxes.
fn sample(seed: u32) -> Sample {
    let (h, w) = (64, 64);
    let mut x = seed.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let chw = (0..3 * h * w)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
        })
        .collect();
    let boxes = vec![[4.0, 6.0, 30.0, 40.0], [30.0, 20.0, 60.0, 58.0]];
    Sample {
        chw,
        h,
        w,
        meta: ImageMeta::new(u64::from(seed), h, w, boxes, vec![0, 2]),
    }
}

/// How the equality is derived: ATSS normalises its classification and
/// centerness losses by the number of positives and its box loss by the sum
/// of centerness targets, both of which depend only on the ground-truth
/// boxes. Both images carry the same boxes (different pixels), so they get
/// the same positives and normalisers, and the loss of the 2-image batch is
/// exactly the mean of the two 1-image losses. The backbone's BatchNorm runs
/// on frozen statistics (no coupling between images), so the gradient of the
/// whole batch equals the mean of the per-replica gradients, and the first
/// SGD step (momentum buffer = gradient, same weight decay) is the same up to
/// float summation order. Without the all-reduce, or with a sum instead of a
/// mean, the updates would differ by O(1) of their size, far above the 1e-3
/// tolerance.
#[test]
fn two_flex_replicas_take_the_single_device_step_on_the_whole_batch() {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let root = temp_root("equiv");
    let (cfg, _) = config(&root, &root, 1, "");
    let device = Default::default();
    let det0 = init_detector::<B>(&cfg, &device).unwrap();
    let lr = 0.01;

    // One device, both images.
    let mut optim = sgd(&cfg).init::<B, Detector<B>>();
    let batch = collate::<B>(vec![sample(1), sample(2)], 32, &device);
    let (reference, out) = train_step(det0.clone(), &mut optim, &GtObjective, &batch, lr, None);
    let reference_loss = out.unwrap().total;

    // Two replicas, one image each, gradients averaged by burn-collective.
    let world = World {
        nodes: 1,
        node_rank: 0,
        local: 2,
    };
    let cluster = ClusterConfig::default();
    let ccfg = collective::config(&cluster, world).unwrap();
    let replica = |peer: usize, image: u32, det: Detector<B>| {
        let (ccfg, cluster, cfg) = (ccfg.clone(), cluster.clone(), cfg.clone());
        std::thread::spawn(move || {
            let device = Default::default();
            collective::register::<burn::backend::Flex>(peer, device, ccfg, &cluster).unwrap();
            let mut optim = sgd(&cfg).init::<B, Detector<B>>();
            let r = parallel_step::<B, _, _>(
                peer,
                2,
                det,
                &mut optim,
                &GtObjective,
                vec![sample(image)],
                32,
                &device,
                lr,
                None,
                false,
            )
            .unwrap();
            collective::finish::<burn::backend::Flex>(peer);
            r
        })
    };
    let t0 = replica(0, 1, det0.clone());
    let t1 = replica(1, 2, det0.clone());
    let (r0, r1) = (t0.join().unwrap(), t1.join().unwrap());
    let ParallelOutcome::Applied(out0) = r0.1 else {
        panic!("rank 0 did not step: {:?}", r0.1)
    };
    assert!(matches!(r1.1, ParallelOutcome::Applied(_)));
    assert!(
        (out0.total - reference_loss).abs() <= 1e-4 * reference_loss.abs(),
        "mean replica loss {} vs whole-batch loss {reference_loss}",
        out0.total
    );

    let (w0, w1, wr, wi) = (
        weights(&r0.0),
        weights(&r1.0),
        weights(&reference),
        weights(&det0),
    );
    assert_eq!(w0, w1, "the two replicas must hold identical weights");
    let (mut max_update, mut max_diff) = (0f32, 0f32);
    for ((p, r), i) in w0.iter().zip(&wr).zip(&wi) {
        for ((p, r), i) in p.iter().zip(r).zip(i) {
            max_update = max_update.max((r - i).abs());
            max_diff = max_diff.max((p - r).abs());
        }
    }
    assert!(max_update > 1e-6, "the step changed nothing ({max_update})");
    assert!(
        max_diff <= 1e-3 * max_update,
        "data-parallel update differs from the whole-batch update by {max_diff} (largest update {max_update})"
    );
    std::fs::remove_dir_all(&root).ok();
}

fn opts(text: &str) -> RunOptions {
    RunOptions {
        resume: false,
        progress: false,
        config_text: text.to_string(),
    }
}

#[test]
fn train_and_distill_run_on_two_flex_devices() {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let root = temp_root("e2e");
    let data = synth(&root);
    let placement = Placement::<B> {
        devices: vec![Default::default(), Default::default()],
        cluster: ClusterConfig::default(),
    };
    // 8 images, 2 per replica, 2 replicas: 2 iterations are one epoch.
    let twork = root.join("teacher");
    let (tcfg, ttext) = config(&data, &twork, 2, "");
    let s = train_on(&tcfg, &twork, &placement, &opts(&ttext)).unwrap();
    assert_eq!(s.iters, 2);
    let ckpt = latest(&twork).expect("rank 0 wrote the checkpoint");
    let metrics = std::fs::read_to_string(twork.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "{metrics}");

    let section = format!(
        "[distill]\nmode = \"crosskd\"\nreused_teacher_head_idx = 1\nteacher_checkpoint = \"{}\"",
        ckpt.display()
    );
    let swork = root.join("student");
    let (scfg, stext) = config(&data, &swork, 2, &section);
    let s = distill_on(&scfg, &swork, &placement, &opts(&stext)).unwrap();
    assert_eq!(s.iters, 2);
    assert!(latest(&swork).is_some());
    std::fs::remove_dir_all(&root).ok();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn crosskd(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_crosskd"))
        .args(args)
        // burn-collective logs to stdout; an undrained pipe would block it.
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait for `child` at most `limit`; kill it after. Returns (success, stderr).
fn wait(mut child: Child, limit: Duration) -> (bool, String) {
    let t0 = Instant::now();
    let ok = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.success();
        }
        if t0.elapsed() > limit {
            child.kill().ok();
            child.wait().ok();
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).ok();
    (ok, err)
}

fn fingerprint(log: &str) -> Option<String> {
    log.lines()
        .find_map(|l| l.split("weights fingerprint ").nth(1))
        .map(str::to_string)
}

#[test]
fn two_processes_on_loopback_end_with_identical_weights() {
    let root = temp_root("nodes");
    let data = {
        let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        synth(&root)
    };
    let work = root.join("work");
    let cfg_path = root.join("cfg.toml");
    std::fs::write(&cfg_path, config_text(&data, &work, 3, "")).unwrap();
    let orch = format!("127.0.0.1:{}", free_port());
    let node = |rank: usize| {
        let mut a: Vec<String> = [
            "train",
            "--quiet",
            "--threads",
            "1",
            "--config",
            cfg_path.to_str().unwrap(),
            "--nodes",
            "2",
            "--join-timeout",
            "60",
        ]
        .map(String::from)
        .to_vec();
        a.extend([
            "--node-rank".into(),
            rank.to_string(),
            "--orchestrator".into(),
            orch.clone(),
            "--node-address".into(),
            format!("127.0.0.1:{}", free_port()),
        ]);
        if rank == 0 {
            a.push("--serve-orchestrator".into());
        }
        crosskd(&a)
    };
    let n0 = node(0);
    let n1 = node(1);
    let (ok1, log1) = wait(n1, Duration::from_secs(120));
    let (ok0, log0) = wait(n0, Duration::from_secs(30));
    assert!(ok0, "node 0 failed:\n{log0}");
    assert!(ok1, "node 1 failed:\n{log1}");
    let (f0, f1) = (fingerprint(&log0), fingerprint(&log1));
    assert!(f0.is_some(), "node 0 printed no fingerprint:\n{log0}");
    assert_eq!(
        f0, f1,
        "the nodes' weights differ\nnode 0:\n{log0}\nnode 1:\n{log1}"
    );
    assert!(latest(&work).is_some(), "node 0 wrote no checkpoint");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn unreachable_orchestrator_and_bad_devices_are_clear_errors() {
    let root = temp_root("errors");
    let data = synth(&root);
    let cfg_path = root.join("cfg.toml");
    std::fs::write(&cfg_path, config_text(&data, &root.join("work"), 1, "")).unwrap();
    let base = |extra: &[&str]| {
        let mut a: Vec<String> = ["train", "--quiet", "--config", cfg_path.to_str().unwrap()]
            .map(String::from)
            .to_vec();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let (ok, err) = wait(
        crosskd(&base(&["--devices", "flex,ndarray"])),
        Duration::from_secs(20),
    );
    assert!(!ok && err.contains("one backend"), "{err}");
    let (ok, err) = wait(
        crosskd(&base(&["--nodes", "2", "--node-rank", "1"])),
        Duration::from_secs(20),
    );
    assert!(!ok && err.contains("--orchestrator"), "{err}");
    // Nobody serves this port: joining must give up after --join-timeout.
    let t0 = Instant::now();
    let (ok, err) = wait(
        crosskd(&base(&[
            "--nodes",
            "2",
            "--node-rank",
            "1",
            "--orchestrator",
            &format!("127.0.0.1:{}", free_port()),
            "--node-address",
            &format!("127.0.0.1:{}", free_port()),
            "--join-timeout",
            "2",
        ])),
        Duration::from_secs(30),
    );
    assert!(!ok && err.contains("orchestrator"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(30));
    std::fs::remove_dir_all(&root).ok();
}
