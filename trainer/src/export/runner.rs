//! Runs an ONNX model (as a `ModelProto`) in tract on one `[1, 3, H, W]` input:
//! the parity tests, calibration and `crosskd eval-onnx` all go through it.
//!
//! ```no_run
//! use crosskd_trainer::export::runner::OnnxRunner;
//! let runner = OnnxRunner::from_path("student.onnx".as_ref()).unwrap();
//! let [_, _, h, w] = runner.input_shape();
//! let outs = runner.run(&vec![0.0; 3 * h * w]).unwrap();
//! println!("{} outputs, first {:?}", outs.len(), outs[0].shape);
//! ```

use std::path::Path;
use std::sync::Arc;

use prost::Message;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

use super::graph::value_info_shape;
use super::ExportError;

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

fn tract_err(what: &str) -> impl FnOnce(TractError) -> ExportError + '_ {
    move |e| ExportError::Tract(format!("{what}: {e:#}"))
}

/// Read an ONNX file into its protobuf.
pub fn read_model(path: &Path) -> Result<ModelProto, ExportError> {
    let bytes = std::fs::read(path).map_err(|source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    ModelProto::decode(bytes.as_slice()).map_err(|e| ExportError::NotOnnx {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

/// Write a protobuf as an ONNX file (creating the parent folder).
pub fn write_model(path: &Path, model: &ModelProto) -> Result<(), ExportError> {
    let io = |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(path, model.encode_to_vec()).map_err(io)
}

impl OnnxRunner {
    /// Load, type, optimise and plan `model`.
    pub fn from_proto(model: &ModelProto) -> Result<Self, ExportError> {
        let graph = model
            .graph
            .as_ref()
            .ok_or_else(|| ExportError::Tract("the model has no graph".into()))?;
        let input = graph
            .input
            .first()
            .ok_or_else(|| ExportError::Tract("the graph has no input".into()))?;
        let input_shape = value_info_shape(input)
            .filter(|s| s.len() == 4 && s[0] == 1 && s[1] == 3)
            .ok_or_else(|| {
                ExportError::Tract(format!(
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
    pub fn from_path(path: &Path) -> Result<Self, ExportError> {
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
    pub fn run(&self, chw: &[f32]) -> Result<Vec<NamedOutput>, ExportError> {
        let expected: usize = self.input_shape.iter().product();
        if chw.len() != expected {
            return Err(ExportError::Tract(format!(
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
