//! ResNet-18/34/50/101 in torchvision's layout (`conv1`, `bn1`, `layer1..4`,
//! blocks with `conv1..3`, `bn1..3`, `downsample`), with MMDetection's
//! detection options: `frozen_stages`, BN always in eval mode (`norm_eval`),
//! pytorch/caffe stride placement, and a width multiplier for compact students.

use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::max_pool2d;
use serde::{Deserialize, Serialize};

use crate::model::layers::{
    conv2d, conv_forward, ConvInit, EvalBatchNorm2d, EvalBatchNorm2dConfig,
};

/// Where the stride-2 of a bottleneck sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ResNetStyle {
    /// On the 3×3 conv (torchvision).
    #[default]
    Pytorch,
    /// On the first 1×1 conv (detectron / caffe weights).
    Caffe,
}

/// ResNet configuration (`[model.backbone]` in a TOML config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResNetConfig {
    /// 18, 34, 50 or 101.
    pub depth: usize,
    /// Channel multiplier for every stage (1.0 = torchvision).
    #[serde(default = "one")]
    pub width_mult: f32,
    /// Stages frozen (no gradient): -1 none, 0 stem, 1 stem + layer1, ...
    #[serde(default = "one_i32")]
    pub frozen_stages: i32,
    /// Stride placement in bottlenecks.
    #[serde(default)]
    pub style: ResNetStyle,
}

fn one() -> f32 {
    1.0
}

fn one_i32() -> i32 {
    1
}

/// Error building a backbone from an invalid configuration.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ResNetError {
    /// Unsupported depth.
    #[error("backbone.depth = {0} is not supported: use 18, 34, 50 or 101")]
    Depth(usize),
    /// Non-positive or absurd width multiplier.
    #[error("backbone.width_mult = {0} must be in (0, 4]")]
    Width(f32),
    /// Frozen stages out of range.
    #[error("backbone.frozen_stages = {0} must be in -1..=4")]
    Frozen(i32),
}

impl ResNetConfig {
    /// A torchvision-width ResNet of `depth` with stem + layer1 frozen (MMDet default).
    ///
    /// ```
    /// use crosskd_trainer::model::backbone::ResNetConfig;
    /// let cfg = ResNetConfig::new(18).with_width_mult(0.5);
    /// assert_eq!(cfg.stage_channels().unwrap(), [32, 64, 128, 256]);
    /// ```
    pub fn new(depth: usize) -> Self {
        Self {
            depth,
            width_mult: 1.0,
            frozen_stages: 1,
            style: ResNetStyle::Pytorch,
        }
    }

    /// Set the channel multiplier.
    pub fn with_width_mult(mut self, width_mult: f32) -> Self {
        self.width_mult = width_mult;
        self
    }

    /// Set the number of frozen stages.
    pub fn with_frozen_stages(mut self, frozen_stages: i32) -> Self {
        self.frozen_stages = frozen_stages;
        self
    }

    /// Blocks per stage and whether blocks are bottlenecks.
    pub fn layout(&self) -> Result<([usize; 4], bool), ResNetError> {
        match self.depth {
            18 => Ok(([2, 2, 2, 2], false)),
            34 => Ok(([3, 4, 6, 3], false)),
            50 => Ok(([3, 4, 6, 3], true)),
            101 => Ok(([3, 4, 23, 3], true)),
            d => Err(ResNetError::Depth(d)),
        }
    }

    fn scaled(&self, c: usize) -> usize {
        ((c as f32 * self.width_mult).round() as usize).max(8)
    }

    /// Output channels of C2..C5 (`layer1..layer4`).
    pub fn stage_channels(&self) -> Result<[usize; 4], ResNetError> {
        let (_, bottleneck) = self.layout()?;
        let exp = if bottleneck { 4 } else { 1 };
        Ok([64, 128, 256, 512].map(|p| self.scaled(p) * exp))
    }

    /// Check the configuration without building anything.
    pub fn validate(&self) -> Result<(), ResNetError> {
        self.layout()?;
        if !(self.width_mult > 0.0 && self.width_mult <= 4.0) {
            return Err(ResNetError::Width(self.width_mult));
        }
        if !(-1..=4).contains(&self.frozen_stages) {
            return Err(ResNetError::Frozen(self.frozen_stages));
        }
        Ok(())
    }

    /// Build the backbone (frozen stages already have their gradients disabled).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<ResNet<B>, ResNetError> {
        self.validate()?;
        let (blocks, bottleneck) = self.layout()?;
        let exp = if bottleneck { 4 } else { 1 };
        let stem = self.scaled(64);
        let mut in_c = stem;
        let mut layers: Vec<Vec<Block<B>>> = Vec::new();
        for (stage, &n) in blocks.iter().enumerate() {
            let planes = self.scaled([64, 128, 256, 512][stage]);
            let stride = if stage == 0 { 1 } else { 2 };
            let mut layer = Vec::with_capacity(n);
            for b in 0..n {
                let s = if b == 0 { stride } else { 1 };
                layer.push(Block::new(in_c, planes, s, bottleneck, self.style, device));
                in_c = planes * exp;
            }
            layers.push(layer);
        }
        let mut layers = layers.into_iter();
        let mut net = ResNet {
            conv1: conv2d(
                [3, stem],
                7,
                2,
                3,
                None,
                ConvInit::KaimingNormalFanOut,
                device,
            ),
            bn1: EvalBatchNorm2dConfig::new(stem).init(device),
            layer1: layers.next().unwrap_or_default(),
            layer2: layers.next().unwrap_or_default(),
            layer3: layers.next().unwrap_or_default(),
            layer4: layers.next().unwrap_or_default(),
        };
        net = net.freeze_stages(self.frozen_stages);
        Ok(net)
    }
}

