//! The model-metadata schema the exporter writes next to (or into) the ONNX file
//! and the runtime reads back: how to preprocess, how to decode, what the classes are.
//!
//! ```
//! use crosskd_sdk::{DecodeSpec, ModelMeta, TestConfig};
//! let meta = ModelMeta::new(DecodeSpec::gfl(2), vec!["cat".into(), "dog".into()], (640, 640));
//! let json = meta.to_json();
//! assert_eq!(ModelMeta::from_json(&json).unwrap(), meta);
//! ```

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::coders::DeltaXywhCoder;
use crate::decode::{DecodeError, DecodeSpec, HeadKind, LevelOutput};
use crate::detection::Detection;
use crate::postprocess::{postprocess, TestConfig};
use crate::priors::AnchorGenerator;

/// Version of the metadata layout this crate reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// ImageNet RGB mean of pytorch-style backbones.
pub const PYTORCH_MEAN: [f32; 3] = [123.675, 116.28, 103.53];
/// ImageNet RGB std of pytorch-style backbones.
pub const PYTORCH_STD: [f32; 3] = [58.395, 57.12, 57.375];

/// Metadata key holding the head's training configuration (the trainer's
/// `[model.head]` as JSON): on-device fine-tuning rebuilds the head from it.
pub const HEAD_CONFIG_KEY: &str = "crosskd.head_config";
/// Metadata key holding the FPN's configuration (JSON, with the real input
/// channels): on-device fine-tuning rebuilds the neck from it.
pub const NECK_CONFIG_KEY: &str = "crosskd.neck_config";

/// Everything the runtime needs to know about an exported model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelMeta {
    /// Must equal [`FORMAT_VERSION`].
    pub format_version: u32,
    /// How to decode the head outputs.
    pub decode: DecodeSpec,
    /// Thresholds, NMS and detection limits.
    pub test_cfg: TestConfig,
    /// One name per class, `num_classes` of them.
    pub class_names: Vec<String>,
    /// Network input size `(w, h)` in pixels (a JSON array `[w, h]`).
    pub input_size: (u32, u32),
    /// Per-channel mean subtracted from the input, in the channel order the network sees.
    pub mean: [f32; 3],
    /// Per-channel std the input is divided by.
    pub std: [f32; 3],
    /// Whether the loaded BGR image is converted to RGB before normalising.
    pub to_rgb: bool,
    /// The trainer's keep-ratio test scale `(long, short)` (e.g. `(1333, 800)`),
    /// from which `input_size` was padded up. At the exported input size frames
    /// are resized to it, exactly as `crosskd predict` does; absent in models
    /// exported before it was recorded (they fit the input instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_scale: Option<(u32, u32)>,
}

/// Why metadata could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetaError {
    /// Not JSON at all, or not an object.
    #[error("metadata is not a valid JSON object: {0}")]
    Syntax(String),
    /// A field is missing, unknown or has the wrong type or value.
    #[error("metadata field `{field}`: {message}")]
    Field {
        /// Dotted path of the field, e.g. `decode.strides`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Written by a different layout version.
    #[error("metadata field `format_version`: found {found}, this SDK reads {expected}")]
    Version {
        /// Version in the file.
        found: u32,
        /// [`FORMAT_VERSION`].
        expected: u32,
    },
}

impl MetaError {
    fn field(field: impl Into<String>, message: impl ToString) -> Self {
        MetaError::Field {
            field: field.into(),
            message: message.to_string(),
        }
    }
}

impl ModelMeta {
    /// The input normalisation this model was trained with.
    pub fn normalization(&self) -> crate::preprocess::Normalization {
        crate::preprocess::Normalization {
            mean: self.mean,
            std: self.std,
            to_rgb: self.to_rgb,
        }
    }

