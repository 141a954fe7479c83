//! QOperator int8 graph: `QuantizeLinear → QLinearConv (int32 bias) → … →
//! DequantizeLinear`, the form tract runs with real int8 kernels.
//!
//! Each tensor lives in the int8 domain (produced by a `QLinearConv`, or by a
//! `QuantizeLinear` where a float tensor feeds a quantized conv) and/or in the
//! float domain (the original name; a `DequantizeLinear` is inserted lazily
//! where a float op needs it). So float islands — residual `Add` (tract has no
//! `QLinearAdd`), FPN `Resize`, `MaxPool`, GroupNorm, head Scale/Exp — sit
//! between `DequantizeLinear` and `QuantizeLinear`, and graph outputs stay f32
//! with their names.

use std::collections::{HashMap, HashSet};

use tract_onnx::pb::{tensor_proto::DataType, GraphProto, ModelProto, NodeProto, TensorProto};

use super::calibrate::Range;
use super::params::{quantize_bias, quantize_weight, QParams};
use super::plan::{model_graph, ConvPlan, GraphIndex};
use super::QuantizeError;
use crate::onnx::tensor::{f32_tensor, raw_tensor, tensor_f32};

/// Int8 scalar initializer.
pub(crate) fn i8_tensor(name: &str, dims: &[usize], v: &[i8]) -> TensorProto {
    raw_tensor(
        name,
        dims,
        DataType::Int8,
        v.iter().map(|x| *x as u8).collect(),
    )
}

/// Int32 initializer.
pub(crate) fn i32_tensor(name: &str, dims: &[usize], v: &[i32]) -> TensorProto {
    raw_tensor(
        name,
        dims,
        DataType::Int32,
        v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    )
}

pub(crate) fn node(
    op: &str,
    inputs: Vec<String>,
    output: String,
    attribute: Vec<tract_onnx::pb::AttributeProto>,
) -> NodeProto {
    NodeProto {
        name: format!("{op}:{output}"),
        op_type: op.into(),
        input: inputs,
        output: vec![output],
        attribute,
        ..Default::default()
    }
}

/// Calibrated parameters of tensor `t` (ReLU-fused outputs start at 0).
pub(crate) fn tensor_params(
    ranges: &HashMap<String, Range>,
    t: &str,
    relu: bool,
) -> Result<QParams, QuantizeError> {
    let r = ranges
        .get(t)
        .ok_or_else(|| QuantizeError::Graph(format!("no calibrated range for tensor `{t}`")))?;
    Ok(QParams::from_range(if relu { 0.0 } else { r.lo }, r.hi))
}

/// A weight initializer quantized per output channel, with its names.
pub(crate) struct QWeightNames {
    pub values: String,
    pub scale: String,
    pub zero_point: String,
    pub scales: Vec<f32>,
}

/// Adds int8 weight initializers (once per weight name).
pub(crate) fn quantized_weight(
    inits: &mut Vec<TensorProto>,
    cache: &mut HashMap<String, QWeightNames>,
    idx: &GraphIndex<'_>,
    weight: &str,
) -> Result<(), QuantizeError> {
    if cache.contains_key(weight) {
        return Ok(());
    }
    let t = idx.inits[weight];
    let w = tensor_f32(t)?;
    let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    let m = dims[0];
    let q = quantize_weight(&w, m);
    let names = QWeightNames {
        values: format!("{weight}_quantized"),
        scale: format!("{weight}_scale"),
        zero_point: format!("{weight}_zero_point"),
        scales: q.scales.clone(),
    };
    inits.push(i8_tensor(&names.values, &dims, &q.values));
    inits.push(f32_tensor(&names.scale, &[m], &q.scales));
    inits.push(i8_tensor(&names.zero_point, &[m], &vec![0; m]));
    cache.insert(weight.to_string(), names);
    Ok(())
}

/// Keep only initializers some node reads.
pub(crate) fn prune_initializers(g: &mut GraphProto) {
    let used: HashSet<&str> = g
        .node
        .iter()
        .flat_map(|n| n.input.iter().map(String::as_str))
        .collect();
    let keep: Vec<TensorProto> = g
        .initializer
        .iter()
        .filter(|t| used.contains(t.name.as_str()))
        .cloned()
        .collect();
    g.initializer = keep;
}

struct Writer<'a> {
    idx: &'a GraphIndex<'a>,
    ranges: &'a HashMap<String, Range>,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    /// tensor → (int8 name, params)
    quant: HashMap<String, (String, QParams)>,
    float: HashSet<String>,
    /// tensors whose scale/zero-point initializers exist
    param_inits: HashSet<String>,
    weights: HashMap<String, QWeightNames>,
}

