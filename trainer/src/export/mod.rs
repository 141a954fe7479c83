//! ONNX export of trained detectors, fp32 and int8, written from Rust with
//! tract-onnx's protobuf types (no Python in the path) and verified in tract.
//!
//! * [`graph`]: a small builder over `tract_onnx::pb`;
//! * [`bn_fold`]: host conv parameters, BatchNorm folding;
//! * [`detector_graph`]: `Detector` → ONNX nodes (input `images`, outputs
//!   `cls_score_{l}`, `bbox_pred_{l}`, `centerness_{l}` per FPN level);
//! * [`metadata`]: `crosskd.meta` (the SDK's `ModelMeta` JSON) and readable keys;
//! * [`source`]: checkpoint + config → what to export; [`input_size`];
//! * [`runner`]: tract runner used by tests, calibration and `eval-onnx`;
//! * [`quantize`]: static post-training quantization (QOperator or QDQ).
//!
//! [`runner`] and [`quantize`] are the SDK's [`crosskd_sdk::onnx`] modules,
//! re-exported here: the board re-quantizes fine-tuned models with the same code.
//!
//! ```no_run
//! use crosskd_trainer::export::{export_detector, runner::write_model, source::ExportSource};
//! let src = ExportSource::load("latest.ckpt".as_ref(), Some("cfg.toml".as_ref())).unwrap();
//! let size = src.default_input_size();
//! let model = export_detector(&src.detector, &src.meta(size), &src.header.category_ids, 13).unwrap();
//! write_model("student.onnx".as_ref(), &model).unwrap();
//! ```

pub mod bn_fold;
pub mod detector_graph;
pub mod graph;
pub mod input_size;
pub mod metadata;
pub mod source;

pub use crosskd_sdk::onnx::{quantize, runner};

use std::path::PathBuf;

use burn::prelude::*;
use crosskd_sdk::ModelMeta;
use tract_onnx::pb::ModelProto;

use crate::model::detector::Detector;
use crate::train::checkpoint::CheckpointError;

/// Lowest opset written: per-axis QuantizeLinear/DequantizeLinear need 13.
pub const MIN_OPSET: i64 = 13;
/// Highest opset written (QuantizeLinear gains blocked quantization in 21).
pub const MAX_OPSET: i64 = 21;
/// Default opset.
pub const DEFAULT_OPSET: i64 = 13;

/// Why a model could not be exported, quantized or run.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The checkpoint cannot be read or does not fit its configuration.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A config file that cannot be used.
    #[error("{path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What and which key.
        message: String,
    },
    /// `--config` describes another network than the checkpoint holds.
    #[error("{config} does not describe the network in {checkpoint}: {diffs} (config vs checkpoint); pass the config the checkpoint was trained with, or omit --config to use the one stored in the checkpoint")]
    Mismatch {
        /// Checkpoint file.
        checkpoint: PathBuf,
        /// Config file.
        config: PathBuf,
        /// Differing fields.
        diffs: String,
    },
    /// Bad `--input-size`.
    #[error("input size {0}")]
    InputSize(String),
    /// Opset out of range.
    #[error("--opset {0} is not supported: use {MIN_OPSET}..={MAX_OPSET}")]
    Opset(i64),
    /// A layer the exporter cannot express.
    #[error("{layer}: {why}")]
    Unsupported {
        /// Layer path.
        layer: String,
        /// What is unsupported.
        why: String,
    },
    /// File system failure.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Missing or invalid `crosskd.*` metadata.
    #[error("metadata: {0}")]
    Metadata(String),
    /// Reading, writing or running an ONNX model (not a model, tract failures).
    #[error(transparent)]
    Onnx(#[from] crosskd_sdk::onnx::OnnxError),
}

/// Check an opset number.
pub fn check_opset(opset: i64) -> Result<i64, ExportError> {
    if (MIN_OPSET..=MAX_OPSET).contains(&opset) {
        Ok(opset)
    } else {
        Err(ExportError::Opset(opset))
    }
}

/// The fp32 ONNX model of `det` at `meta.input_size`, with its metadata.
pub fn export_detector<B: Backend>(
    det: &Detector<B>,
    meta: &ModelMeta,
    category_ids: &[u64],
    opset: i64,
) -> Result<ModelProto, ExportError> {
    check_opset(opset)?;
    let (w, h) = (meta.input_size.0 as usize, meta.input_size.1 as usize);
    input_size::check_input_size(w, h)?;
    meta.validate()
        .map_err(|e| ExportError::Metadata(e.to_string()))?;
    let g = detector_graph::detector_graph(det, h, w)?;
    let doc = format!(
        "CrossKD {} detector, {} classes, input images [1, 3, {h}, {w}] (normalised), raw head outputs per FPN level",
        meta.decode.kind,
        meta.decode.num_classes
    );
    let mut props = metadata::metadata_props(meta, category_ids, "fp32");
    props.extend(trainable_configs(det)?);
    Ok(g.finish(opset, &doc, props))
}

/// The FPN and head configs (JSON metadata) from which the SDK's on-device
/// fine-tuning rebuilds the trainable part of the exported network.
fn trainable_configs<B: Backend>(det: &Detector<B>) -> Result<Vec<(String, String)>, ExportError> {
    let mut neck = det.config.neck.clone();
    neck.in_channels = det
        .neck
        .lateral_convs
        .iter()
        .map(|c| c.weight.dims()[1])
        .collect();
    let json = |v: serde_json::Result<String>| v.map_err(|e| ExportError::Metadata(e.to_string()));
    Ok(vec![
        (
            crosskd_sdk::metadata::HEAD_CONFIG_KEY.to_string(),
            json(serde_json::to_string(&det.config.head))?,
        ),
        (
            crosskd_sdk::metadata::NECK_CONFIG_KEY.to_string(),
            json(serde_json::to_string(&neck))?,
        ),
    ])
}
