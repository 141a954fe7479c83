//! Small synthetic detectors written as ONNX files in the exporter's contract,
//! with a plain-Rust reference forward pass: for the SDK's tests, the benchmark
//! and trying the CLI before a real model is exported.
//!
//! Each level `l` of stride `s` is: a `s×s`/stride-`s` "patchify" conv
//! (3 → `hidden`) + Relu, `tower` 3×3 convs (`hidden → hidden`) + Relu, then
//! 1×1 convs to `cls_score_l`, `bbox_pred_l` (and `centerness_l`). Weights are
//! deterministic in `seed`. With [`Quant::QOperator`] the stem conv is a real
//! int8 `QLinearConv` (int8 activations, per-channel int8 weights, int32 bias);
//! with [`Quant::Qdq`] it is a float conv between Quantize/DequantizeLinear.
//!
//! ```
//! use crosskd_sdk::testing::SyntheticDetector;
//! use crosskd_sdk::HeadKind;
//! let net = SyntheticDetector::new(HeadKind::Fcos, 2, (64, 64), &[16, 32]);
//! let bytes = net.to_bytes();
//! assert!(bytes.len() > 100);
//! assert_eq!(net.meta().decode.strides, vec![16.0, 32.0]);
//! ```

use std::path::Path;

use prost::Message;
use tract_onnx::pb::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

use crate::decode::{DecodeSpec, HeadKind};
use crate::metadata::ModelMeta;
use crate::model::{output_names, INPUT_NAME, META_KEY, PRECISION_KEY};

/// How the stem conv is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quant {
    /// Float everywhere.
    Fp32,
    /// `QuantizeLinear → QLinearConv → DequantizeLinear` (real int8 matmul).
    QOperator,
    /// `QuantizeLinear → DequantizeLinear → Conv` with dequantized int8 weights.
    Qdq,
}

/// Activation scale of the quantized input (normalised pixels lie in about ±2.7).
pub const INPUT_SCALE: f32 = 3.0 / 127.0;
/// Output scale of the quantized stem conv.
pub const STEM_SCALE: f32 = 6.0 / 127.0;

/// A synthetic detector description.
#[derive(Clone, Debug)]
pub struct SyntheticDetector {
    /// Head kind (decides outputs and metadata).
    pub kind: HeadKind,
    /// Classes.
    pub num_classes: usize,
    /// Network input `(w, h)`.
    pub input_size: (u32, u32),
    /// One stride per level.
    pub strides: Vec<u32>,
    /// Channels after the stem.
    pub hidden: usize,
    /// 3×3 convs per level after the stem (0 for the tiny test models).
    pub tower: usize,
    /// Storage of the stem conv.
    pub quant: Quant,
    /// Weight seed.
    pub seed: u64,
    /// Whether to write `crosskd.meta` (off: a "non-detector" model).
    pub with_meta: bool,
    /// Mean of the classification biases: -2 (sigmoid 0.12) gives the tests
    /// many detections; -4.6 (sigmoid 0.01) is the focal-loss prior of a
    /// trained head, where few scores pass 0.05, as in a real deployment.
    pub cls_bias: f32,
}

/// One conv layer's parameters, `OIHW` weights.
#[derive(Clone, Debug)]
pub struct ConvParams {
    /// Weights, `out × in × k × k`.
    pub weight: Vec<f32>,
    /// Bias, `out`.
    pub bias: Vec<f32>,
    /// Output channels.
    pub out_c: usize,
    /// Input channels.
    pub in_c: usize,
    /// Kernel side.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub pad: usize,
}

/// One level's reference head outputs.
#[derive(Clone, Debug)]
pub struct RefLevel {
    /// `cls_score`, `bbox_pred`[, `centerness`], each CHW.
    pub outputs: Vec<Vec<f32>>,
    /// Feature-map height.
    pub height: usize,
    /// Feature-map width.
    pub width: usize,
}

/// Per-level parameters.
#[derive(Clone, Debug)]
pub struct LevelParams {
    /// Patchify stem.
    pub stem: ConvParams,
    /// 3×3 tower.
    pub tower: Vec<ConvParams>,
    /// Head convs: cls, bbox[, centerness].
    pub heads: Vec<ConvParams>,
}

impl SyntheticDetector {
    /// A float model with `hidden = 8`, no tower, metadata on, seed 1.
    pub fn new(
        kind: HeadKind,
        num_classes: usize,
        input_size: (u32, u32),
        strides: &[u32],
    ) -> Self {
        Self {
            kind,
            num_classes,
            input_size,
            strides: strides.to_vec(),
            hidden: 8,
            tower: 0,
            quant: Quant::Fp32,
            seed: 1,
            with_meta: true,
            cls_bias: -2.0,
        }
    }

