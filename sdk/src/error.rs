//! The SDK's error type: every failure names the file, field or device it is
//! about and, where there is one, what to do about it.
//!
//! ```
//! use crosskd_sdk::SdkError;
//! let e = SdkError::NotCrosskdModel { path: "m.onnx".into() };
//! assert!(e.to_string().contains("crosskd export"));
//! ```

use std::path::PathBuf;

use crate::decode::DecodeError;
use crate::metadata::MetaError;

/// Result alias of the SDK's fallible calls.
pub type Result<T, E = SdkError> = std::result::Result<T, E>;

/// Why an SDK call failed. Every variant's message names the file, key or
/// value at fault and what to do.
///
/// ```
/// use crosskd_sdk::{Detector, DeviceConfig, SdkError};
/// match Detector::from_file("no-such-model.onnx", &DeviceConfig::default()) {
///     Err(e @ SdkError::Io { .. }) => assert!(e.to_string().contains("no-such-model.onnx")),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a readable ONNX model (truncated, garbage, unsupported op…).
    #[error("{path}: not a loadable ONNX model: {message}")]
    Model {
        /// The model file.
        path: PathBuf,
        /// tract's explanation, outermost context first.
        message: String,
    },
    /// A valid ONNX model without the `crosskd.meta` metadata entry.
    #[error(
        "{path}: not a crosskd model: no crosskd.meta metadata; export it with `crosskd export`"
    )]
    NotCrosskdModel {
        /// The model file.
        path: PathBuf,
    },
    /// `crosskd.meta` is present but invalid.
    #[error("{path}: crosskd.meta: {source}")]
    Meta {
        /// The model file.
        path: PathBuf,
        /// Which field is wrong.
        source: MetaError,
    },
    /// The graph's inputs/outputs do not follow the exporter's contract.
    #[error("{path}: {message}")]
    Contract {
        /// The model file.
        path: PathBuf,
        /// What is missing or mis-shaped.
        message: String,
    },
    /// The model's declared precision differs from the one the device config asks for.
    #[error(
        "{path}: model precision is {model}, but the device config asks for {config}; \
         load the {config} export or set `runtime.precision` to \"{model}\" or \"any\""
    )]
    Precision {
        /// The model file.
        path: PathBuf,
        /// `crosskd.precision` of the model.
        model: String,
        /// `runtime.precision` of the config.
        config: String,
    },
    /// A device config could not be read: the message names the key.
    #[error("{path}: {message}")]
    Config {
        /// The TOML file (or `<inline>`).
        path: PathBuf,
        /// The offending key and what is wrong with it.
        message: String,
    },
    /// An input image the detector cannot use.
    #[error("invalid image: {0}")]
    Image(String),
    /// An image file that could not be decoded or encoded.
    #[error("{path}: {message}")]
    ImageFile {
        /// The file.
        path: PathBuf,
        /// The codec's explanation.
        message: String,
    },
    /// tract failed while running the plan.
    #[error("inference failed: {0}")]
    Inference(String),
    /// The head outputs could not be decoded (shape mismatch with the metadata).
    #[error("decoding failed: {0}")]
    Decode(#[from] DecodeError),
    /// A frame source (folder, camera) failed.
    #[error("{source_name}: {message}")]
    Source {
        /// Which source: a path, or `camera 0`.
        source_name: String,
        /// What went wrong and what to try.
        message: String,
    },
    /// On-device fine-tuning failed (the deployed model is untouched).
    #[error("fine-tuning: {0}")]
    Finetune(#[from] crate::finetune::FinetuneError),
}

impl SdkError {
    /// An [`SdkError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SdkError::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`SdkError::Config`] for `path`.
    pub fn config(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        SdkError::Config {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// tract errors are `anyhow` chains; keep every context line, outermost first,
/// since the innermost one alone ("failed to fill whole buffer") is cryptic.
pub(crate) fn chain(e: &tract_onnx::prelude::TractError) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}
