//! Backbones: multi-level feature extractors.

pub mod resnet;
pub mod weights;

pub use resnet::{ResNet, ResNetConfig, ResNetStyle};