    /// The metadata written into the file (default test settings of the kind).
    pub fn meta(&self) -> ModelMeta {
        let strides: Vec<f32> = self.strides.iter().map(|&s| s as f32).collect();
        let spec = DecodeSpec::for_kind(self.kind, self.num_classes).with_strides(&strides);
        let names = (0..self.num_classes).map(|i| format!("class{i}")).collect();
        ModelMeta::new(spec, names, self.input_size)
    }

    /// The deterministic parameters of every level.
    pub fn params(&self) -> Vec<LevelParams> {
        let mut rng = Lcg(self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let (cls_c, bbox_c, ctr_c) = self.meta().decode.level_channels();
        self.strides
            .iter()
            .map(|&s| {
                let s = s as usize;
                let stem = conv(&mut rng, self.hidden, 3, s, s, 0, 0.0);
                let tower = (0..self.tower)
                    .map(|_| conv(&mut rng, self.hidden, self.hidden, 3, 1, 1, 0.0))
                    .collect();
                let mut heads = vec![
                    conv(&mut rng, cls_c, self.hidden, 1, 1, 0, self.cls_bias),
                    conv(&mut rng, bbox_c, self.hidden, 1, 1, 0, 0.0),
                ];
                if let Some(c) = ctr_c {
                    heads.push(conv(&mut rng, c, self.hidden, 1, 1, 0, 0.0));
                }
                LevelParams { stem, tower, heads }
            })
            .collect()
    }

    /// The ONNX model.
    pub fn model_proto(&self) -> ModelProto {
        let (w, h) = self.input_size;
        let mut g = GraphProto {
            name: "synthetic".into(),
            input: vec![value_info(INPUT_NAME, &[1, 3, h as i64, w as i64])],
            ..Default::default()
        };
        let with_ctr = self.kind.has_centerness();
        let mut stem_input = INPUT_NAME.to_string();
        if self.quant != Quant::Fp32 {
            g.initializer
                .push(f32_tensor("x_scale", &[], &[INPUT_SCALE]));
            g.initializer.push(i8_tensor("x_zp", &[], &[0]));
            g.node.push(node(
                "QuantizeLinear",
                &[INPUT_NAME, "x_scale", "x_zp"],
                &["images_q"],
                vec![],
            ));
            stem_input = "images_q".into();
            if self.quant == Quant::Qdq {
                g.node.push(node(
                    "DequantizeLinear",
                    &["images_q", "x_scale", "x_zp"],
                    &["images_dq"],
                    vec![],
                ));
                stem_input = "images_dq".into();
            }
        }
        for (l, p) in self.params().iter().enumerate() {
            let stem_out = format!("stem{l}");
            self.push_stem(&mut g, l, &p.stem, &stem_input, &stem_out);
            let mut x = format!("stem{l}_relu");
            g.node.push(node("Relu", &[&stem_out], &[&x], vec![]));
            for (t, c) in p.tower.iter().enumerate() {
                let y = format!("tower{l}_{t}");
                push_conv(&mut g, &y, c, &x, &y);
                let r = format!("{y}_relu");
                g.node.push(node("Relu", &[&y], &[&r], vec![]));
                x = r;
            }
            for (name, c) in output_names(l, with_ctr).iter().zip(&p.heads) {
                push_conv(&mut g, name, c, &x, name);
                g.output.push(value_info(name, &[]));
            }
        }
        let mut metadata_props = Vec::new();
        if self.with_meta {
            metadata_props.push(entry(META_KEY, &self.meta().to_json()));
            let precision = if self.quant == Quant::Fp32 {
                "fp32"
            } else {
                "int8"
            };
            metadata_props.push(entry(PRECISION_KEY, precision));
        }
        ModelProto {
            ir_version: 8,
            producer_name: "crosskd-sdk testing".into(),
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            }],
            graph: Some(g),
            metadata_props,
            ..Default::default()
        }
    }

    fn push_stem(&self, g: &mut GraphProto, l: usize, c: &ConvParams, x: &str, out: &str) {
        if self.quant == Quant::Fp32 {
            return push_conv(g, out, c, x, out);
        }
        let (wq, ws) = quantize_per_channel(c);
        let n = |s: &str| format!("stem{l}_{s}");
        let dims = [c.out_c as i64, c.in_c as i64, c.k as i64, c.k as i64];
        g.initializer.push(i8_tensor(&n("wq"), &dims, &wq));
        g.initializer
            .push(f32_tensor(&n("ws"), &[c.out_c as i64], &ws));
        g.initializer
            .push(i8_tensor(&n("wzp"), &[c.out_c as i64], &vec![0; c.out_c]));
        let attrs = conv_attrs(c);
        if self.quant == Quant::Qdq {
            g.node.push(node(
                "DequantizeLinear",
                &[&n("wq"), &n("ws"), &n("wzp")],
                &[&n("wdq")],
                vec![int_attr("axis", 0)],
            ));
            g.initializer
                .push(f32_tensor(&n("b"), &[c.out_c as i64], &c.bias));
            g.node
                .push(node("Conv", &[x, &n("wdq"), &n("b")], &[out], attrs));
            return;
        }
        // Bias in the accumulator's scale: x_scale · w_scale[o].
        let bq: Vec<i32> = c
            .bias
            .iter()
            .zip(&ws)
            .map(|(b, s)| (b / (INPUT_SCALE * s)).round_ties_even() as i32)
            .collect();
        g.initializer
            .push(i32_tensor(&n("bq"), &[c.out_c as i64], &bq));
        g.initializer.push(f32_tensor(&n("ys"), &[], &[STEM_SCALE]));
        g.initializer.push(i8_tensor(&n("yzp"), &[], &[0]));
        let q_out = n("q");
        g.node.push(node(
            "QLinearConv",
            &[
                x,
                "x_scale",
                "x_zp",
                &n("wq"),
                &n("ws"),
                &n("wzp"),
                &n("ys"),
                &n("yzp"),
                &n("bq"),
            ],
            &[&q_out],
            attrs,
        ));
        g.node.push(node(
            "DequantizeLinear",
            &[&q_out, &n("ys"), &n("yzp")],
            &[out],
            vec![],
        ));
    }

    /// The serialised model.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.model_proto().encode_to_vec()
    }

    /// Writes the model to `path`.
    pub fn write(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.to_bytes())
    }

    /// Reference forward pass on a normalised CHW input of the model's size:
    /// per level the head outputs (cls, bbox[, ctr]) and the level's size.
    /// Quantized stems are emulated exactly as ONNX defines them (round half
    /// to even, saturating int8).
    pub fn reference_forward(&self, chw: &[f32]) -> Vec<RefLevel> {
        let (w, h) = (self.input_size.0 as usize, self.input_size.1 as usize);
        let input: Vec<f32> = match self.quant {
            Quant::Fp32 => chw.to_vec(),
            _ => chw
                .iter()
                .map(|v| quantize(*v, INPUT_SCALE) as f32 * INPUT_SCALE)
                .collect(),
        };
        self.params()
            .iter()
            .map(|p| {
                let stem = match self.quant {
                    Quant::Fp32 => p.stem.clone(),
                    _ => {
                        let (wq, ws) = quantize_per_channel(&p.stem);
                        let per = p.stem.weight.len() / p.stem.out_c;
                        let mut c = p.stem.clone();
                        for (i, v) in c.weight.iter_mut().enumerate() {
                            *v = wq[i] as f32 * ws[i / per];
                        }
                        if self.quant == Quant::QOperator {
                            for (b, s) in c.bias.iter_mut().zip(&ws) {
                                *b = (*b / (INPUT_SCALE * s)).round_ties_even() * INPUT_SCALE * s;
                            }
                        }
                        c
                    }
                };
                let (mut x, mut xh, mut xw) = conv2d(&input, h, w, &stem);
                if self.quant == Quant::QOperator {
                    for v in x.iter_mut() {
                        *v = quantize(*v, STEM_SCALE) as f32 * STEM_SCALE;
                    }
                }
                relu(&mut x);
                for t in &p.tower {
                    let (y, yh, yw) = conv2d(&x, xh, xw, t);
                    (x, xh, xw) = (y, yh, yw);
                    relu(&mut x);
                }
                RefLevel {
                    outputs: p.heads.iter().map(|c| conv2d(&x, xh, xw, c).0).collect(),
                    height: xh,
                    width: xw,
                }
            })
            .collect()
    }
}

