//! Building and reading `tract_onnx::pb` tensors, attributes and value infos:
//! what the exporter's graph builder, the quantizer and the runner share.
//!
//! ```
//! use crosskd_sdk::onnx::tensor::{attr_int, f32_tensor, tensor_f32};
//! let t = f32_tensor("w", &[2], &[1.5, -2.0]);
//! assert_eq!(tensor_f32(&t).unwrap(), vec![1.5, -2.0]);
//! assert_eq!(attr_int("axis", 0).i, 0);
//! ```

use tract_onnx::pb::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, TensorProto, ValueInfoProto,
};

use super::OnnxError;

/// Integer attribute.
pub fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

/// A named tensor of element type `dtype` holding `raw` little-endian bytes.
pub fn raw_tensor(name: &str, dims: &[usize], dtype: DataType, raw: Vec<u8>) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: dtype as i32,
        raw_data: raw,
        ..Default::default()
    }
}

/// A float tensor (values stored as `raw_data`).
pub fn f32_tensor(name: &str, dims: &[usize], data: &[f32]) -> TensorProto {
    raw_tensor(
        name,
        dims,
        DataType::Float,
        data.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )
}

/// The values of a float tensor, stored in `float_data` or `raw_data`.
///
/// Errors name the tensor: another element type, data kept in an external
/// file, or a value count that does not match the dims.
pub fn tensor_f32(t: &TensorProto) -> Result<Vec<f32>, OnnxError> {
    let bad = |why: String| OnnxError::Graph(format!("tensor `{}`: {why}", t.name));
    if t.data_type != DataType::Float as i32 {
        let name = DataType::try_from(t.data_type).map_or("unknown", |d| d.as_str_name());
        return Err(bad(format!(
            "element type {name} ({}), expected FLOAT",
            t.data_type
        )));
    }
    if !t.external_data.is_empty() {
        return Err(bad(
            "its data is stored in an external file, which is not supported".into(),
        ));
    }
    let values: Vec<f32> = if !t.float_data.is_empty() {
        t.float_data.clone()
    } else {
        if t.raw_data.len() % 4 != 0 {
            return Err(bad(format!(
                "raw_data has {} bytes, not a whole number of f32",
                t.raw_data.len()
            )));
        }
        t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    let expected = t
        .dims
        .iter()
        .try_fold(1usize, |n, &d| usize::try_from(d).ok().map(|d| n * d))
        .ok_or_else(|| bad(format!("negative dims {:?}", t.dims)))?;
    if values.len() != expected {
        return Err(bad(format!(
            "{} values for dims {:?} ({expected} expected)",
            values.len(),
            t.dims
        )));
    }
    Ok(values)
}

/// The static dims of a tensor value info (`None` when a dim is symbolic or absent).
pub fn value_info_shape(v: &ValueInfoProto) -> Option<Vec<usize>> {
    let type_proto::Value::TensorType(t) = v.r#type.as_ref()?.value.as_ref()?;
    t.shape
        .as_ref()?
        .dim
        .iter()
        .map(|d| match d.value {
            Some(tensor_shape_proto::dimension::Value::DimValue(v)) if v >= 0 => Some(v as usize),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_raw_and_float_data() {
        let t = f32_tensor("a", &[2], &[1.5, -2.0]);
        assert_eq!(tensor_f32(&t).unwrap(), vec![1.5, -2.0]);
        let t = TensorProto {
            name: "b".into(),
            dims: vec![1, 3],
            data_type: DataType::Float as i32,
            float_data: vec![0.25, 4.0, -1.0],
            ..Default::default()
        };
        assert_eq!(tensor_f32(&t).unwrap(), vec![0.25, 4.0, -1.0]);
        // A scalar has no dims and one value.
        assert_eq!(
            tensor_f32(&f32_tensor("s", &[], &[3.0])).unwrap(),
            vec![3.0]
        );
    }

    #[test]
    fn bad_tensors_are_named_errors() {
        let t = raw_tensor("q", &[2], DataType::Int8, vec![1, 2]);
        let err = tensor_f32(&t).unwrap_err().to_string();
        assert!(err.contains("`q`") && err.contains("INT8"), "{err}");
        let mut t = f32_tensor("w", &[3], &[1.0, 2.0]);
        let err = tensor_f32(&t).unwrap_err().to_string();
        assert!(err.contains("`w`") && err.contains("2 values"), "{err}");
        t.raw_data.push(0);
        let err = tensor_f32(&t).unwrap_err().to_string();
        assert!(err.contains("9 bytes"), "{err}");
    }
}
