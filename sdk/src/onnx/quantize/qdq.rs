//! QDQ int8 graph for TensorRT / onnxruntime users: the float graph with a
//! `QuantizeLinear → DequantizeLinear` pair on every tensor the QOperator form
//! quantizes, and weights/biases stored as int8/int32 behind a per-channel
//! `DequantizeLinear`. Those runtimes fuse the pairs into int8 kernels; tract
//! runs it as fake quantization in f32 (same numbers, no speed-up).

use std::collections::{HashMap, HashSet};

use tract_onnx::pb::{ModelProto, NodeProto, TensorProto};

use super::calibrate::Range;
use super::params::{quantize_bias, QParams};
use super::plan::{model_graph, ConvPlan, GraphIndex};
use super::qoperator::{
    i32_tensor, i8_tensor, node, prune_initializers, quantized_weight, tensor_params, QWeightNames,
};
use super::QuantizeError;
use crate::onnx::tensor::{attr_int, f32_tensor, tensor_f32};

/// Rewrite `model` (fp32) into its QDQ int8 form.
pub fn to_qdq(
    model: &ModelProto,
    plans: &[ConvPlan],
    ranges: &HashMap<String, Range>,
) -> Result<ModelProto, QuantizeError> {
    let graph = model_graph(model)?;
    let idx = GraphIndex::new(graph);
    // Tensor → (params) for every quantized activation; ReLU-fused outputs start at 0.
    let mut qt: HashMap<String, QParams> = HashMap::new();
    for p in plans.iter().filter(|p| p.quantize) {
        qt.entry(p.input.clone())
            .or_insert(tensor_params(ranges, &p.input, false)?);
        qt.insert(
            p.output.clone(),
            tensor_params(ranges, &p.output, p.relu.is_some())?,
        );
    }
    let by_node: HashMap<usize, &ConvPlan> = plans
        .iter()
        .filter(|p| p.quantize)
        .map(|p| (p.node, p))
        .collect();
    let mut inits: Vec<TensorProto> = graph.initializer.clone();
    let mut weights: HashMap<String, QWeightNames> = HashMap::new();
    let mut dq_weights: HashSet<String> = HashSet::new();
    let mut nodes: Vec<NodeProto> = Vec::new();

    // Emits Q/DQ of `t` read from `src`, producing `dst`.
    let qdq = |nodes: &mut Vec<NodeProto>,
               inits: &mut Vec<TensorProto>,
               t: &str,
               src: &str,
               dst: &str| {
        let p = qt[t];
        let (s, z) = (format!("{t}_scale"), format!("{t}_zero_point"));
        inits.push(f32_tensor(&s, &[], &[p.scale]));
        inits.push(i8_tensor(&z, &[], &[p.zero_point]));
        let q = format!("{t}_quantized");
        nodes.push(node(
            "QuantizeLinear",
            vec![src.into(), s.clone(), z.clone()],
            q.clone(),
            vec![],
        ));
        nodes.push(node("DequantizeLinear", vec![q, s, z], dst.into(), vec![]));
    };

    // Graph inputs that are quantized: consumers read the dequantized copy.
    let mut renamed: HashMap<String, String> = HashMap::new();
    for i in &graph.input {
        if qt.contains_key(&i.name) {
            let dst = format!("{}_dequantized", i.name);
            qdq(&mut nodes, &mut inits, &i.name, &i.name, &dst);
            renamed.insert(i.name.clone(), dst);
        }
    }
    for (i, n) in graph.node.iter().enumerate() {
        let mut n = n.clone();
        for x in n.input.iter_mut() {
            if let Some(r) = renamed.get(x) {
                *x = r.clone();
            }
        }
        if let Some(plan) = by_node.get(&i) {
            quantized_weight(&mut inits, &mut weights, &idx, &plan.weight)?;
            let w = &weights[&plan.weight];
            let wdq = format!("{}_dequantized", plan.weight);
            if dq_weights.insert(plan.weight.clone()) {
                nodes.push(node(
                    "DequantizeLinear",
                    vec![w.values.clone(), w.scale.clone(), w.zero_point.clone()],
                    wdq.clone(),
                    vec![attr_int("axis", 0)],
                ));
            }
            n.input[1] = wdq;
            if let Some(b) = &plan.bias {
                let bias = tensor_f32(idx.inits[b.as_str()])?;
                let xs = qt[&plan.input].scale;
                let q = quantize_bias(&bias, xs, &w.scales);
                let m = q.len();
                let base = format!("{}_bias", plan.output);
                let scales: Vec<f32> = w.scales.iter().map(|s| s * xs).collect();
                inits.push(i32_tensor(&format!("{base}_quantized"), &[m], &q));
                inits.push(f32_tensor(&format!("{base}_scale"), &[m], &scales));
                inits.push(i32_tensor(&format!("{base}_zero_point"), &[m], &vec![0; m]));
                nodes.push(node(
                    "DequantizeLinear",
                    vec![
                        format!("{base}_quantized"),
                        format!("{base}_scale"),
                        format!("{base}_zero_point"),
                    ],
                    format!("{base}_dequantized"),
                    vec![attr_int("axis", 0)],
                ));
                n.input[2] = format!("{base}_dequantized");
            }
        }
        // Quantized outputs: the producer writes `t_float`, Q/DQ restores `t`.
        let outs: Vec<String> = n.output.clone();
        let mut pairs = Vec::new();
        for (k, t) in outs.iter().enumerate() {
            if qt.contains_key(t) {
                let src = format!("{t}_float");
                n.output[k] = src.clone();
                pairs.push((t.clone(), src));
            }
        }
        nodes.push(n);
        for (t, src) in pairs {
            qdq(&mut nodes, &mut inits, &t, &src, &t);
        }
    }
    let mut out = model.clone();
    let g = out.graph.as_mut().expect("checked above");
    g.node = nodes;
    g.initializer = inits;
    prune_initializers(g);
    Ok(out)
}