/// Saturating int8 quantization with ONNX's round-half-to-even.
pub fn quantize(v: f32, scale: f32) -> i8 {
    (v / scale).round_ties_even().clamp(-128.0, 127.0) as i8
}

fn quantize_per_channel(c: &ConvParams) -> (Vec<i8>, Vec<f32>) {
    let per = c.weight.len() / c.out_c;
    let mut q = Vec::with_capacity(c.weight.len());
    let mut scales = Vec::with_capacity(c.out_c);
    for ch in c.weight.chunks(per) {
        let max = ch.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-8);
        let s = max / 127.0;
        scales.push(s);
        q.extend(ch.iter().map(|v| quantize(*v, s)));
    }
    (q, scales)
}

/// Direct convolution, CHW, zero padding; returns `(out, out_h, out_w)`.
pub fn conv2d(x: &[f32], h: usize, w: usize, c: &ConvParams) -> (Vec<f32>, usize, usize) {
    let oh = (h + 2 * c.pad - c.k) / c.stride + 1;
    let ow = (w + 2 * c.pad - c.k) / c.stride + 1;
    let mut out = vec![0.0f32; c.out_c * oh * ow];
    for o in 0..c.out_c {
        for oy in 0..oh {
            for ox in 0..ow {
                // f64 accumulation: the reference should be the accurate side.
                let mut acc = c.bias[o] as f64;
                for i in 0..c.in_c {
                    for ky in 0..c.k {
                        let iy = (oy * c.stride + ky) as isize - c.pad as isize;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        for kx in 0..c.k {
                            let ix = (ox * c.stride + kx) as isize - c.pad as isize;
                            if ix < 0 || ix >= w as isize {
                                continue;
                            }
                            let wv = c.weight[((o * c.in_c + i) * c.k + ky) * c.k + kx];
                            let xv = x[(i * h + iy as usize) * w + ix as usize];
                            acc += wv as f64 * xv as f64;
                        }
                    }
                }
                out[(o * oh + oy) * ow + ox] = acc as f32;
            }
        }
    }
    (out, oh, ow)
}

