//! A stack of `ConvModule`s (a head's cls or reg tower) that can be run whole,
//! traced layer by layer, or resumed from layer `k` — the hooks CrossKD needs.

use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::nn::layers::{ConvModule, ConvModuleConfig};

/// `stacked_convs` ConvModules of equal width.
#[derive(Module, Debug)]
pub struct Tower<B: Backend> {
    /// The conv modules, input side first.
    pub convs: Vec<ConvModule<B>>,
}

impl<B: Backend> Tower<B> {
    /// A tower of `depth` 3×3 ConvModules, `in_channels → channels → … → channels`.
    pub fn new(
        depth: usize,
        in_channels: usize,
        channels: usize,
        gn_groups: Option<usize>,
        device: &B::Device,
    ) -> Self {
        let convs = (0..depth)
            .map(|i| {
                let cin = if i == 0 { in_channels } else { channels };
                ConvModuleConfig::new(cin, channels)
                    .with_gn_groups(gn_groups)
                    .init(device)
            })
            .collect();
        Self { convs }
    }

    /// Run the whole tower.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_from(x, 0)
    }

    /// Run convs `k..` on `x`, which must be what conv `k` normally receives
    /// (the FPN feature for `k = 0`, else a post-ReLU feature).
    pub fn forward_from(&self, mut x: Tensor<B, 4>, k: usize) -> Tensor<B, 4> {
        for conv in self.convs.iter().skip(k) {
            x = conv.forward(x);
        }
        x
    }

    /// Run the tower and return `(output, pre_activations)` where
    /// `pre_activations[i]` is conv `i+1`'s output after its norm, before its ReLU.
    pub fn forward_traced(&self, mut x: Tensor<B, 4>) -> (Tensor<B, 4>, Vec<Tensor<B, 4>>) {
        let mut trace = Vec::with_capacity(self.convs.len());
        for conv in &self.convs {
            let pre = conv.forward_pre_act(x);
            trace.push(pre.clone());
            x = relu(pre);
        }
        (x, trace)
    }
}
