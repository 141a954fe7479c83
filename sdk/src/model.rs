//! Loading an exported model into a typed, optimised tract plan.
//!
//! The exporter's contract (see `docs/sdk.md`): one f32 input `images`
//! `[1, 3, H, W]`; per FPN level `l` the raw head outputs `cls_score_{l}`,
//! `bbox_pred_{l}` and, for FCOS/ATSS, `centerness_{l}`, found by name; the
//! metadata entry `crosskd.meta` (a [`ModelMeta`] JSON) and optionally
//! `crosskd.precision` (`fp32` or `int8`). Every violation is reported before the
//! first frame, naming the file and what is missing.
//!
//! Threads: tract runs its matmuls on the executor stored in the plan
//! ([`RunOptions::executor`]); a detector with `threads > 1` gets a private rayon
//! pool of that size (`tract-linalg`'s `multithread-mm` feature), so two
//! detectors in one process never share or fight over a global pool.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::runtime::RunOptions;

use crate::config::{DeviceConfig, Precision};
use crate::error::{chain, Result, SdkError};
use crate::metadata::ModelMeta;

/// Metadata key of the [`ModelMeta`] JSON.
pub const META_KEY: &str = "crosskd.meta";
/// Metadata key of the precision tag (`fp32` | `int8`).
pub const PRECISION_KEY: &str = "crosskd.precision";
/// Name of the single graph input.
pub const INPUT_NAME: &str = "images";

/// Names of level `l`'s outputs, in the order the plan returns them.
pub fn output_names(level: usize, with_centerness: bool) -> Vec<String> {
    let mut names = vec![format!("cls_score_{level}"), format!("bbox_pred_{level}")];
    if with_centerness {
        names.push(format!("centerness_{level}"));
    }
    names
}

type Plan = TypedSimplePlan;

/// A loaded model: its metadata and a runnable plan with a fixed input shape.
///
/// [`Detector`](crate::Detector) wraps one; use it directly for raw head outputs.
///
/// ```no_run
/// use crosskd_sdk::model::OnnxModel;
/// use crosskd_sdk::DeviceConfig;
/// use tract_onnx::prelude::*;
/// let mut model = OnnxModel::load("student.onnx", &DeviceConfig::default())?;
/// let (w, h) = model.meta().input_size;
/// let x = Tensor::zero::<f32>(&[1, 3, h as usize, w as usize]).unwrap();
/// let outputs = model.run(x.into_tvalue())?; // cls_score_0, bbox_pred_0, ...
/// println!("{} outputs, {:?}", outputs.len(), model.precision());
/// # Ok::<(), crosskd_sdk::SdkError>(())
/// ```
#[derive(Debug)]
pub struct OnnxModel {
    path: PathBuf,
    meta: ModelMeta,
    precision: Option<Precision>,
    /// Outputs per level (2, or 3 with centerness).
    per_level: usize,
    plan: Arc<Plan>,
    /// Reused across runs: tract keeps its scratch buffers in the state.
    state: TypedSimpleState,
}

