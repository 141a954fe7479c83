//! `crosskd train` configuration files (TOML; unknown keys are rejected).
//!
//! ```toml
//! work_dir = "work_dirs/gfl_r18"
//! [model.backbone]
//! depth = 18
//! [model.neck]
//! out_channels = 256
//! [model.head]
//! type = "gfl"
//! num_classes = 8
//! [data]
//! train_ann = "synth/train.json"
//! train_images = "synth/train"
//! val_ann = "synth/val.json"
//! val_images = "synth/val"
//! batch_size = 8
//! [data.train_pipeline]
//! scales = [[320, 320]]
//! flip_prob = 0.5
//! [data.val_pipeline]
//! scales = [[320, 320]]
//! [schedule]
//! epochs = 12
//! base_lr = 0.01
//! ```

use std::path::{Path, PathBuf};

use crosskd_sdk::TestConfig;
use serde::{Deserialize, Serialize};

use crate::data::pipeline::PipelineConfig;
use crate::model::detector::DetectorConfig;
use crate::train::schedule::ScheduleConfig;

/// A whole training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Where checkpoints, metrics and plots go (default: `work_dirs/<config stem>`).
    #[serde(default)]
    pub work_dir: Option<PathBuf>,
    /// The detector.
    pub model: DetectorConfig,
    /// Datasets and loading.
    pub data: DataConfig,
    /// Optimiser and learning-rate schedule.
    pub schedule: ScheduleConfig,
    /// Test-time decoding (default: the head's MMDet settings).
    #[serde(default)]
    pub test_cfg: Option<TestConfig>,
    /// Initial weights.
    #[serde(default)]
    pub init: InitConfig,
    /// Distillation (`crosskd distill`): teacher and KD settings.
    #[serde(default)]
    pub distill: Option<crate::distill::DistillConfig>,
}

/// `[init]`: pretrained weights.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitConfig {
    /// torchvision ResNet weights (`.pth` or `.safetensors`) for the backbone.
    #[serde(default)]
    pub backbone: Option<PathBuf>,
}

/// `[data]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// COCO annotation file of the training set.
    pub train_ann: PathBuf,
    /// Folder of the training images.
    pub train_images: PathBuf,
    /// COCO annotation file of the validation set.
    pub val_ann: PathBuf,
    /// Folder of the validation images.
    pub val_images: PathBuf,
    /// Images per batch (per device).
    #[serde(default = "two")]
    pub batch_size: usize,
    /// Decoding threads.
    #[serde(default = "two")]
    pub workers: usize,
    /// Group landscape/portrait images into separate batches.
    #[serde(default = "yes")]
    pub aspect_grouping: bool,
    /// Seed of the data order and augmentation.
    #[serde(default)]
    pub seed: u64,
    /// Training transforms.
    pub train_pipeline: PipelineConfig,
    /// Validation transforms.
    pub val_pipeline: PipelineConfig,
}

fn two() -> usize {
    2
}

fn yes() -> bool {
    true
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// Unreadable file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Not valid TOML or not this schema (unknown key, wrong type, ...).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What and where (line, column, key).
        message: String,
    },
    /// Values that do not go together.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What and which key.
        message: String,
    },
}

impl TrainConfig {
    /// Read, parse and validate a TOML config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parse and validate TOML text; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, ConfigFileError> {
        let cfg: TrainConfig = toml::from_str(text).map_err(|e| ConfigFileError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        cfg.validate().map_err(|message| ConfigFileError::Invalid {
            path: origin.to_path_buf(),
            message,
        })?;
        Ok(cfg)
    }

    /// Cross-field checks; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        self.model.validate().map_err(|e| e.to_string())?;
        self.data.train_pipeline.validate("data.train_pipeline")?;
        self.data.val_pipeline.validate("data.val_pipeline")?;
        if self.data.batch_size == 0 {
            return Err("data.batch_size must be positive".into());
        }
        self.schedule.validate()?;
        Ok(())
    }

    /// The work directory: configured, or `work_dirs/<config file stem>`.
    pub fn work_dir_for(&self, config_path: &Path) -> PathBuf {
        self.work_dir.clone().unwrap_or_else(|| {
            let stem = config_path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned());
            PathBuf::from("work_dirs").join(stem.unwrap_or_else(|| "run".into()))
        })
    }

    /// Test-time settings: configured or the head's defaults.
    pub fn test_cfg(&self) -> TestConfig {
        self.test_cfg
            .unwrap_or_else(|| TestConfig::for_kind(self.model.kind()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[model.backbone]
depth = 18
[model.neck]
out_channels = 64
[model.head]
type = "gfl"
num_classes = 8
in_channels = 64
feat_channels = 64
[data]
train_ann = "t.json"
train_images = "t"
val_ann = "v.json"
val_images = "v"
[data.train_pipeline]
scales = [[320, 320]]
flip_prob = 0.5
[data.val_pipeline]
scales = [[320, 320]]
[schedule]
epochs = 12
base_lr = 0.01
"#;

    #[test]
    fn parses_the_documented_example() {
        let cfg = TrainConfig::from_toml(EXAMPLE, Path::new("x.toml")).unwrap();
        assert_eq!(cfg.model.head.num_classes(), 8);
        assert_eq!(cfg.data.batch_size, 2);
        assert_eq!(
            cfg.work_dir_for(Path::new("configs/x.toml")),
            PathBuf::from("work_dirs/x")
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let bad = EXAMPLE.replace("flip_prob = 0.5", "flip_prob = 0.5\nflip_probability = 1");
        let err = TrainConfig::from_toml(&bad, Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x.toml") && err.contains("flip_probability"),
            "{err}"
        );
        let bad = EXAMPLE.replace("num_classes = 8", "num_classes = 0");
        let err = TrainConfig::from_toml(&bad, Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("head.num_classes"), "{err}");
        let bad = EXAMPLE.replace("epochs = 12", "epochs = \"twelve\"");
        let err = TrainConfig::from_toml(&bad, Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("epochs"), "{err}");
    }
}
