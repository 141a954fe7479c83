//! The ONNX file's `metadata_props`: `crosskd.meta` holds
//! [`crosskd_sdk::ModelMeta::to_json`] (authoritative; the SDK parses it), and
//! individual human-readable `crosskd.*` keys repeat the same facts for other
//! runtimes and for people inspecting the file (Netron, `onnx.load`).
//!
//! ```
//! use crosskd_sdk::{DecodeSpec, ModelMeta};
//! use crosskd_trainer::export::metadata::{metadata_props, META_KEY};
//! let meta = ModelMeta::new(DecodeSpec::fcos(1), vec!["cat".into()], (64, 64));
//! let props = metadata_props(&meta, &[1], "fp32");
//! let json = &props.iter().find(|(k, _)| k == META_KEY).unwrap().1;
//! assert_eq!(ModelMeta::from_json(json).unwrap(), meta);
//! ```

pub use crosskd_sdk::onnx::props::{get_prop, set_prop, META_KEY, PRECISION_KEY};
use crosskd_sdk::ModelMeta;
use serde_json::json;
use tract_onnx::pb::ModelProto;

use super::ExportError;

/// All `crosskd.*` entries for `meta`; `category_ids` maps labels to COCO ids.
pub fn metadata_props(
    meta: &ModelMeta,
    category_ids: &[u64],
    precision: &str,
) -> Vec<(String, String)> {
    let d = &meta.decode;
    let t = &meta.test_cfg;
    let s = |v: serde_json::Value| v.to_string();
    let mut props = vec![
        (META_KEY, meta.to_json()),
        ("crosskd.format_version", meta.format_version.to_string()),
        ("crosskd.detector", d.kind.name().to_string()),
        ("crosskd.num_classes", d.num_classes.to_string()),
        ("crosskd.class_names", s(json!(meta.class_names))),
        ("crosskd.category_ids", s(json!(category_ids))),
        ("crosskd.strides", s(json!(d.strides))),
        ("crosskd.reg_max", d.reg_max.to_string()),
        ("crosskd.anchors", s(json!(d.anchors))),
        ("crosskd.coder", s(json!(d.coder))),
        ("crosskd.point_offset", d.point_offset.to_string()),
        (
            "crosskd.input_size",
            format!("{}x{}", meta.input_size.0, meta.input_size.1),
        ),
        (
            "crosskd.input_layout",
            "NCHW float32, normalised".to_string(),
        ),
        ("crosskd.mean", s(json!(meta.mean))),
        ("crosskd.std", s(json!(meta.std))),
        ("crosskd.to_rgb", meta.to_rgb.to_string()),
        ("crosskd.score_thr", t.score_thr.to_string()),
        ("crosskd.iou_thr", t.iou_thr.to_string()),
        ("crosskd.nms_pre", t.nms_pre.to_string()),
        ("crosskd.max_per_img", t.max_per_img.to_string()),
        ("crosskd.min_bbox_size", t.min_bbox_size.to_string()),
        (PRECISION_KEY, precision.to_string()),
    ];
    props.sort_by_key(|(k, _)| *k != META_KEY);
    props.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Parse the `crosskd.meta` entry of a model; errors say what is missing or wrong.
pub fn read_meta(model: &ModelProto) -> Result<ModelMeta, ExportError> {
    let json = get_prop(model, META_KEY).ok_or_else(|| {
        ExportError::Metadata(format!(
            "no `{META_KEY}` metadata entry: the file was not written by `crosskd export`"
        ))
    })?;
    ModelMeta::from_json(json).map_err(|e| ExportError::Metadata(format!("`{META_KEY}`: {e}")))
}
