//! What `crosskd export` exports: a checkpoint's detector, checked against the
//! config given on the command line, plus the deployment facts the metadata
//! needs (classes, normalisation, test settings, input size).
//!
//! The config is read leniently (only `[model]`, `[data.val_pipeline]` and
//! `[test_cfg]` matter here), so training and distillation configs both work;
//! a distillation config's student may sit under `[student.model]` or `[student]`.

use std::path::{Path, PathBuf};

use crosskd_sdk::{ModelMeta, TestConfig};
use serde_json::Value;

use super::input_size::default_input_size;
use super::ExportError;
use crate::backend::Flex;
use crate::data::pipeline::PipelineConfig;
use crate::model::detector::{Detector, DetectorConfig};
use crate::train::checkpoint::{load_detector, CheckpointHeader};

/// The parts of a config file export uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportConfig {
    /// The detector architecture.
    pub model: DetectorConfig,
    /// Test-time transforms (scale, normalisation).
    pub val_pipeline: PipelineConfig,
    /// Thresholds and NMS.
    pub test_cfg: TestConfig,
}

fn cfg_err(path: &Path, message: impl Into<String>) -> ExportError {
    ExportError::Config {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl ExportConfig {
    /// Parse TOML text; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, ExportError> {
        let v: toml::Value = toml::from_str(text).map_err(|e| cfg_err(origin, e.to_string()))?;
        let table = |v: &toml::Value, k: &str| v.get(k).cloned();
        let model_value = table(&v, "model")
            .or_else(|| table(&v, "student").and_then(|s| table(&s, "model").or(Some(s))))
            .ok_or_else(|| cfg_err(origin, "no [model] (or [student.model]) section"))?;
        let model: DetectorConfig = model_value
            .try_into()
            .map_err(|e: toml::de::Error| cfg_err(origin, format!("[model]: {e}")))?;
        model
            .validate()
            .map_err(|e| cfg_err(origin, e.to_string()))?;
        let val_pipeline: PipelineConfig = match v.get("data").and_then(|d| d.get("val_pipeline")) {
            Some(p) => p.clone().try_into().map_err(|e: toml::de::Error| {
                cfg_err(origin, format!("[data.val_pipeline]: {e}"))
            })?,
            None => PipelineConfig::test((1333, 800)),
        };
        val_pipeline
            .validate("data.val_pipeline")
            .map_err(|m| cfg_err(origin, m))?;
        let test_cfg = match v.get("test_cfg") {
            Some(t) => t
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| cfg_err(origin, format!("[test_cfg]: {e}")))?,
            None => TestConfig::for_kind(model.kind()),
        };
        Ok(Self {
            model,
            val_pipeline,
            test_cfg,
        })
    }

    /// Read and parse a config file.
    pub fn from_file(path: &Path) -> Result<Self, ExportError> {
        let text = std::fs::read_to_string(path).map_err(|source| ExportError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path)
    }
}

/// Dotted paths where two JSON values differ (at most `limit`).
fn diff_paths(a: &Value, b: &Value, prefix: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => diff_paths(u, v, &p, out),
                    (u, v) => out.push(format!("{p} ({} vs {})", show(u), show(v))),
                }
            }
        }
        _ if a != b => out.push(format!("{prefix} ({a} vs {b})")),
        _ => {}
    }
}

fn show(v: Option<&Value>) -> String {
    v.map_or("absent".into(), Value::to_string)
}

/// Settings that only matter for training: a config may differ from the
/// checkpoint there and still describe the same network.
fn training_only(path: &str) -> bool {
    let field = path.split(" (").next().unwrap_or(path);
    let last = field.rsplit('.').next().unwrap_or(field);
    last.starts_with("loss_")
        || matches!(
            last,
            "topk"
                | "regress_ranges"
                | "center_sampling"
                | "center_sample_radius"
                | "giou_loss"
                | "frozen_stages"
        )
}

