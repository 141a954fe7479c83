//! A board meets a new scene: the app collected a few dozen labelled frames
//! (here a COCO file; an app can push `Sample`s instead), fine-tunes the
//! deployed student on the board's CPU within the board config's `[finetune]`
//! budget, swaps the running detector to the new model without a restart, and
//! rolls back if a held-out frame set says the new model is worse.
//!
//! ```sh
//! crosskd synth --out shifted --train 50 --val 20 --size 160 --shift
//! cargo run --release -p finetune_on_device -- student.onnx \
//!     firmware-configs/x86-64-dev.toml shifted/train.json shifted/train shifted/val student.tuned.onnx
//! ```

use std::path::Path;
use std::process::ExitCode;

use crosskd_sdk::finetune::{Finetuner, Stage};
use crosskd_sdk::{Detector, DeviceConfig};

/// Mean top score over a folder of frames: a label-free proxy an app can use
/// to decide whether to keep the new model (a real app would score held-out
/// labelled frames).
fn mean_top_score(det: &mut Detector, frames: &Path) -> Result<f32, Box<dyn std::error::Error>> {
    let (mut sum, mut n) = (0.0, 0);
    for entry in std::fs::read_dir(frames)? {
        let img = image::open(entry?.path())?;
        sum += det.detect(&img)?.first().map_or(0.0, |d| d.score);
        n += 1;
    }
    Ok(sum / n.max(1) as f32)
}

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let [model, config, ann, images, held_out, out] = args else {
        return Err(
            "usage: finetune_on_device MODEL.onnx BOARD.toml LOCAL.json IMAGES/ HELD_OUT/ OUT.onnx"
                .into(),
        );
    };
    let cfg = DeviceConfig::from_file(config)?;
    let mut detector = Detector::from_file(model, &cfg)?;
    let before = mean_top_score(&mut detector, held_out.as_ref())?;

    let tuner = Finetuner::from_file(model.as_ref(), None, &cfg.finetune)?;
    let local = tuner.load_coco(ann.as_ref(), images.as_ref())?;
    let outcome = tuner.run_flex(
        &local,
        &mut |p| {
            if p.stage == Stage::Training && p.done % 50 == 0 {
                eprintln!("step {}/{} ({:.0?})", p.done, p.total, p.elapsed);
            }
        },
        None,
    )?;
    outcome.save(out.as_ref())?;

    detector.swap_model(out, &cfg)?;
    let after = mean_top_score(&mut detector, held_out.as_ref())?;
    println!("mean top score on held-out frames: {before:.3} -> {after:.3}");
    if after < before {
        detector.rollback()?;
        println!("worse: rolled back to {model}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
