//! The head of a detector: one of the four dense heads, chosen by config.

use burn::prelude::*;
use crosskd_sdk::HeadKind;
use serde::{Deserialize, Serialize};

use super::heads::{
    AtssHead, AtssHeadConfig, DenseHead, FcosHead, FcosHeadConfig, GflHead, GflHeadConfig,
    LevelOutput, RetinaHead, RetinaHeadConfig, Tower,
};

/// `[model.head]`: `type = "gfl" | "retinanet" | "fcos" | "atss"` plus that head's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum HeadConfig {
    /// Generalized Focal Loss head.
    Gfl(GflHeadConfig),
    /// RetinaNet head.
    Retinanet(RetinaHeadConfig),
    /// FCOS head.
    Fcos(FcosHeadConfig),
    /// ATSS head.
    Atss(AtssHeadConfig),
}

impl HeadConfig {
    /// The head family.
    pub fn kind(&self) -> HeadKind {
        match self {
            HeadConfig::Gfl(_) => HeadKind::Gfl,
            HeadConfig::Retinanet(_) => HeadKind::RetinaNet,
            HeadConfig::Fcos(_) => HeadKind::Fcos,
            HeadConfig::Atss(_) => HeadKind::Atss,
        }
    }

    /// `(num_classes, in_channels, feat_channels, stacked_convs, gn_groups)`.
    pub fn dims(&self) -> (usize, usize, usize, usize, Option<usize>) {
        match self {
            HeadConfig::Gfl(c) => (
                c.num_classes,
                c.in_channels,
                c.feat_channels,
                c.stacked_convs,
                Some(c.gn_groups),
            ),
            HeadConfig::Retinanet(c) => (
                c.num_classes,
                c.in_channels,
                c.feat_channels,
                c.stacked_convs,
                None,
            ),
            HeadConfig::Fcos(c) => (
                c.num_classes,
                c.in_channels,
                c.feat_channels,
                c.stacked_convs,
                Some(c.gn_groups),
            ),
            HeadConfig::Atss(c) => (
                c.num_classes,
                c.in_channels,
                c.feat_channels,
                c.stacked_convs,
                Some(c.gn_groups),
            ),
        }
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.dims().0
    }

    /// Build the head for the given level strides.
    pub fn init<B: Backend>(&self, strides: &[f32], device: &B::Device) -> Head<B> {
        match self {
            HeadConfig::Gfl(c) => Head::Gfl(c.init(strides.len(), device)),
            HeadConfig::Retinanet(c) => Head::RetinaNet(c.init(device)),
            HeadConfig::Fcos(c) => Head::Fcos(c.init(strides, device)),
            HeadConfig::Atss(c) => Head::Atss(c.init(strides.len(), device)),
        }
    }
}

/// One of the four dense heads.
#[derive(Module, Debug)]
pub enum Head<B: Backend> {
    /// GFL.
    Gfl(GflHead<B>),
    /// RetinaNet.
    RetinaNet(RetinaHead<B>),
    /// FCOS.
    Fcos(FcosHead<B>),
    /// ATSS.
    Atss(AtssHead<B>),
}

impl<B: Backend> DenseHead<B> for Head<B> {
    fn towers(&self) -> (&Tower<B>, &Tower<B>) {
        match self {
            Head::Gfl(h) => h.towers(),
            Head::RetinaNet(h) => h.towers(),
            Head::Fcos(h) => h.towers(),
            Head::Atss(h) => h.towers(),
        }
    }

    fn predict_level(
        &self,
        cls_feat: Tensor<B, 4>,
        reg_feat: Tensor<B, 4>,
        level: usize,
    ) -> LevelOutput<B> {
        match self {
            Head::Gfl(h) => h.predict_level(cls_feat, reg_feat, level),
            Head::RetinaNet(h) => h.predict_level(cls_feat, reg_feat, level),
            Head::Fcos(h) => h.predict_level(cls_feat, reg_feat, level),
            Head::Atss(h) => h.predict_level(cls_feat, reg_feat, level),
        }
    }
}
