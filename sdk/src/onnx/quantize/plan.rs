//! Which convolutions get quantized, which ReLUs fold into them, and which
//! tensors therefore need calibrated ranges — shared by the QOperator and QDQ
//! writers so both quantize exactly the same tensors.

use std::collections::{HashMap, HashSet};

use tract_onnx::pb::{GraphProto, ModelProto, TensorProto};

use super::QuantizeError;

/// The graph of `model`; an error when it has none.
pub fn model_graph(model: &ModelProto) -> Result<&GraphProto, QuantizeError> {
    model
        .graph
        .as_ref()
        .ok_or_else(|| QuantizeError::Graph("the model has no graph".into()))
}

/// Lookups over a graph.
pub struct GraphIndex<'a> {
    /// The graph.
    pub graph: &'a GraphProto,
    /// Initializers by name.
    pub inits: HashMap<&'a str, &'a TensorProto>,
    /// Node indices consuming each tensor.
    pub consumers: HashMap<&'a str, Vec<usize>>,
    /// Graph output names.
    pub outputs: HashSet<&'a str>,
}

impl<'a> GraphIndex<'a> {
    /// Index `graph`.
    pub fn new(graph: &'a GraphProto) -> Self {
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in graph.node.iter().enumerate() {
            for x in &n.input {
                consumers.entry(x.as_str()).or_default().push(i);
            }
        }
        Self {
            graph,
            inits: graph
                .initializer
                .iter()
                .map(|t| (t.name.as_str(), t))
                .collect(),
            consumers,
            outputs: graph.output.iter().map(|o| o.name.as_str()).collect(),
        }
    }

    fn consumers_of(&self, t: &str) -> &[usize] {
        self.consumers.get(t).map_or(&[], Vec::as_slice)
    }

    /// Whether `t` reaches a graph output through non-Conv nodes only (the head's
    /// final predictors: cls/bbox/centerness convs, maybe followed by Scale/Exp).
    pub fn feeds_output_directly(&self, t: &str) -> bool {
        let mut stack = vec![t.to_string()];
        let mut seen = HashSet::new();
        while let Some(t) = stack.pop() {
            if self.outputs.contains(t.as_str()) {
                return true;
            }
            if !seen.insert(t.clone()) {
                continue;
            }
            for &c in self.consumers_of(&t) {
                let n = &self.graph.node[c];
                if n.op_type != "Conv" {
                    stack.extend(n.output.iter().cloned());
                }
            }
        }
        false
    }
}

/// One Conv node and how it is quantized.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvPlan {
    /// Node index.
    pub node: usize,
    /// Activation input.
    pub input: String,
    /// Weight initializer.
    pub weight: String,
    /// Bias initializer.
    pub bias: Option<String>,
    /// The tensor the quantized conv produces: the ReLU's output when one is fused.
    pub output: String,
    /// Index of a ReLU folded into the output range (its floor is the int8 minimum).
    pub relu: Option<usize>,
    /// `false`: stays a float Conv (`--keep-float-outputs` predictors).
    pub quantize: bool,
}

/// Plan every Conv of `graph`.
pub fn plan_convs(
    idx: &GraphIndex<'_>,
    keep_float_outputs: bool,
) -> Result<Vec<ConvPlan>, QuantizeError> {
    let mut plans = Vec::new();
    for (i, n) in idx.graph.node.iter().enumerate() {
        if n.op_type != "Conv" {
            continue;
        }
        let bad = |why: &str| QuantizeError::Graph(format!("Conv node `{}`: {why}", n.name));
        let input = n.input.first().ok_or_else(|| bad("no input"))?.clone();
        let weight = n.input.get(1).ok_or_else(|| bad("no weight"))?.clone();
        if !idx.inits.contains_key(weight.as_str()) {
            return Err(bad("the weight is not a constant initializer"));
        }
        let bias = n.input.get(2).filter(|b| !b.is_empty()).cloned();
        if let Some(b) = &bias {
            if !idx.inits.contains_key(b.as_str()) {
                return Err(bad("the bias is not a constant initializer"));
            }
        }
        let out = n.output.first().ok_or_else(|| bad("no output"))?.clone();
        let cons = idx.consumers_of(&out);
        let relu = (cons.len() == 1
            && idx.graph.node[cons[0]].op_type == "Relu"
            && !idx.outputs.contains(out.as_str()))
        .then(|| cons[0]);
        let output = match relu {
            Some(r) => idx.graph.node[r].output[0].clone(),
            None => out.clone(),
        };
        let quantize = !(keep_float_outputs && idx.feeds_output_directly(&out));
        plans.push(ConvPlan {
            node: i,
            input,
            weight,
            bias,
            output,
            relu,
            quantize,
        });
    }
    if plans.is_empty() {
        return Err(QuantizeError::Graph(
            "the model has no Conv node to quantize".into(),
        ));
    }
    Ok(plans)
}

/// Tensors whose ranges calibration must measure: inputs and outputs of quantized convs.
pub fn calibration_tensors(plans: &[ConvPlan]) -> Vec<String> {
    let mut seen = HashSet::new();
    plans
        .iter()
        .filter(|p| p.quantize)
        .flat_map(|p| [p.input.clone(), p.output.clone()])
        .filter(|t| seen.insert(t.clone()))
        .collect()
}
