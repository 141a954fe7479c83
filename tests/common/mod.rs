//! Shared by the workspace tests: a tiny student's training config on generated data.

use std::path::Path;

use crosskd_trainer::config::TrainConfig;

/// R18×0.125 backbone, 16-channel FPN, batch 4, 64×64 train and val scales, on
/// the synthetic set in `data` (`crosskd_trainer::data::synth::generate`).
/// `head` is the body of `[model.head]`, `schedule` the body of `[schedule]`
/// (sub-tables such as `[schedule.warmup]` included). Returns the parsed config
/// and its text (what checkpoints store).
pub fn tiny_config(data: &Path, work: &Path, head: &str, schedule: &str) -> (TrainConfig, String) {
    let text = format!(
        r#"
work_dir = "{w}"
[model.backbone]
depth = 18
width_mult = 0.125
[model.neck]
out_channels = 16
[model.head]
{head}
[data]
train_ann = "{d}/train.json"
train_images = "{d}/train"
val_ann = "{d}/val.json"
val_images = "{d}/val"
batch_size = 4
[data.train_pipeline]
scales = [[64, 64]]
flip_prob = 0.5
[data.val_pipeline]
scales = [[64, 64]]
[schedule]
{schedule}
"#,
        w = work.display(),
        d = data.display(),
    );
    let cfg = TrainConfig::from_toml(&text, Path::new("tiny.toml")).unwrap();
    (cfg, text)
}
