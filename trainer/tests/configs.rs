//! Every shipped config in `trainer/configs/` parses (unknown keys are
//! rejected), builds a valid detector description, and every distillation
//! config pairs with the teacher it names.

use std::path::{Path, PathBuf};

use crosskd_trainer::config::TrainConfig;
use crosskd_trainer::distill::check_pair;

fn configs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn load(p: &Path) -> TrainConfig {
    let text = std::fs::read_to_string(p).unwrap();
    TrainConfig::from_toml(&text, p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn every_config_parses_and_validates() {
    let files = configs();
    // Paper: 4 detectors × (teacher, student, crosskd, crosskd+pkd); synth: 4 × 2;
    // quickstart: teacher + student.
    assert_eq!(files.len(), 26, "{files:?}");
    for p in &files {
        let cfg = load(p);
        cfg.model
            .validate()
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
}

#[test]
fn distillation_configs_pair_with_their_teachers() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut pairs = 0;
    for p in configs() {
        let cfg = load(&p);
        let Some(d) = &cfg.distill else { continue };
        // The teacher checkpoint lives in work_dirs/<teacher config stem>/.
        let ckpt = d.teacher_checkpoint.as_ref().expect("teacher_checkpoint");
        let stem = ckpt
            .parent()
            .and_then(|w| w.file_name())
            .unwrap()
            .to_string_lossy()
            .to_string();
        let teacher = load(&dir.join(format!("{stem}.toml")));
        let settings = d.settings(cfg.model.kind());
        check_pair(&cfg.model, &teacher.model, &settings)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        pairs += 1;
    }
    assert_eq!(pairs, 13);
}

#[test]
fn a_misspelt_key_names_the_key_and_file() {
    let p = configs()
        .into_iter()
        .find(|p| p.ends_with("synth_gfl_student.toml"))
        .unwrap();
    let text = std::fs::read_to_string(&p).unwrap().replace(
        "mode = \"crosskd\"",
        "mode = \"crosskd\"\nreused_head_idx = 2",
    );
    let e = TrainConfig::from_toml(&text, &p).unwrap_err().to_string();
    assert!(
        e.contains("reused_head_idx") && e.contains("synth_gfl_student.toml"),
        "{e}"
    );
}
