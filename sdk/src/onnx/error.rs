//! Why an ONNX model could not be read, written, inspected or run.

use std::path::PathBuf;

/// Errors of [`crate::onnx`]; each message names the file, tensor or field at fault.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// File system failure.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Not a protobuf ONNX model.
    #[error("{path}: not an ONNX model ({why})")]
    NotOnnx {
        /// The file.
        path: PathBuf,
        /// Decoder message.
        why: String,
    },
    /// tract failed to load or run the graph.
    #[error("tract: {0}")]
    Tract(String),
    /// Missing or invalid `crosskd.*` metadata.
    #[error("metadata: {0}")]
    Metadata(String),
    /// A graph element (tensor, attribute, value info) that cannot be used.
    #[error("graph: {0}")]
    Graph(String),
}