/// 1×1 conv + BN shortcut (torchvision `downsample.0`, `downsample.1`).
#[derive(Module, Debug)]
pub struct Downsample<B: Backend> {
    /// 1×1 projection.
    pub conv: Conv2d<B>,
    /// Its BatchNorm.
    pub bn: EvalBatchNorm2d<B>,
}

/// A basic block (`conv3` absent) or a bottleneck block.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    /// First conv (3×3 basic, 1×1 bottleneck).
    pub conv1: Conv2d<B>,
    /// BN after conv1.
    pub bn1: EvalBatchNorm2d<B>,
    /// Second conv (3×3).
    pub conv2: Conv2d<B>,
    /// BN after conv2.
    pub bn2: EvalBatchNorm2d<B>,
    /// Third conv (bottleneck 1×1 expansion).
    pub conv3: Option<Conv2d<B>>,
    /// BN after conv3.
    pub bn3: Option<EvalBatchNorm2d<B>>,
    /// Projection shortcut when shape changes.
    pub downsample: Option<Downsample<B>>,
}

impl<B: Backend> Block<B> {
    fn new(
        in_c: usize,
        planes: usize,
        stride: usize,
        bottleneck: bool,
        style: ResNetStyle,
        device: &B::Device,
    ) -> Self {
        let init = ConvInit::KaimingNormalFanOut;
        let bn = |c: usize| EvalBatchNorm2dConfig::new(c).init(device);
        let exp = if bottleneck { 4 } else { 1 };
        let out_c = planes * exp;
        let downsample = (stride != 1 || in_c != out_c).then(|| Downsample {
            conv: conv2d([in_c, out_c], 1, stride, 0, None, init, device),
            bn: bn(out_c),
        });
        if bottleneck {
            let (s1, s2) = match style {
                ResNetStyle::Pytorch => (1, stride),
                ResNetStyle::Caffe => (stride, 1),
            };
            Block {
                conv1: conv2d([in_c, planes], 1, s1, 0, None, init, device),
                bn1: bn(planes),
                conv2: conv2d([planes, planes], 3, s2, 1, None, init, device),
                bn2: bn(planes),
                conv3: Some(conv2d([planes, out_c], 1, 1, 0, None, init, device)),
                bn3: Some(bn(out_c)),
                downsample,
            }
        } else {
            Block {
                conv1: conv2d([in_c, planes], 3, stride, 1, None, init, device),
                bn1: bn(planes),
                conv2: conv2d([planes, planes], 3, 1, 1, None, init, device),
                bn2: bn(planes),
                conv3: None,
                bn3: None,
                downsample,
            }
        }
    }

    /// Residual block forward.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let identity = match &self.downsample {
            Some(ds) => ds.bn.forward(conv_forward(&ds.conv, x.clone())),
            None => x.clone(),
        };
        // conv_forward: caffe-style bottlenecks put the stride on the 1×1 conv1.
        let mut y = relu(self.bn1.forward(conv_forward(&self.conv1, x)));
        y = self.bn2.forward(self.conv2.forward(y));
        if let (Some(conv3), Some(bn3)) = (&self.conv3, &self.bn3) {
            y = bn3.forward(conv3.forward(relu(y)));
        }
        relu(y + identity)
    }
}

/// ResNet trunk returning C3, C4, C5 (strides 8, 16, 32).
#[derive(Module, Debug)]
pub struct ResNet<B: Backend> {
    /// Stem 7×7 stride-2 conv.
    pub conv1: Conv2d<B>,
    /// Stem BN.
    pub bn1: EvalBatchNorm2d<B>,
    /// Stage C2 (stride 4).
    pub layer1: Vec<Block<B>>,
    /// Stage C3 (stride 8).
    pub layer2: Vec<Block<B>>,
    /// Stage C4 (stride 16).
    pub layer3: Vec<Block<B>>,
    /// Stage C5 (stride 32).
    pub layer4: Vec<Block<B>>,
}

fn run<B: Backend>(blocks: &[Block<B>], mut x: Tensor<B, 4>) -> Tensor<B, 4> {
    for b in blocks {
        x = b.forward(x);
    }
    x
}

impl<B: Backend> ResNet<B> {
    /// Disable gradients of the stem (stage 0) and `layer1..=layer{n}`, as MMDet's `frozen_stages`.
    pub fn freeze_stages(mut self, frozen_stages: i32) -> Self {
        if frozen_stages >= 0 {
            self.conv1 = self.conv1.no_grad();
            self.bn1 = self.bn1.no_grad();
        }
        let freeze = |layer: Vec<Block<B>>, stage: i32| {
            if frozen_stages >= stage {
                layer.into_iter().map(|b| b.no_grad()).collect()
            } else {
                layer
            }
        };
        self.layer1 = freeze(self.layer1, 1);
        self.layer2 = freeze(self.layer2, 2);
        self.layer3 = freeze(self.layer3, 3);
        self.layer4 = freeze(self.layer4, 4);
        self
    }

    /// `[C3, C4, C5]` for an `[N, 3, H, W]` batch.
    pub fn forward(&self, x: Tensor<B, 4>) -> Vec<Tensor<B, 4>> {
        let x = relu(self.bn1.forward(self.conv1.forward(x)));
        let x = max_pool2d(x, [3, 3], [2, 2], [1, 1], [1, 1], false);
        let c2 = run(&self.layer1, x);
        let c3 = run(&self.layer2, c2);
        let c4 = run(&self.layer3, c3.clone());
        let c5 = run(&self.layer4, c4.clone());
        vec![c3, c4, c5]
    }
}
