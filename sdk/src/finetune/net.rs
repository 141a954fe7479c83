//! The trainable part of a deployed student — FPN (unless frozen) and head —
//! rebuilt in burn from the configs the exporter stored in the ONNX metadata.

use burn::prelude::*;

use super::FinetuneError;
use crate::metadata::{HEAD_CONFIG_KEY, NECK_CONFIG_KEY};
use crate::nn::heads::{DenseHead, LevelOutput};
use crate::nn::neck::{Fpn, FpnConfig};
use crate::nn::{Head, HeadConfig};

/// FPN (absent when frozen) + dense head.
#[derive(Module, Debug)]
pub struct TrainNet<B: Backend> {
    /// The FPN when it is trained too; `None` when its outputs are frozen features.
    pub neck: Option<Fpn<B>>,
    /// The dense head.
    pub head: Head<B>,
}

impl<B: Backend> TrainNet<B> {
    /// Head outputs per level from the frozen features (C3–C5 with a trainable
    /// neck, P3–P7 without).
    pub fn forward(&self, feats: Vec<Tensor<B, 4>>) -> Vec<LevelOutput<B>> {
        let feats = match &self.neck {
            Some(neck) => neck.forward(feats),
            None => feats,
        };
        self.head.forward(&feats)
    }
}

/// The head and neck configs of an exported model.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConfigs {
    /// `[model.head]` as trained.
    pub head: HeadConfig,
    /// `[model.neck]` with the real input channels.
    pub neck: FpnConfig,
}

impl NetConfigs {
    /// Parse both from the model's metadata properties (`get` looks a key up).
    pub fn from_props<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Self, FinetuneError> {
        fn parse<T: serde::de::DeserializeOwned>(
            key: &str,
            value: Option<&str>,
        ) -> Result<T, FinetuneError> {
            let text = value.ok_or_else(|| {
                FinetuneError::Model(format!(
                    "metadata `{key}` is missing: the model was exported before on-device \
                     fine-tuning existed; re-export it with `crosskd export`"
                ))
            })?;
            serde_json::from_str(text)
                .map_err(|e| FinetuneError::Model(format!("metadata `{key}`: {e}")))
        }
        let head: HeadConfig = parse(HEAD_CONFIG_KEY, get(HEAD_CONFIG_KEY))?;
        let neck: FpnConfig = parse(NECK_CONFIG_KEY, get(NECK_CONFIG_KEY))?;
        if neck.in_channels.is_empty() || neck.num_outs < neck.in_channels.len() {
            return Err(FinetuneError::Model(format!(
                "metadata `{NECK_CONFIG_KEY}`: {} input levels for {} outputs",
                neck.in_channels.len(),
                neck.num_outs
            )));
        }
        Ok(Self { head, neck })
    }

    /// Level strides: 8, 16, … (C3 at stride 8, one level per FPN output).
    pub fn strides(&self) -> Vec<f32> {
        (0..self.neck.num_outs)
            .map(|l| (8u32 << l) as f32)
            .collect()
    }

    /// A freshly initialised net (weights are then loaded from the ONNX file).
    pub fn init<B: Backend>(&self, train_neck: bool, device: &B::Device) -> TrainNet<B> {
        TrainNet {
            neck: train_neck.then(|| self.neck.init(device)),
            head: self.head.init(&self.strides(), device),
        }
    }
}
