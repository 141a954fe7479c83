//! A small builder over tract-onnx's protobuf types (`tract_onnx::pb`): named
//! initializers, nodes with attributes, graph inputs/outputs with static shapes,
//! and the final `ModelProto`.
//!
//! The exporter knows every activation shape statically (batch 1, fixed input
//! size), so the builder records them: graph outputs get full shapes and the
//! GroupNorm reshapes use constant target shapes.
//!
//! ```
//! use crosskd_trainer::export::graph::{attr_ints, GraphBuilder};
//! let mut g = GraphBuilder::new();
//! g.input("x", &[1, 1, 2, 2]);
//! let w = g.init_f32("w", &[1, 1, 1, 1], vec![2.0]);
//! g.node("Conv", &["x", &w], &["y"], vec![attr_ints("kernel_shape", &[1, 1])]);
//! g.set_shape("y", &[1, 1, 2, 2]);
//! g.output("y");
//! let model = g.finish(13, "doc", vec![]);
//! assert_eq!(model.graph.unwrap().node[0].op_type, "Conv");
//! ```

use std::collections::HashMap;

pub use crosskd_sdk::onnx::tensor::{
    attr_int, f32_tensor, raw_tensor, tensor_f32, value_info_shape,
};
use tract_onnx::pb::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

/// ONNX IR version written (ONNX 1.8+ readers, opset 13..=21).
pub const IR_VERSION: i64 = 8;

/// Float attribute.
pub fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Float as i32,
        f: v,
        ..Default::default()
    }
}

/// Integer-list attribute.
pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// String attribute.
pub fn attr_string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// A value info of a float tensor with a fully static shape.
pub fn f32_value_info(name: &str, shape: &[usize]) -> ValueInfoProto {
    let dim = shape
        .iter()
        .map(|&d| tensor_shape_proto::Dimension {
            value: Some(tensor_shape_proto::dimension::Value::DimValue(d as i64)),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Accumulates nodes, initializers and graph inputs/outputs.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    shapes: HashMap<String, Vec<usize>>,
    used: HashMap<String, usize>,
}

impl GraphBuilder {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// A name not used before, derived from `base` (`base`, `base_1`, …).
    pub fn fresh(&mut self, base: &str) -> String {
        let n = self.used.entry(base.to_string()).or_insert(0);
        *n += 1;
        if *n == 1 {
            base.to_string()
        } else {
            format!("{base}_{}", *n - 1)
        }
    }

    /// Declare a float graph input.
    pub fn input(&mut self, name: &str, shape: &[usize]) {
        self.inputs.push(f32_value_info(name, shape));
        self.set_shape(name, shape);
    }

    /// Declare `name` (whose shape was recorded) a graph output.
    ///
    /// # Panics
    /// If no shape was recorded for `name` (a bug in the caller, not bad input).
    pub fn output(&mut self, name: &str) {
        let shape = self
            .shapes
            .get(name)
            .expect("output shape recorded")
            .clone();
        self.outputs.push(f32_value_info(name, &shape));
    }

    /// Record the static shape of an activation.
    pub fn set_shape(&mut self, name: &str, shape: &[usize]) {
        self.shapes.insert(name.to_string(), shape.to_vec());
    }

    /// The recorded shape of an activation.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.shapes.get(name).map(Vec::as_slice)
    }

    /// Add a float initializer under a fresh name derived from `name`; returns the name.
    pub fn init_f32(&mut self, name: &str, dims: &[usize], data: Vec<f32>) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len(), "{name}");
        let name = self.fresh(name);
        self.initializers.push(f32_tensor(&name, dims, &data));
        name
    }

    /// Add an int64 initializer (shapes, axes); returns its name.
    pub fn init_i64(&mut self, name: &str, dims: &[usize], data: &[i64]) -> String {
        let name = self.fresh(name);
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializers
            .push(raw_tensor(&name, dims, DataType::Int64, raw));
        name
    }

    /// Add an already built initializer (its name must be fresh).
    pub fn init_tensor(&mut self, t: TensorProto) {
        self.used.entry(t.name.clone()).or_insert(1);
        self.initializers.push(t);
    }

    /// Append a node named after its first output.
    pub fn node(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        outputs: &[&str],
        attribute: Vec<AttributeProto>,
    ) {
        for o in outputs {
            self.used.entry(o.to_string()).or_insert(1);
        }
        self.nodes.push(NodeProto {
            name: format!("{}:{}", op_type, outputs.first().copied().unwrap_or("")),
            op_type: op_type.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute,
            ..Default::default()
        });
    }

    /// Assemble the model: default-domain opset `opset`, `metadata_props` entries.
    pub fn finish(self, opset: i64, doc: &str, metadata: Vec<(String, String)>) -> ModelProto {
        ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: opset,
            }],
            producer_name: "crosskd".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: doc.into(),
            graph: Some(GraphProto {
                node: self.nodes,
                name: "crosskd".into(),
                initializer: self.initializers,
                input: self.inputs,
                output: self.outputs,
                ..Default::default()
            }),
            metadata_props: metadata
                .into_iter()
                .map(|(key, value)| StringStringEntryProto { key, value })
                .collect(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_names_never_repeat() {
        let mut g = GraphBuilder::new();
        assert_eq!(g.fresh("w"), "w");
        assert_eq!(g.fresh("w"), "w_1");
        g.node("Relu", &["x"], &["y"], vec![]);
        assert_eq!(g.fresh("y"), "y_1");
    }

    #[test]
    fn value_infos_round_trip() {
        let v = f32_value_info("x", &[1, 3, 4, 5]);
        assert_eq!(value_info_shape(&v).unwrap(), vec![1, 3, 4, 5]);
    }
}