/// Architecture differences between a config's model and a checkpoint's.
pub fn model_mismatches(config: &DetectorConfig, checkpoint: &DetectorConfig) -> Vec<String> {
    let (a, b) = (
        serde_json::to_value(config).expect("configs serialise"),
        serde_json::to_value(checkpoint).expect("configs serialise"),
    );
    let mut out = vec![];
    diff_paths(&a, &b, "model", &mut out);
    out.retain(|p| !training_only(p));
    out
}

/// A checkpoint loaded for export.
pub struct ExportSource {
    /// The detector with the checkpoint's weights.
    pub detector: Detector<Flex>,
    /// The checkpoint header (classes, category ids).
    pub header: CheckpointHeader,
    /// Config parts (from `--config`, else the checkpoint's stored training config).
    pub config: ExportConfig,
}

impl ExportSource {
    /// Load `checkpoint` and check it against `config` (when given).
    pub fn load(checkpoint: &Path, config: Option<&Path>) -> Result<Self, ExportError> {
        let device = Default::default();
        let (detector, header) = load_detector::<Flex>(checkpoint, &device)?;
        let config = match config {
            Some(p) => {
                let cfg = ExportConfig::from_file(p)?;
                let diffs = model_mismatches(&cfg.model, &header.model);
                if !diffs.is_empty() {
                    return Err(ExportError::Mismatch {
                        checkpoint: checkpoint.to_path_buf(),
                        config: p.to_path_buf(),
                        diffs: diffs.join(", "),
                    });
                }
                cfg
            }
            None => match &header.train_config {
                Some(text) => ExportConfig::from_toml(
                    text,
                    &PathBuf::from(format!("{} (stored config)", checkpoint.display())),
                )?,
                None => ExportConfig {
                    model: header.model.clone(),
                    val_pipeline: PipelineConfig::test((1333, 800)),
                    test_cfg: TestConfig::for_kind(header.model.kind()),
                },
            },
        };
        let n = header.model.head.num_classes();
        if header.class_names.len() != n {
            return Err(ExportError::Metadata(format!(
                "{}: {} class names for a {n}-class model",
                checkpoint.display(),
                header.class_names.len()
            )));
        }
        Ok(Self {
            detector,
            header,
            config,
        })
    }

    /// Default input `(w, h)`: the first test scale, padded to a multiple of 32.
    pub fn default_input_size(&self) -> (usize, usize) {
        default_input_size(self.config.val_pipeline.scales[0])
    }

    /// The SDK metadata for an export at `(w, h)`.
    pub fn meta(&self, input_size: (usize, usize)) -> ModelMeta {
        model_meta(
            &self.header.model,
            self.header.class_names.clone(),
            &self.config,
            input_size,
        )
    }
}

/// `ModelMeta` of `model` with the deployment settings of `config`.
pub fn model_meta(
    model: &DetectorConfig,
    class_names: Vec<String>,
    config: &ExportConfig,
    (w, h): (usize, usize),
) -> ModelMeta {
    let norm = config.val_pipeline.norm;
    let mut meta = ModelMeta::new(model.decode_spec(), class_names, (w as u32, h as u32));
    meta.test_cfg = config.test_cfg;
    meta.mean = norm.mean;
    meta.std = norm.std;
    meta.to_rgb = norm.to_rgb;
    let (long, short) = config.val_pipeline.scales[0];
    meta.test_scale = Some((long as u32, short as u32));
    meta
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::detector::tests::tiny_config;
    use crate::model::head::HeadConfig;
    use crosskd_sdk::HeadKind;

    #[test]
    fn mismatches_ignore_training_only_settings() {
        let a = tiny_config(HeadKind::Gfl);
        let mut b = a.clone();
        if let HeadConfig::Gfl(h) = &mut b.head {
            h.loss_cls_weight = 3.0;
            h.topk = 5;
        }
        b.backbone.frozen_stages = -1;
        assert!(model_mismatches(&a, &b).is_empty());
        b.neck.out_channels = 32;
        let d = model_mismatches(&a, &b);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].starts_with("model.neck.out_channels"), "{d:?}");
    }
}