impl OnnxModel {
    /// Reads, checks and optimises `path` for the input size and threads of `cfg`.
    pub fn load(path: impl AsRef<Path>, cfg: &DeviceConfig) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|e| SdkError::io(&path, e))?;
        let model_err = |message: String| SdkError::Model {
            path: path.clone(),
            message,
        };
        if bytes.is_empty() {
            return Err(model_err("the file is empty".into()));
        }
        let proto = ModelProto::decode(bytes.as_slice())
            .map_err(|e| model_err(format!("{e} (truncated or not an ONNX file?)")))?;
        // Random bytes can parse as a protobuf with only unknown fields: no graph.
        let graph = proto
            .graph
            .as_ref()
            .filter(|g| !g.node.is_empty())
            .ok_or_else(|| {
                model_err("no graph in the file (truncated or not an ONNX file?)".into())
            })?;

        let prop = |key: &str| {
            proto
                .metadata_props
                .iter()
                .find(|p| p.key == key)
                .map(|p| p.value.as_str())
        };
        let json =
            prop(META_KEY).ok_or_else(|| SdkError::NotCrosskdModel { path: path.clone() })?;
        let mut meta = ModelMeta::from_json(json).map_err(|source| SdkError::Meta {
            path: path.clone(),
            source,
        })?;
        let contract = |message: String| SdkError::Contract {
            path: path.clone(),
            message,
        };
        let precision = match prop(PRECISION_KEY) {
            // Untagged (another exporter): quantized nodes make it int8.
            None => Some(
                if graph.node.iter().any(|n| {
                    matches!(
                        n.op_type.as_str(),
                        "QLinearConv" | "QuantizeLinear" | "ConvInteger" | "QLinearMatMul"
                    )
                }) {
                    Precision::Int8
                } else {
                    Precision::Fp32
                },
            ),
            Some("fp32") => Some(Precision::Fp32),
            Some("int8") => Some(Precision::Int8),
            Some(other) => {
                return Err(contract(format!(
                    "metadata {PRECISION_KEY} = {other:?}: expected \"fp32\" or \"int8\""
                )))
            }
        };
        if let (Some(model), want) = (precision, cfg.runtime.precision) {
            if want != Precision::Any && want != model {
                return Err(SdkError::Precision {
                    path: path.clone(),
                    model: model.to_string(),
                    config: want.to_string(),
                });
            }
        }

        // Inputs: graph inputs that are not initializers (older exporters list both).
        let inits: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs: Vec<&str> = graph
            .input
            .iter()
            .map(|i| i.name.as_str())
            .filter(|n| !inits.contains(n))
            .collect();
        if inputs != [INPUT_NAME] {
            return Err(contract(format!(
                "expected one input named `{INPUT_NAME}`, found {inputs:?}"
            )));
        }
        let outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
        let with_ctr = meta.decode.kind.has_centerness();
        let per_level = if with_ctr { 3 } else { 2 };
        let mut order = Vec::new();
        for level in 0..meta.decode.strides.len() {
            for name in output_names(level, with_ctr) {
                let ix = outputs.iter().position(|o| *o == name).ok_or_else(|| {
                    contract(format!(
                        "missing output `{name}` ({} head with {} levels); the graph has {outputs:?}",
                        meta.decode.kind,
                        meta.decode.strides.len()
                    ))
                })?;
                order.push(ix);
            }
        }

        let (in_w, in_h) = match cfg.runtime.input_size {
            Some([w, h]) => (w as usize, h as usize),
            None => (meta.input_size.0 as usize, meta.input_size.1 as usize),
        };
        let tract_err = |what: &str, e: TractError| model_err(format!("{what}: {}", chain(&e)));
        let mut model = tract_onnx::onnx()
            .model_for_proto_model(&proto)
            .map_err(|e| tract_err("tract could not read the graph", e))?;
        model
            .set_input_fact(
                0,
                InferenceFact::dt_shape(f32::datum_type(), tvec![1, 3, in_h, in_w]),
            )
            .map_err(|e| tract_err("setting the input shape", e))?;
        // The file declares its outputs at the exported size; at another input size
        // they follow from the graph (checked against the metadata below).
        for ix in 0..model.outputs.len() {
            model
                .set_output_fact(ix, InferenceFact::default())
                .map_err(|e| tract_err("clearing the output shapes", e))?;
        }
        let selected: Vec<OutletId> = {
            let all = model
                .output_outlets()
                .map_err(|e| tract_err("reading outputs", e))?;
            order.iter().map(|&i| all[i]).collect()
        };
        model
            .select_output_outlets(&selected)
            .map_err(|e| tract_err("selecting outputs", e))?;
        let typed = model.into_optimized().map_err(|e| {
            let hint = if cfg.runtime.input_size.is_some() {
                " (runtime.input_size differs from the exported size: re-export at that size)"
            } else {
                ""
            };
            tract_err(&format!("tract could not type/optimise the graph{hint}"), e)
        })?;

        // Output shapes are concrete now: check them against the metadata.
        let (cls_c, bbox_c, ctr_c) = meta.decode.level_channels();
        for (k, outlet) in typed.output_outlets().unwrap_or(&[]).iter().enumerate() {
            let (level, slot) = (k / per_level, k % per_level);
            let name = &output_names(level, with_ctr)[slot];
            let want_c = [Some(cls_c), Some(bbox_c), ctr_c][slot].unwrap_or(0);
            let fact = typed
                .outlet_fact(*outlet)
                .map_err(|e| tract_err("reading output types", e))?;
            let shape = fact.shape.as_concrete().map(|s| s.to_vec());
            // Strides are validated finite and >= 1.
            let stride = meta.decode.strides[level];
            let cells = |side: usize| (side as f64 / f64::from(stride)).ceil() as usize;
            let (want_h, want_w) = (cells(in_h), cells(in_w));
            match shape.as_deref() {
                Some([1, c, h, w]) if *c == want_c && fact.datum_type == f32::datum_type() => {
                    if (*h, *w) != (want_h, want_w) {
                        return Err(contract(format!(
                            "output `{name}` is {w}x{h} at input {in_w}x{in_h}; the metadata's \
                             stride {stride} needs {want_w}x{want_h}"
                        )));
                    }
                }
                _ => {
                    return Err(contract(format!(
                        "output `{name}` is {:?} {shape:?}; the metadata ({} head, {} classes) \
                         needs f32 [1, {want_c}, H, W]",
                        fact.datum_type, meta.decode.kind, meta.decode.num_classes
                    )))
                }
            }
        }

        let options = RunOptions {
            executor: (cfg.runtime.threads > 1).then(|| {
                tract_onnx::tract_core::tract_linalg::multithread::Executor::multithread_with_name(
                    cfg.runtime.threads,
                    "crosskd-tract",
                )
            }),
            ..Default::default()
        };
        let plan = typed
            .into_runnable_with_options(&options)
            .map_err(|e| tract_err("building the execution plan", e))?;
        let state = plan
            .spawn()
            .map_err(|e| tract_err("building the execution state", e))?;
        if meta.input_size != (in_w as u32, in_h as u32) {
            // The test scale belongs to the exported size: at another size, fit.
            meta.test_scale = None;
        }
        meta.input_size = (in_w as u32, in_h as u32);
        Ok(Self {
            path,
            meta,
            precision,
            per_level,
            plan,
            state,
        })
    }

    /// The model's metadata; `input_size` is the size the plan runs at.
    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    /// `crosskd.precision` of the file; for an untagged file, `int8` when it has
    /// quantized nodes (`QLinearConv`, `QuantizeLinear`, …) and `fp32` otherwise.
    pub fn precision(&self) -> Option<Precision> {
        self.precision
    }

    /// Where the model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Outputs per level: 2, or 3 with centerness.
    pub fn outputs_per_level(&self) -> usize {
        self.per_level
    }

    /// The optimised plan (e.g. to inspect its nodes).
    pub fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    /// Runs the plan on one input; outputs come level by level
    /// (`cls_score`, `bbox_pred`[, `centerness`]).
    pub fn run(&mut self, input: TValue) -> Result<TVec<TValue>> {
        let out = self
            .state
            .run(tvec![input])
            .map_err(|e| SdkError::Inference(chain(&e)));
        clear_upper_vector_state();
        out
    }
}

