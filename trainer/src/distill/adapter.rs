//! Learned 1×1 adapters that map a narrower student's features to the
//! teacher's width (CrossKD issue #8: "a conv before the reused blocks also
//! works"). Training-only: they live beside the student, never inside it, so
//! they never reach a checkpoint's model section or the exported student.

use burn::nn::conv::Conv2d;
use burn::prelude::*;

use crate::model::layers::{conv2d, ConvInit};

/// One adapter per mapped feature; `None` where widths already agree (then,
/// exactly as in the paper, the feature is used as is).
#[derive(Module, Debug)]
pub struct Adapters<B: Backend> {
    /// Student cls-tower hold feature → teacher cls-tower width.
    pub cls: Option<Conv2d<B>>,
    /// Student reg-tower hold feature → teacher reg-tower width.
    pub reg: Option<Conv2d<B>>,
    /// Student FPN outputs → teacher FPN width (PKD); shared by all levels like the head.
    pub fpn: Option<Conv2d<B>>,
}

/// Channel counts an [`Adapters`] must bridge, `(student, teacher)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AdapterWidths {
    /// Hold features of the towers (cross-head path), if used.
    pub tower: Option<(usize, usize)>,
    /// FPN outputs (PKD), if used.
    pub fpn: Option<(usize, usize)>,
}

fn one_by_one<B: Backend>(widths: Option<(usize, usize)>, device: &B::Device) -> Option<Conv2d<B>> {
    // Xavier-uniform like the FPN's own 1×1 laterals; bias 0.
    widths
        .filter(|(s, t)| s != t)
        .map(|(s, t)| conv2d([s, t], 1, 1, 0, Some(0.0), ConvInit::XavierUniform, device))
}

impl<B: Backend> Adapters<B> {
    /// Adapters for every width pair that differs.
    ///
    /// ```
    /// use crosskd_trainer::distill::{Adapters, AdapterWidths};
    /// use crosskd_trainer::backend::Flex;
    /// let a = Adapters::<Flex>::new(AdapterWidths { tower: Some((64, 256)), fpn: Some((64, 64)) }, &Default::default());
    /// assert!(a.cls.is_some() && a.reg.is_some() && a.fpn.is_none());
    /// ```
    pub fn new(widths: AdapterWidths, device: &B::Device) -> Self {
        Self {
            cls: one_by_one(widths.tower, device),
            reg: one_by_one(widths.tower, device),
            fpn: one_by_one(widths.fpn, device),
        }
    }

    /// Whether any adapter exists.
    pub fn is_empty(&self) -> bool {
        self.cls.is_none() && self.reg.is_none() && self.fpn.is_none()
    }
}

/// Apply an optional adapter.
pub fn adapt<B: Backend>(adapter: &Option<Conv2d<B>>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    match adapter {
        Some(conv) => conv.forward(x),
        None => x,
    }
}
