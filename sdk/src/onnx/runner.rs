//! Reads and writes ONNX files, and runs a model (as a `ModelProto`) in tract
//! on one `[1, 3, H, W]` input, returning every graph output by name: the
//! exporter's parity tests, calibration and `crosskd eval-onnx` all go through it.
//!
//! [`write_model`] replaces a file atomically (a temporary file in the same
//! folder, then a rename), so a deployed model being overwritten by the
//! fine-tuner is never seen half written.
//!
//! ```no_run
//! use crosskd_sdk::onnx::runner::OnnxRunner;
//! let runner = OnnxRunner::from_path("student.onnx".as_ref())?;
//! let [_, _, h, w] = runner.input_shape();
//! let outs = runner.run(&vec![0.0; 3 * h * w])?;
//! println!("{} outputs, first {:?}", outs.len(), outs[0].shape);
//! # Ok::<(), crosskd_sdk::onnx::OnnxError>(())
//! ```

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prost::Message;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

use super::tensor::value_info_shape;
use super::OnnxError;

/// One named output tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedOutput {
    /// Graph output name.
    pub name: String,
    /// Dims.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// An optimised tract plan with the graph's input shape and output names.
pub struct OnnxRunner {
    plan: Arc<TypedRunnableModel>,
    input_shape: [usize; 4],
    output_names: Vec<String>,
}

fn tract_err(what: &str) -> impl FnOnce(TractError) -> OnnxError + '_ {
    move |e| OnnxError::Tract(format!("{what}: {e:#}"))
}

/// Read an ONNX file into its protobuf.
pub fn read_model(path: &Path) -> Result<ModelProto, OnnxError> {
    let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    ModelProto::decode(bytes.as_slice()).map_err(|e| OnnxError::NotOnnx {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

/// Write a protobuf as an ONNX file (creating the parent folder), atomically:
/// the bytes go to a temporary file next to `path`, which then replaces it.
pub fn write_model(path: &Path, model: &ModelProto) -> Result<(), OnnxError> {
    write_atomic(path, &model.encode_to_vec()).map_err(|source| OnnxError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// `bytes` into `path` through `.<name>.<pid>-<n>.tmp` in the same folder
/// (a rename within one file system is atomic); the temporary file is removed
/// on failure.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)?;
    }
    let tmp_name = format!(
        ".{}.{}-{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let tmp = dir.unwrap_or(Path::new("")).join(tmp_name);
    let written = write_then_rename(&tmp, path, bytes);
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn write_then_rename(tmp: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(tmp, path)
}

impl OnnxRunner {
    /// Load, type, optimise and plan `model`.
    pub fn from_proto(model: &ModelProto) -> Result<Self, OnnxError> {
        let graph = model
            .graph
            .as_ref()
            .ok_or_else(|| OnnxError::Tract("the model has no graph".into()))?;
        let input = graph
            .input
            .first()
            .ok_or_else(|| OnnxError::Tract("the graph has no input".into()))?;
        let input_shape = value_info_shape(input)
            .filter(|s| s.len() == 4 && s[0] == 1 && s[1] == 3)
            .ok_or_else(|| {
                OnnxError::Tract(format!(
                    "input `{}` must have a static [1, 3, H, W] shape",
                    input.name
                ))
            })?;
        let plan = tract_onnx::onnx()
            .model_for_proto_model(model)
            .map_err(tract_err("loading the ONNX graph in tract"))?
            .into_optimized()
            .map_err(tract_err("optimising the graph"))?
            .into_runnable()
            .map_err(tract_err("planning the graph"))?;
        Ok(Self {
            plan,
            input_shape: [
                input_shape[0],
                input_shape[1],
                input_shape[2],
                input_shape[3],
            ],
            output_names: graph.output.iter().map(|o| o.name.clone()).collect(),
        })
    }

    /// [`read_model`] then [`from_proto`](Self::from_proto).
    pub fn from_path(path: &Path) -> Result<Self, OnnxError> {
        Self::from_proto(&read_model(path)?)
    }

    /// `[1, 3, H, W]`.
    pub fn input_shape(&self) -> [usize; 4] {
        self.input_shape
    }

    /// Graph output names, in order.
    pub fn output_names(&self) -> &[String] {
        &self.output_names
    }

    /// Run on a CHW buffer of `3·H·W` values.
    pub fn run(&self, chw: &[f32]) -> Result<Vec<NamedOutput>, OnnxError> {
        let expected: usize = self.input_shape.iter().product();
        if chw.len() != expected {
            return Err(OnnxError::Tract(format!(
                "input has {} values, the model takes {:?} = {expected}",
                chw.len(),
                self.input_shape
            )));
        }
        let input = Tensor::from_shape(&self.input_shape, chw)
            .map_err(tract_err("building the input tensor"))?;
        let outputs = self
            .plan
            .run(tvec!(input.into()))
            .map_err(tract_err("running the model"))?;
        outputs
            .iter()
            .zip(&self.output_names)
            .map(|(t, name)| {
                let view = t
                    .to_plain_array_view::<f32>()
                    .map_err(tract_err("reading an output"))?;
                Ok(NamedOutput {
                    name: name.clone(),
                    shape: view.shape().to_vec(),
                    data: view.iter().copied().collect(),
                })
            })
            .collect()
    }
}
