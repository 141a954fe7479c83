//! Static post-training quantization of an exported fp32 model: int8 symmetric
//! per-channel weights, 8-bit (int8, asymmetric) activations calibrated on
//! preprocessed images run through the fp32 graph in tract.
//!
//! Formats: [`QuantFormat::QOperator`] (default; tract runs `QLinearConv` with real
//! int8 kernels) and [`QuantFormat::Qdq`] (for TensorRT / onnxruntime). With
//! `keep_float_outputs` the head's final predictor convs stay in float — they
//! set the scores and box offsets directly, so their rounding costs the most AP.
//!
//! Plain Rust over tract (no burn), so the board can re-quantize a fine-tuned
//! fp32 model itself; the trainer's `crosskd quantize` runs the same code.
//!
//! ```no_run
//! use crosskd_sdk::onnx::quantize::{quantize, QuantizeOptions};
//! use crosskd_sdk::onnx::runner::read_model;
//! let fp32 = read_model("student.onnx".as_ref())?;
//! let mut input = |_i: usize| Ok(vec![0.0f32; 3 * 320 * 320]);
//! let (int8, summary) = quantize(&fp32, 8, &mut input, &QuantizeOptions::default(), &mut |_, _| {})?;
//! println!("{summary}");
//! # Ok::<(), crosskd_sdk::onnx::quantize::QuantizeError>(())
//! ```

pub mod calib_data;
pub mod calibrate;
pub mod params;
pub mod plan;
pub mod qdq;
pub mod qoperator;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde_json::json;
use tract_onnx::pb::ModelProto;

use super::props::{get_prop, set_prop, PRECISION_KEY};
use super::OnnxError;

/// How calibration turns observed activations into ranges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CalibMethod {
    /// Observed min/max.
    MinMax,
    /// Clip each tail at this percentile (e.g. 99.99).
    Percentile(f64),
    /// KL-divergence-optimal clipping.
    Entropy,
}

impl FromStr for CalibMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "minmax" => Ok(Self::MinMax),
            "percentile" => Ok(Self::Percentile(99.99)),
            "entropy" => Ok(Self::Entropy),
            _ => match s.strip_prefix("percentile=").map(str::parse::<f64>) {
                Some(Ok(p)) if p > 50.0 && p <= 100.0 => Ok(Self::Percentile(p)),
                _ => Err(format!(
                    "unknown calibration method `{s}`: use minmax, percentile (99.99), percentile=P (50 < P <= 100) or entropy"
                )),
            },
        }
    }
}

impl fmt::Display for CalibMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MinMax => f.write_str("minmax"),
            Self::Percentile(p) => write!(f, "percentile={p}"),
            Self::Entropy => f.write_str("entropy"),
        }
    }
}

/// Layout of the int8 graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuantFormat {
    /// QuantizeLinear → QLinearConv → … → DequantizeLinear (tract: real int8).
    #[default]
    QOperator,
    /// Float ops between QuantizeLinear/DequantizeLinear pairs (TensorRT, onnxruntime).
    Qdq,
}

impl FromStr for QuantFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "qoperator" => Ok(Self::QOperator),
            "qdq" => Ok(Self::Qdq),
            _ => Err(format!("unknown format `{s}`: use qoperator or qdq")),
        }
    }
}

impl fmt::Display for QuantFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::QOperator => "qoperator",
            Self::Qdq => "qdq",
        })
    }
}

/// Quantization settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantizeOptions {
    /// Range estimation.
    pub method: CalibMethod,
    /// Output layout.
    pub format: QuantFormat,
    /// Keep the head's final predictor convs in float.
    pub keep_float_outputs: bool,
}

impl Default for QuantizeOptions {
    fn default() -> Self {
        Self {
            method: CalibMethod::MinMax,
            format: QuantFormat::QOperator,
            keep_float_outputs: false,
        }
    }
}

/// What was quantized.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizeSummary {
    /// Convs now int8.
    pub quantized_convs: usize,
    /// Convs left in float.
    pub float_convs: usize,
    /// Activation tensors with calibrated ranges.
    pub calibrated_tensors: usize,
    /// Calibration images used.
    pub num_images: usize,
}

impl fmt::Display for QuantizeSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} convs int8, {} float; {} activation ranges from {} calibration images",
            self.quantized_convs, self.float_convs, self.calibrated_tensors, self.num_images
        )
    }
}

/// Why quantization failed.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    /// Reading, loading or running the model.
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    /// No usable calibration images.
    #[error("calibration: {0}")]
    NoCalibrationImages(String),
    /// An unreadable calibration image.
    #[error("calibration image {path}: {why}")]
    Image {
        /// The file.
        path: PathBuf,
        /// Decoder message.
        why: String,
    },
    /// The fp32 model produced inf/NaN.
    #[error("calibration: tensor `{0}` has non-finite values; the fp32 model is broken")]
    NonFinite(String),
    /// A graph the quantizer does not understand.
    #[error("graph: {0}")]
    Graph(String),
}

/// Quantize `model` with `num_images` calibration inputs from `input(i)`
/// (CHW, preprocessed exactly as the runtime does). `progress(done, total)`
/// reports calibration passes.
pub fn quantize(
    model: &ModelProto,
    num_images: usize,
    input: &mut dyn FnMut(usize) -> Result<Vec<f32>, QuantizeError>,
    opts: &QuantizeOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(ModelProto, QuantizeSummary), QuantizeError> {
    if get_prop(model, PRECISION_KEY) == Some("int8") {
        return Err(QuantizeError::Graph(
            "the model is already int8: quantize the fp32 export".into(),
        ));
    }
    let graph = plan::model_graph(model)?;
    let idx = plan::GraphIndex::new(graph);
    let plans = plan::plan_convs(&idx, opts.keep_float_outputs)?;
    let tensors = plan::calibration_tensors(&plans);
    let ranges = calibrate::calibrate(model, &tensors, num_images, input, opts.method, progress)?;
    let mut out = match opts.format {
        QuantFormat::QOperator => qoperator::to_qoperator(model, &plans, &ranges)?,
        QuantFormat::Qdq => qdq::to_qdq(model, &plans, &ranges)?,
    };
    let quantized = plans.iter().filter(|p| p.quantize).count();
    set_prop(&mut out, PRECISION_KEY, "int8");
    set_prop(
        &mut out,
        "crosskd.quantization",
        &json!({
            "format": opts.format.to_string(),
            "method": opts.method.to_string(),
            "weights": "int8 symmetric per output channel",
            "activations": "int8 asymmetric per tensor",
            "keep_float_outputs": opts.keep_float_outputs,
            "calibration_images": num_images,
        })
        .to_string(),
    );
    out.doc_string = format!(
        "{} (int8 {}, {} calibration)",
        out.doc_string, opts.format, opts.method
    );
    Ok((
        out,
        QuantizeSummary {
            quantized_convs: quantized,
            float_convs: plans.len() - quantized,
            calibrated_tensors: tensors.len(),
            num_images,
        },
    ))
}
