//! A model's `metadata_props`: `crosskd.meta` holds the [`ModelMeta`](crate::ModelMeta)
//! JSON, `crosskd.precision` says `fp32` or `int8`, and further `crosskd.*`
//! keys repeat the same facts for people and other runtimes.
//!
//! ```
//! use crosskd_sdk::onnx::props::{get_prop, set_prop, PRECISION_KEY};
//! use tract_onnx::pb::ModelProto;
//! let mut model = ModelProto::default();
//! assert_eq!(get_prop(&model, PRECISION_KEY), None);
//! set_prop(&mut model, PRECISION_KEY, "fp32");
//! set_prop(&mut model, PRECISION_KEY, "int8");
//! assert_eq!(get_prop(&model, PRECISION_KEY), Some("int8"));
//! assert_eq!(model.metadata_props.len(), 1);
//! ```

use tract_onnx::pb::{ModelProto, StringStringEntryProto};

pub use crate::model::{META_KEY, PRECISION_KEY};

/// The value of `key` in a model's `metadata_props`.
pub fn get_prop<'a>(model: &'a ModelProto, key: &str) -> Option<&'a str> {
    model
        .metadata_props
        .iter()
        .find(|e| e.key == key)
        .map(|e| e.value.as_str())
}

/// Set (replace or append) `key` in a model's `metadata_props`.
pub fn set_prop(model: &mut ModelProto, key: &str, value: &str) {
    match model.metadata_props.iter_mut().find(|e| e.key == key) {
        Some(e) => e.value = value.to_string(),
        None => model.metadata_props.push(StringStringEntryProto {
            key: key.into(),
            value: value.into(),
        }),
    }
}
