//! The head of a detector: one of the four dense heads, chosen by config.

use crate::HeadKind;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::head_loss::{
    atss::{atss_loss, atss_targets},
    fcos::{fcos_loss, fcos_targets_batch},
    gfl::{gfl_loss, gfl_targets},
    retinanet::{retinanet_loss, retinanet_targets},
    HeadTargets,
};
use super::heads::{
    AtssHead, AtssHeadConfig, DenseHead, FcosHead, FcosHeadConfig, GflHead, GflHeadConfig,
    LevelOutput, RetinaHead, RetinaHeadConfig, Tower,
};
use super::image_meta::ImageMeta;
use super::loss_dict::LossDict;

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

    /// This head's GT assignment for `outputs` (priors from their level shapes and
    /// `strides`): the step shared by the GT losses and the KD losses that reuse it.
    pub fn targets<B: Backend>(
        &self,
        strides: &[f32],
        outputs: &[LevelOutput<B>],
        metas: &[ImageMeta],
    ) -> HeadTargets {
        match self {
            HeadConfig::Gfl(c) => HeadTargets::Anchors(gfl_targets(c, strides, outputs, metas)),
            HeadConfig::Retinanet(c) => {
                HeadTargets::Anchors(retinanet_targets(c, strides, outputs, metas))
            }
            HeadConfig::Fcos(c) => {
                HeadTargets::Points(fcos_targets_batch(c, strides, outputs, metas))
            }
            HeadConfig::Atss(c) => HeadTargets::Anchors(atss_targets(c, strides, outputs, metas)),
        }
    }

    /// The named GT loss components for `outputs` given their assignment.
    ///
    /// # Panics
    /// If `targets` come from another head family (anchor targets for FCOS or
    /// point targets for an anchor head): [`HeadConfig::targets`] of the same
    /// config never produces that.
    pub fn loss_from_targets<B: Backend>(
        &self,
        outputs: &[LevelOutput<B>],
        targets: &HeadTargets,
    ) -> LossDict<B> {
        match (self, targets) {
            (HeadConfig::Gfl(c), HeadTargets::Anchors(t)) => gfl_loss(c, outputs, t),
            (HeadConfig::Retinanet(c), HeadTargets::Anchors(t)) => retinanet_loss(c, outputs, t),
            (HeadConfig::Fcos(c), HeadTargets::Points(t)) => fcos_loss(c, outputs, t),
            (HeadConfig::Atss(c), HeadTargets::Anchors(t)) => atss_loss(c, outputs, t),
            _ => panic!("targets of another head family"),
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
