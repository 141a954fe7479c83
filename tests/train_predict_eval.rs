//! End to end on generated data: synth → `train` (a few iterations, with an
//! evaluation) → checkpoint → `predict_dataset` from the checkpoint → COCO
//! evaluation reproduces the AP the training loop recorded; resume continues
//! from the checkpoint without repeating iterations.

mod common;

use std::path::PathBuf;

use crosskd_trainer::backend::{Flex, FlexAutodiff};
use crosskd_trainer::config::TrainConfig;
use crosskd_trainer::data::coco::load_gt;
use crosskd_trainer::data::synth::{generate, SynthConfig};
use crosskd_trainer::eval::coco::evaluate;
use crosskd_trainer::eval::inference::predict_dataset;
use crosskd_trainer::train::checkpoint::{latest, load_detector};
use crosskd_trainer::train::runner::{load_data, train, RunOptions};

use common::tiny_config;

fn config(data: &std::path::Path, work: &std::path::Path, iters: usize) -> (TrainConfig, String) {
    let head = "type = \"atss\"\nnum_classes = 3\nin_channels = 16\nfeat_channels = 16\n\
                stacked_convs = 1\ngn_groups = 4";
    let schedule = format!(
        "iters = {iters}\nbase_lr = 0.01\neval_interval = 2\ncheckpoint_interval = 2\n\
         log_interval = 1\n[schedule.warmup]\niters = 2"
    );
    tiny_config(data, work, head, &schedule)
}

#[test]
fn train_checkpoint_predict_eval_and_resume() {
    let root: PathBuf = std::env::temp_dir().join(format!("crosskd-e2e-{}", std::process::id()));
    let data = root.join("data");
    let synth = SynthConfig {
        train: 8,
        val: 4,
        size: 64,
        classes: 3,
        seed: 5,
        ..SynthConfig::default()
    };
    generate(&synth, &data, false).unwrap();
    let work = root.join("work");
    let (cfg, text) = config(&data, &work, 2);
    let opts = RunOptions {
        resume: false,
        progress: false,
        config_text: text,
    };
    let device = Default::default();
    let summary = train::<FlexAutodiff>(&cfg, &work, &device, &opts).unwrap();
    assert_eq!(summary.iters, 2);
    let recorded = summary.last.expect("evaluated at iteration 2").stats;

    // Predict from the checkpoint on the inference backend and evaluate again.
    let ckpt = latest(&work).expect("a checkpoint");
    let (det, header) = load_detector::<Flex>(&ckpt, &device).unwrap();
    assert_eq!(header.iter, 2);
    let run = load_data(&cfg).unwrap();
    let (dets, skipped) = predict_dataset(&det, &run.val, &cfg.test_cfg(), &device, false).unwrap();
    assert!(skipped.is_empty());
    let stats = evaluate(&load_gt(&cfg.data.val_ann).unwrap(), &dets).stats;
    for (a, b) in recorded.iter().zip(&stats) {
        assert!(
            (a - b).abs() < 1e-9,
            "training-time eval {recorded:?} vs checkpoint predict {stats:?}"
        );
    }

    // Resume to 4 iterations: starts at 2, writes iteration 4's checkpoint and metrics rows.
    let (cfg4, text4) = config(&data, &work, 4);
    let opts = RunOptions {
        resume: true,
        progress: false,
        config_text: text4,
    };
    let s4 = train::<FlexAutodiff>(&cfg4, &work, &device, &opts).unwrap();
    assert_eq!(s4.iters, 4);
    let (_, h4) = load_detector::<Flex>(&latest(&work).unwrap(), &device).unwrap();
    assert_eq!(h4.iter, 4);
    let csv = std::fs::read_to_string(work.join("metrics.csv")).unwrap();
    let iters: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    // One step row per iteration (0..=3) and an eval row at 2 and 4, no duplicates from the resume.
    assert_eq!(iters, ["0", "1", "2", "2", "3", "4"], "{csv}");
    assert!(work.join("loss.png").is_file());
    std::fs::remove_dir_all(&root).ok();
}