impl Writer<'_> {
    fn param_names(&mut self, t: &str, p: QParams) -> (String, String) {
        let (s, z) = (format!("{t}_scale"), format!("{t}_zero_point"));
        if self.param_inits.insert(t.to_string()) {
            self.inits.push(f32_tensor(&s, &[], &[p.scale]));
            self.inits.push(i8_tensor(&z, &[], &[p.zero_point]));
        }
        (s, z)
    }

    fn ensure_quant(&mut self, t: &str) -> Result<(String, QParams), QuantizeError> {
        if let Some(q) = self.quant.get(t) {
            return Ok(q.clone());
        }
        self.ensure_float(t)?;
        let p = tensor_params(self.ranges, t, false)?;
        let (s, z) = self.param_names(t, p);
        let q = format!("{t}_quantized");
        self.nodes.push(node(
            "QuantizeLinear",
            vec![t.into(), s, z],
            q.clone(),
            vec![],
        ));
        self.quant.insert(t.to_string(), (q.clone(), p));
        Ok((q, p))
    }

    fn ensure_float(&mut self, t: &str) -> Result<(), QuantizeError> {
        if t.is_empty() || self.float.contains(t) || self.idx.inits.contains_key(t) {
            return Ok(());
        }
        let (q, p) = self.quant.get(t).cloned().ok_or_else(|| {
            QuantizeError::Graph(format!("tensor `{t}` is used before it is produced"))
        })?;
        let (s, z) = self.param_names(t, p);
        self.nodes
            .push(node("DequantizeLinear", vec![q, s, z], t.into(), vec![]));
        self.float.insert(t.to_string());
        Ok(())
    }

    fn qconv(&mut self, plan: &ConvPlan) -> Result<(), QuantizeError> {
        let conv = &self.idx.graph.node[plan.node];
        let (xq, xp) = self.ensure_quant(&plan.input)?;
        let (xs, xz) = self.param_names(&plan.input, xp);
        let yp = tensor_params(self.ranges, &plan.output, plan.relu.is_some())?;
        let (ys, yz) = self.param_names(&plan.output, yp);
        quantized_weight(&mut self.inits, &mut self.weights, self.idx, &plan.weight)?;
        let w = &self.weights[&plan.weight];
        let mut inputs = vec![
            xq,
            xs,
            xz,
            w.values.clone(),
            w.scale.clone(),
            w.zero_point.clone(),
            ys,
            yz,
        ];
        if let Some(b) = &plan.bias {
            let bias = tensor_f32(self.idx.inits[b.as_str()])?;
            let name = format!("{}_bias_quantized", plan.output);
            let q = quantize_bias(&bias, xp.scale, &w.scales);
            self.inits.push(i32_tensor(&name, &[q.len()], &q));
            inputs.push(name);
        }
        let out = format!("{}_quantized", plan.output);
        self.nodes.push(node(
            "QLinearConv",
            inputs,
            out.clone(),
            conv.attribute.clone(),
        ));
        self.quant.insert(plan.output.clone(), (out, yp));
        Ok(())
    }
}

/// Rewrite `model` (fp32, as exported) into its QOperator int8 form.
pub fn to_qoperator(
    model: &ModelProto,
    plans: &[ConvPlan],
    ranges: &HashMap<String, Range>,
) -> Result<ModelProto, QuantizeError> {
    let graph = model_graph(model)?;
    let idx = GraphIndex::new(graph);
    let by_node: HashMap<usize, &ConvPlan> = plans.iter().map(|p| (p.node, p)).collect();
    let fused: HashSet<usize> = plans
        .iter()
        .filter(|p| p.quantize)
        .filter_map(|p| p.relu)
        .collect();
    let mut w = Writer {
        idx: &idx,
        ranges,
        nodes: Vec::new(),
        inits: graph.initializer.clone(),
        quant: HashMap::new(),
        float: graph.input.iter().map(|i| i.name.clone()).collect(),
        param_inits: HashSet::new(),
        weights: HashMap::new(),
    };
    for (i, n) in graph.node.iter().enumerate() {
        if fused.contains(&i) {
            continue;
        }
        match by_node.get(&i) {
            Some(plan) if plan.quantize => w.qconv(plan)?,
            _ => {
                for x in &n.input {
                    w.ensure_float(x)?;
                }
                w.nodes.push(n.clone());
                w.float.extend(n.output.iter().cloned());
            }
        }
    }
    for o in &graph.output {
        w.ensure_float(&o.name)?;
    }
    let mut out = model.clone();
    let g = out.graph.as_mut().expect("checked above");
    g.node = w.nodes;
    g.initializer = w.inits;
    prune_initializers(g);
    Ok(out)
}