fn relu(x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v = v.max(0.0));
}

/// Tiny deterministic generator (no `rand` dependency in the SDK).
struct Lcg(u64);

impl Lcg {
    /// Uniform in `[-1, 1)`.
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

fn conv(
    rng: &mut Lcg,
    out_c: usize,
    in_c: usize,
    k: usize,
    stride: usize,
    pad: usize,
    bias_shift: f32,
) -> ConvParams {
    // Variance-preserving-ish uniform init so activations stay O(1) with depth.
    let a = (3.0 / (in_c * k * k) as f32).sqrt();
    ConvParams {
        weight: (0..out_c * in_c * k * k).map(|_| rng.next() * a).collect(),
        bias: (0..out_c).map(|_| rng.next() * 0.5 + bias_shift).collect(),
        out_c,
        in_c,
        k,
        stride,
        pad,
    }
}

fn conv_attrs(c: &ConvParams) -> Vec<AttributeProto> {
    let (k, s, p) = (c.k as i64, c.stride as i64, c.pad as i64);
    vec![
        ints_attr("kernel_shape", &[k, k]),
        ints_attr("strides", &[s, s]),
        ints_attr("pads", &[p, p, p, p]),
    ]
}

fn push_conv(g: &mut GraphProto, prefix: &str, c: &ConvParams, x: &str, out: &str) {
    let (wn, bn) = (format!("{prefix}_w"), format!("{prefix}_b"));
    let dims = [c.out_c as i64, c.in_c as i64, c.k as i64, c.k as i64];
    g.initializer.push(f32_tensor(&wn, &dims, &c.weight));
    g.initializer
        .push(f32_tensor(&bn, &[c.out_c as i64], &c.bias));
    g.node
        .push(node("Conv", &[x, &wn, &bn], &[out], conv_attrs(c)));
}

fn node(op: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        name: format!("{op}_{}", outputs[0]),
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

fn ints_attr(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: ints.to_vec(),
        ..Default::default()
    }
}

fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

fn f32_tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        float_data: data.to_vec(),
        ..Default::default()
    }
}

fn i8_tensor(name: &str, dims: &[i64], data: &[i8]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Int8 as i32,
        raw_data: data.iter().map(|v| *v as u8).collect(),
        ..Default::default()
    }
}

fn i32_tensor(name: &str, dims: &[i64], data: &[i32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Int32 as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// A float tensor value; `dims` empty leaves the shape to inference.
fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let shape = (!dims.is_empty()).then(|| TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| tensor_shape_proto::Dimension {
                value: Some(tensor_shape_proto::dimension::Value::DimValue(*d)),
                ..Default::default()
            })
            .collect(),
    });
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape,
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn entry(key: &str, value: &str) -> StringStringEntryProto {
    StringStringEntryProto {
        key: key.into(),
        value: value.into(),
    }
}