    /// Metadata with the kind's default test settings and pytorch-style
    /// normalisation (BGR → RGB, ImageNet mean/std).
    pub fn new(decode: DecodeSpec, class_names: Vec<String>, input_size: (u32, u32)) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            test_cfg: TestConfig::for_kind(decode.kind),
            decode,
            class_names,
            input_size,
            mean: PYTORCH_MEAN,
            std: PYTORCH_STD,
            to_rgb: true,
            test_scale: None,
        }
    }

    /// Pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("ModelMeta always serialises")
    }

    /// Parses and [`validate`](Self::validate)s metadata. Errors name the field
    /// (dotted path) that is missing, unknown, mistyped or inconsistent.
    pub fn from_json(json: &str) -> Result<Self, MetaError> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| MetaError::Syntax(e.to_string()))?;
        let meta = ModelMeta::deserialize(&value).map_err(|e| locate_error(&value, e))?;
        meta.validate()?;
        Ok(meta)
    }

    /// Checks the version, `class_names.len() == decode.num_classes`, the decode spec
    /// (non-empty strides, anchors/coder matching the kind) and the normalisation.
    pub fn validate(&self) -> Result<(), MetaError> {
        if self.format_version != FORMAT_VERSION {
            return Err(MetaError::Version {
                found: self.format_version,
                expected: FORMAT_VERSION,
            });
        }
        self.decode.validate().map_err(|e| match e {
            DecodeError::InvalidSpec { field, reason } => {
                MetaError::field(format!("decode.{field}"), reason)
            }
            other => MetaError::field("decode", other),
        })?;
        if self.class_names.len() != self.decode.num_classes {
            return Err(MetaError::field(
                "class_names",
                format!(
                    "{} names for decode.num_classes = {}",
                    self.class_names.len(),
                    self.decode.num_classes
                ),
            ));
        }
        if let Some(s) = self.std.iter().find(|s| !(s.is_finite() && **s != 0.0)) {
            return Err(MetaError::field(
                "std",
                format!("{s} is not a finite non-zero divisor"),
            ));
        }
        Ok(())
    }

    /// [`postprocess`] with this model's spec and test settings; detections carry
    /// their class names.
    pub fn postprocess(
        &self,
        levels: &[LevelOutput],
        img_shape: (f32, f32),
        scale_factor: (f32, f32),
    ) -> Result<Vec<Detection>, DecodeError> {
        let dets = postprocess(
            &self.decode,
            &self.test_cfg,
            levels,
            img_shape,
            scale_factor,
        )?;
        Ok(dets
            .into_iter()
            .map(|d| d.with_label(&self.class_names))
            .collect())
    }
}

/// Turns a serde error on the whole document into one that names the offending
/// field, by re-checking each field of the known objects on its own.
fn locate_error(value: &Value, whole: serde_json::Error) -> MetaError {
    let Some(obj) = value.as_object() else {
        return MetaError::Syntax(whole.to_string());
    };
    let top = [
        ("format_version", check::<u32> as Checker),
        ("decode", check_decode),
        ("test_cfg", check::<TestConfig>),
        ("class_names", check::<Vec<String>>),
        ("input_size", check::<(u32, u32)>),
        ("mean", check::<[f32; 3]>),
        ("std", check::<[f32; 3]>),
        ("to_rgb", check::<bool>),
        ("test_scale", check::<Option<(u32, u32)>>),
    ];
    check_fields(obj, "", &top).unwrap_or_else(|| MetaError::Syntax(whole.to_string()))
}

/// Checks one field's value; returns the error naming `path` (or a deeper field).
type Checker = fn(&Value, &str) -> Option<MetaError>;

fn check<T: DeserializeOwned>(v: &Value, path: &str) -> Option<MetaError> {
    T::deserialize(v).err().map(|e| MetaError::field(path, e))
}

fn check_decode(v: &Value, path: &str) -> Option<MetaError> {
    let Some(obj) = v.as_object() else {
        return check::<DecodeSpec>(v, path);
    };
    let fields = [
        ("kind", check::<HeadKind> as Checker),
        ("num_classes", check::<usize>),
        ("strides", check::<Vec<f32>>),
        ("reg_max", check::<usize>),
        ("anchors", check::<Option<AnchorGenerator>>),
        ("coder", check::<Option<DeltaXywhCoder>>),
        ("point_offset", check::<f32>),
    ];
    check_fields(obj, path, &fields).or_else(|| check::<DecodeSpec>(v, path))
}