/// tract 0.23's AVX/AVX-512 matmul kernels return without `vzeroupper`, leaving
/// the upper halves of the vector registers dirty. On Intel cores every legacy-SSE
/// instruction that follows (the SDK's scalar float code and libm's `expf`, both
/// SSE-encoded for baseline x86-64) then pays a merge penalty until the state is
/// cleared. Suspected cause of the post-processing measured 12× slower on a Xeon
/// (Sapphire Rapids) than on the AMD development machine with the same binary,
/// dominated by `exp` (halving the `exp` calls halved it); not yet re-measured
/// there with this fix. One instruction per frame; nothing on other targets.
#[inline]
fn clear_upper_vector_state() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: AVX is present (checked above); `vzeroupper` only zeroes bits
        // 128 and up of the vector registers, which hold no live value between
        // tract's run and the code that follows.
        unsafe { std::arch::x86_64::_mm256_zeroupper() }
    }
}

/// Where inference time goes: [`OnnxModel::profile`]'s result.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// Median wall time of a whole (instrumented) run, in milliseconds.
    pub run_ms: f64,
    /// Every evaluated node, in plan order.
    pub nodes: Vec<NodeTime>,
}

/// Wall time of one plan node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeTime {
    /// Node name in the optimised plan (`Conv:head.reg_pred.l0.matmatmul`, …).
    pub node: String,
    /// tract op name (`OptMatMul`, `Pad`, …).
    pub op: String,
    /// Median over the profiled runs, in milliseconds.
    pub ms: f64,
    /// tract's description of the node (shapes, matmul kernel).
    pub info: Vec<String>,
}

impl OnnxModel {
    /// Runs the plan `runs` times on `input`, timing every node (wall time,
    /// median per node). For finding where the `infer` stage goes
    /// (`crosskd-sdk bench --profile`); each run is slightly slower than
    /// [`run`](Self::run).
    pub fn profile(&mut self, input: TValue, runs: usize) -> Result<Profile> {
        let runs = runs.max(1);
        let mut samples: Vec<Vec<f64>> =
            vec![Vec::with_capacity(runs); self.plan.model().nodes().len()];
        let mut totals = Vec::with_capacity(runs);
        for _ in 0..runs {
            let start = std::time::Instant::now();
            self.state
                .run_plan_with_eval(tvec![input.clone()], |ctx, state, node, inputs| {
                    let t = std::time::Instant::now();
                    let out = tract_onnx::tract_core::plan::eval(ctx, state, node, inputs);
                    samples[node.id].push(t.elapsed().as_secs_f64() * 1e3);
                    out
                })
                .map_err(|e| SdkError::Inference(chain(&e)))?;
            totals.push(start.elapsed().as_secs_f64() * 1e3);
        }
        let model = self.plan.model();
        let nodes = self
            .plan
            .order_without_consts()
            .iter()
            .filter_map(|&id| {
                let node = model.node(id);
                Some(NodeTime {
                    node: node.name.clone(),
                    op: node.op().name().to_string(),
                    ms: median(std::mem::take(&mut samples[id]))?,
                    info: node.op().info().unwrap_or_default(),
                })
            })
            .collect();
        Ok(Profile {
            run_ms: median(totals).unwrap_or(0.0),
            nodes,
        })
    }
}

/// Median of `v`; `None` when empty.
fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}
