//! ONNX models as protobufs (`tract_onnx::pb`): reading and (atomically)
//! writing files, running them in tract, the tensor/attribute and
//! `metadata_props` helpers, and static post-training int8 quantization.
//!
//! The trainer's exporter writes fp32 models and quantizes them with this
//! module; on the board the fine-tuner re-quantizes its fine-tuned fp32 model
//! with the same code, so both produce identical int8 graphs.
//!
//! * [`runner`]: files in and out ([`read_model`](runner::read_model),
//!   [`write_model`](runner::write_model)) and [`OnnxRunner`](runner::OnnxRunner),
//!   a tract plan over one `[1, 3, H, W]` input returning every output by name;
//! * [`tensor`]: `TensorProto` / `AttributeProto` / `ValueInfoProto` helpers;
//! * [`props`]: the model's `metadata_props` (`crosskd.*` keys);
//! * [`quantize`]: calibration (minmax, percentile, entropy) and the
//!   QOperator / QDQ int8 writers; [`quantize::calib_data::CalibSet`] feeds it
//!   images from a folder, a COCO file or memory, preprocessed as the runtime does.
//!
//! ```no_run
//! use crosskd_sdk::onnx::quantize::calib_data::CalibSet;
//! use crosskd_sdk::onnx::quantize::{quantize, QuantizeOptions};
//! use crosskd_sdk::onnx::runner::{read_model, write_model, OnnxRunner};
//! use crosskd_sdk::ModelMeta;
//!
//! let fp32 = read_model("student.onnx".as_ref())?;
//! let json = crosskd_sdk::onnx::props::get_prop(&fp32, crosskd_sdk::onnx::props::META_KEY)
//!     .expect("a crosskd model");
//! let meta = ModelMeta::from_json(json).expect("valid metadata");
//! // Frames already in memory (e.g. from the camera) calibrate the ranges.
//! let frames = vec![image::open("frame.jpg").expect("an image")];
//! let mut calib = CalibSet::from_images(frames, &meta)?;
//! let n = calib.len();
//! let (int8, summary) = quantize(
//!     &fp32,
//!     n,
//!     &mut |i| calib.input(i),
//!     &QuantizeOptions::default(),
//!     &mut |_, _| {},
//! )?;
//! println!("{summary}");
//! write_model("student.int8.onnx".as_ref(), &int8)?; // temp file + rename
//! let runner = OnnxRunner::from_path("student.int8.onnx".as_ref())?;
//! let [_, _, h, w] = runner.input_shape();
//! let outputs = runner.run(&vec![0.0; 3 * h * w])?;
//! println!("{} outputs, first `{}` {:?}", outputs.len(), outputs[0].name, outputs[0].shape);
//! # Ok::<(), crosskd_sdk::onnx::quantize::QuantizeError>(())
//! ```

mod error;
pub mod props;
pub mod quantize;
pub mod runner;
pub mod tensor;

pub use error::OnnxError;
