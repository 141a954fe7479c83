//! Backbones: multi-level feature extractors.

pub mod resnet;

pub use resnet::{ResNet, ResNetConfig, ResNetStyle};