/// First unknown, missing or invalid field of `obj` (fields named `prefix.name`).
/// Optional fields (`anchors`, `coder`) may be absent.
fn check_fields(
    obj: &Map<String, Value>,
    prefix: &str,
    fields: &[(&str, Checker)],
) -> Option<MetaError> {
    let join = |name: &str| {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        }
    };
    if let Some(unknown) = obj
        .keys()
        .find(|k| fields.iter().all(|(name, _)| name != k))
    {
        return Some(MetaError::field(join(unknown), "unknown field"));
    }
    for (name, checker) in fields {
        match obj.get(*name) {
            Some(v) => {
                if let Some(e) = checker(v, &join(name)) {
                    return Some(e);
                }
            }
            None if matches!(*name, "anchors" | "coder") => {}
            None => return Some(MetaError::field(join(name), "missing field")),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    fn field_of(e: MetaError) -> String {
        match e {
            MetaError::Field { field, .. } => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn round_trips_every_kind() {
        for kind in HeadKind::ALL {
            let meta = ModelMeta::new(DecodeSpec::for_kind(kind, 3), names(3), (320, 256));
            let json = meta.to_json();
            assert_eq!(ModelMeta::from_json(&json).unwrap(), meta, "{kind}");
        }
    }

    #[test]
    fn json_layout_is_stable() {
        let meta = ModelMeta::new(DecodeSpec::fcos(1), names(1), (64, 32));
        let v: Value = serde_json::from_str(&meta.to_json()).unwrap();
        assert_eq!(v["format_version"], 1);
        assert_eq!(v["decode"]["kind"], "fcos");
        assert_eq!(v["decode"]["anchors"], Value::Null);
        assert_eq!(v["input_size"], serde_json::json!([64, 32]));
        assert_eq!(v["test_cfg"]["nms_pre"], 1000);
    }

    fn edit(f: impl FnOnce(&mut Value)) -> Result<ModelMeta, MetaError> {
        let meta = ModelMeta::new(DecodeSpec::retinanet(2), names(2), (64, 64));
        let mut v: Value = serde_json::from_str(&meta.to_json()).unwrap();
        f(&mut v);
        ModelMeta::from_json(&v.to_string())
    }

    #[test]
    fn errors_name_the_field() {
        let e = edit(|v| v["decode"]["strides"] = serde_json::json!("eight")).unwrap_err();
        assert_eq!(field_of(e), "decode.strides");
        let e = edit(|v| v["test_cfg"]["iou_thr"] = serde_json::json!(true)).unwrap_err();
        assert_eq!(field_of(e), "test_cfg");
        let e = edit(|v| v["mean"] = serde_json::json!([1, 2])).unwrap_err();
        assert_eq!(field_of(e), "mean");
        let e = edit(|v| {
            v.as_object_mut().unwrap().remove("to_rgb");
        })
        .unwrap_err();
        assert_eq!(field_of(e), "to_rgb");
        let e = edit(|v| v["colour"] = serde_json::json!(1)).unwrap_err();
        assert_eq!(field_of(e), "colour");
        let e = edit(|v| v["decode"]["stride"] = serde_json::json!([8])).unwrap_err();
        assert_eq!(field_of(e), "decode.stride");
        let e = edit(|v| v["decode"]["kind"] = serde_json::json!("yolo")).unwrap_err();
        assert_eq!(field_of(e), "decode.kind");
        let e = edit(|v| v["decode"]["anchors"]["ratios"] = serde_json::json!(1)).unwrap_err();
        assert_eq!(field_of(e), "decode.anchors");
        // Message mentions the problem, too.
        let e = edit(|v| v["input_size"] = serde_json::json!([1, -2])).unwrap_err();
        assert!(e.to_string().contains("input_size"), "{e}");
    }

    #[test]
    fn consistency_checks() {
        let e = edit(|v| v["class_names"] = serde_json::json!(["only one"])).unwrap_err();
        assert_eq!(field_of(e), "class_names");
        let e = edit(|v| v["decode"]["strides"] = serde_json::json!([])).unwrap_err();
        assert_eq!(field_of(e), "decode.strides");
        let e = edit(|v| v["decode"]["coder"] = Value::Null).unwrap_err();
        assert_eq!(field_of(e), "decode.coder");
        let e = edit(|v| v["std"] = serde_json::json!([1.0, 0.0, 1.0])).unwrap_err();
        assert_eq!(field_of(e), "std");
        assert_eq!(
            edit(|v| v["format_version"] = serde_json::json!(2)).unwrap_err(),
            MetaError::Version {
                found: 2,
                expected: 1
            }
        );
        assert!(matches!(
            ModelMeta::from_json("{not json"),
            Err(MetaError::Syntax(_))
        ));
        assert!(matches!(
            ModelMeta::from_json("[1]"),
            Err(MetaError::Syntax(_))
        ));
    }

    #[test]
    fn postprocess_labels_detections() {
        // FCOS with strides [8]: point (4, 4), (l,t,r,b) = (1, 1, 1, 1) → [3, 3, 5, 5].
        let spec = DecodeSpec::fcos(2).with_strides(&[8.0]);
        let meta = ModelMeta::new(spec, vec!["cat".into(), "dog".into()], (8, 8));
        let level = LevelOutput {
            cls_score: &[-9.0, 4.0],
            bbox_pred: &[1.0; 4],
            centerness: Some(&[0.0]),
            height: 1,
            width: 1,
        };
        let dets = meta.postprocess(&[level], (8.0, 8.0), (1.0, 1.0)).unwrap();
        assert_eq!(dets.len(), 1);
        assert_eq!(dets[0].label.as_deref(), Some("dog"));
        assert_eq!(dets[0].bbox, [3.0, 3.0, 5.0, 5.0]);
    }
}
