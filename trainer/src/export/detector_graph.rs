//! Walks a [`Detector`] and emits its inference graph: ResNet (BN folded) →
//! FPN (nearest ×2 upsampling as `Resize` by scales) → dense head (GroupNorm as
//! Reshape → InstanceNormalization → Reshape → Mul → Add), with the raw head
//! outputs of every level as graph outputs.
//!
//! The graph computes exactly what `Detector::forward` returns per level, batch 1:
//! `cls_score_{l}`, `bbox_pred_{l}` (after the head's Scale, and FCOS's
//! `exp`/`relu·stride`), `centerness_{l}` for FCOS/ATSS. Head weights are shared
//! by the levels, so each head conv's initializers are written once.

use burn::nn::conv::Conv2d;
use burn::nn::GroupNorm;
use burn::prelude::*;

use super::bn_fold::{host, ConvParams};
use super::graph::{attr_float, attr_int, attr_ints, attr_string, GraphBuilder};
use super::ExportError;
use crate::model::backbone::resnet::Block;
use crate::model::detector::Detector;
use crate::model::head::Head;
use crate::model::heads::{DenseHead, Tower};
use crate::model::layers::{ConvModule, Scale};

/// A tower conv's registered weights and its optional GroupNorm.
type TowerLayerRef<B> = (ConvRef, Option<GroupNorm<B>>);

/// Name of the graph input.
pub const INPUT_NAME: &str = "images";

/// Output names of level `l`: `(cls_score_l, bbox_pred_l, centerness_l)`.
pub fn output_names(l: usize) -> [String; 3] {
    [
        format!("cls_score_{l}"),
        format!("bbox_pred_{l}"),
        format!("centerness_{l}"),
    ]
}

/// A conv whose initializers are in the graph, applicable to any input.
struct ConvRef {
    weight: String,
    bias: Option<String>,
    params: ConvParams,
}

/// Emits ops into a [`GraphBuilder`], tracking static shapes.
struct Emitter {
    g: GraphBuilder,
}

impl Emitter {
    fn shape4(&self, x: &str) -> [usize; 4] {
        let s = self.g.shape(x).expect("every emitted tensor has a shape");
        [s[0], s[1], s[2], s[3]]
    }

    /// Register a conv's (already folded) parameters under `name.weight` / `name.bias`.
    fn conv_ref(&mut self, name: &str, params: ConvParams) -> ConvRef {
        let weight = self.g.init_f32(
            &format!("{name}.weight"),
            &params.dims,
            params.weight.clone(),
        );
        let bias = params.bias.clone().map(|b| {
            self.g
                .init_f32(&format!("{name}.bias"), &[params.dims[0]], b)
        });
        ConvRef {
            weight,
            bias,
            params,
        }
    }

    fn apply(&mut self, x: &str, c: &ConvRef, out: &str) -> Result<String, ExportError> {
        let [n, cin, h, w] = self.shape4(x);
        if cin != c.params.dims[1] {
            return Err(ExportError::Unsupported {
                layer: out.to_string(),
                why: format!(
                    "input has {cin} channels, weight expects {}",
                    c.params.dims[1]
                ),
            });
        }
        let (oh, ow) = c.params.out_hw(h, w);
        let p = &c.params;
        let mut inputs = vec![x, c.weight.as_str()];
        if let Some(b) = &c.bias {
            inputs.push(b);
        }
        let out = self.g.fresh(out);
        self.g.node(
            "Conv",
            &inputs,
            &[&out],
            vec![
                attr_ints("kernel_shape", &[p.dims[2] as i64, p.dims[3] as i64]),
                attr_ints("strides", &[p.stride[0] as i64, p.stride[1] as i64]),
                attr_ints(
                    "pads",
                    &[
                        p.padding[0] as i64,
                        p.padding[1] as i64,
                        p.padding[0] as i64,
                        p.padding[1] as i64,
                    ],
                ),
                attr_ints("dilations", &[1, 1]),
                attr_int("group", 1),
            ],
        );
        self.g.set_shape(&out, &[n, p.dims[0], oh, ow]);
        Ok(out)
    }

    /// Conv (+ folded BN) applied once.
    fn conv(&mut self, x: &str, params: ConvParams, name: &str) -> Result<String, ExportError> {
        let c = self.conv_ref(name, params);
        self.apply(x, &c, name)
    }

    fn unary(&mut self, op: &str, x: &str, out: &str) -> String {
        let shape = self.shape4(x);
        let out = self.g.fresh(out);
        self.g.node(op, &[x], &[&out], vec![]);
        self.g.set_shape(&out, &shape);
        out
    }

    fn binary(&mut self, op: &str, a: &str, b: &str, out: &str) -> String {
        let shape = self.shape4(a);
        let out = self.g.fresh(out);
        self.g.node(op, &[a, b], &[&out], vec![]);
        self.g.set_shape(&out, &shape);
        out
    }

    fn relu(&mut self, x: &str, out: &str) -> String {
        self.unary("Relu", x, out)
    }

    fn mul_scalar(&mut self, x: &str, s: f32, name: &str, out: &str) -> String {
        let c = self.g.init_f32(name, &[], vec![s]);
        self.binary("Mul", x, &c, out)
    }

    /// 3×3 stride-2 pad-1 max pooling (the ResNet stem).
    fn max_pool(&mut self, x: &str, out: &str) -> String {
        let [n, c, h, w] = self.shape4(x);
        let out = self.g.fresh(out);
        self.g.node(
            "MaxPool",
            &[x],
            &[&out],
            vec![
                attr_ints("kernel_shape", &[3, 3]),
                attr_ints("strides", &[2, 2]),
                attr_ints("pads", &[1, 1, 1, 1]),
            ],
        );
        self.g
            .set_shape(&out, &[n, c, (h + 2 - 3) / 2 + 1, (w + 2 - 3) / 2 + 1]);
        out
    }

    /// Nearest ×2 upsampling as `Resize` by constant scales (tract lowers it to a
    /// fast upsample kernel; a `sizes` Resize stays generic and ~50× slower).
    /// `asymmetric` + `floor` is PyTorch's/burn's nearest rule `src = floor(dst / 2)`.
    fn upsample2x(
        &mut self,
        x: &str,
        target: [usize; 2],
        out: &str,
    ) -> Result<String, ExportError> {
        let [n, c, h, w] = self.shape4(x);
        if [2 * h, 2 * w] != target {
            return Err(ExportError::Unsupported {
                layer: out.to_string(),
                why: format!(
                    "FPN level {h}x{w} must upsample exactly ×2 to {}x{}; use an input size that is a multiple of 32",
                    target[0], target[1]
                ),
            });
        }
        let scales = self
            .g
            .init_f32(&format!("{out}.scales"), &[4], vec![1.0, 1.0, 2.0, 2.0]);
        let out = self.g.fresh(out);
        self.g.node(
            "Resize",
            &[x, "", &scales],
            &[&out],
            vec![
                attr_string("mode", "nearest"),
                attr_string("coordinate_transformation_mode", "asymmetric"),
                attr_string("nearest_mode", "floor"),
            ],
        );
        self.g.set_shape(&out, &[n, c, 2 * h, 2 * w]);
        Ok(out)
    }

    /// GroupNorm as Reshape `[N, G, -1]` → InstanceNormalization → Reshape back →
    /// per-channel Mul/Add: standard opset-13 ops, the form PyTorch exports and
    /// tract fuses (GroupNormalization itself needs opset 18).
    fn group_norm<B: Backend>(
        &mut self,
        x: &str,
        gn: &GroupNorm<B>,
        name: &str,
    ) -> Result<String, ExportError> {
        let [n, c, h, w] = self.shape4(x);
        let g = gn.num_groups;
        if c != gn.num_channels || g == 0 || c % g != 0 {
            return Err(ExportError::Unsupported {
                layer: name.to_string(),
                why: format!(
                    "GroupNorm of {} channels in {g} groups on a {c}-channel input",
                    gn.num_channels
                ),
            });
        }
        // Shape-agnostic targets (`0` copies N, `-1` takes the rest, the way back is
        // the input's own `Shape`): the SDK can re-type the model to another input
        // size (a board config's `input_size`) without a re-export.
        let grouped = self
            .g
            .init_i64(&format!("{name}.grouped_shape"), &[3], &[0, g as i64, -1]);
        let back = self.g.fresh(&format!("{name}.shape"));
        self.g.node("Shape", &[x], &[&back], vec![]);
        let ones = self
            .g
            .init_f32(&format!("{name}.in_scale"), &[g], vec![1.0; g]);
        let zeros = self
            .g
            .init_f32(&format!("{name}.in_bias"), &[g], vec![0.0; g]);
        let r1 = self.g.fresh(&format!("{name}.grouped"));
        self.g.node("Reshape", &[x, &grouped], &[&r1], vec![]);
        let normed = self.g.fresh(&format!("{name}.normed"));
        self.g.node(
            "InstanceNormalization",
            &[&r1, &ones, &zeros],
            &[&normed],
            vec![attr_float("epsilon", gn.epsilon as f32)],
        );
        let mut y = self.g.fresh(&format!("{name}.ungrouped"));
        self.g.node("Reshape", &[&normed, &back], &[&y], vec![]);
        self.g.set_shape(&y, &[n, c, h, w]);
        if gn.affine {
            let (Some(gamma), Some(beta)) = (&gn.gamma, &gn.beta) else {
                return Err(ExportError::Unsupported {
                    layer: name.to_string(),
                    why: "affine GroupNorm without gamma/beta".into(),
                });
            };
            // Rank 4 like the activation: tract runs a per-channel Mul/Add with a
            // `[1, C, 1, 1]` operand as one vectorised pass, but broadcasts a
            // `[C, 1, 1]` one element by element (~17× slower: 77 µs vs 4.4 µs
            // on 32×20×20, ~12% of a GFL student's inference).
            let gamma =
                self.g
                    .init_f32(&format!("{name}.weight"), &[1, c, 1, 1], host(gamma.val()));
            let beta = self
                .g
                .init_f32(&format!("{name}.bias"), &[1, c, 1, 1], host(beta.val()));
            y = self.binary("Mul", &y, &gamma, &format!("{name}.scaled"));
            y = self.binary("Add", &y, &beta, name);
        }
        Ok(y)
    }

    fn block<B: Backend>(
        &mut self,
        x: &str,
        b: &Block<B>,
        name: &str,
    ) -> Result<String, ExportError> {
        let identity = match &b.downsample {
            Some(ds) => {
                let p = ConvParams::from_conv(&ds.conv, name)?.fold_bn(&ds.bn);
                self.conv(x, p, &format!("{name}.downsample"))?
            }
            None => x.to_string(),
        };
        let p1 = ConvParams::from_conv(&b.conv1, name)?.fold_bn(&b.bn1);
        let y = self.conv(x, p1, &format!("{name}.conv1"))?;
        let y = self.relu(&y, &format!("{name}.relu1"));
        let p2 = ConvParams::from_conv(&b.conv2, name)?.fold_bn(&b.bn2);
        let mut y = self.conv(&y, p2, &format!("{name}.conv2"))?;
        if let (Some(c3), Some(bn3)) = (&b.conv3, &b.bn3) {
            let y2 = self.relu(&y, &format!("{name}.relu2"));
            let p3 = ConvParams::from_conv(c3, name)?.fold_bn(bn3);
            y = self.conv(&y2, p3, &format!("{name}.conv3"))?;
        }
        let sum = self.binary("Add", &y, &identity, &format!("{name}.add"));
        Ok(self.relu(&sum, &format!("{name}.out")))
    }

    fn tower<B: Backend>(
        &mut self,
        x: &str,
        convs: &[(ConvRef, Option<GroupNorm<B>>)],
        name: &str,
        level: usize,
    ) -> Result<String, ExportError> {
        let mut y = x.to_string();
        for (i, (c, gn)) in convs.iter().enumerate() {
            let base = format!("{name}.{i}.l{level}");
            y = self.apply(&y, c, &format!("{base}.conv"))?;
            if let Some(gn) = gn {
                y = self.group_norm(&y, gn, &format!("{base}.gn"))?;
            }
            y = self.relu(&y, &format!("{base}.relu"));
        }
        Ok(y)
    }
}

fn plain<B: Backend>(conv: &Conv2d<B>, what: &str) -> Result<ConvParams, ExportError> {
    ConvParams::from_conv(conv, what)
}

fn scale_value<B: Backend>(s: &Scale<B>) -> f32 {
    host(s.scale.val())[0]
}

/// Per-level head predictors: what `predict_level` applies after the towers.
enum Predictors {
    /// cls, reg, scales (GFL, ATSS reg), optional centerness on reg.
    Scaled {
        cls: ConvRef,
        reg: ConvRef,
        scales: Vec<f32>,
        centerness: Option<ConvRef>,
    },
    /// RetinaNet: cls, reg.
    Plain { cls: ConvRef, reg: ConvRef },
    /// FCOS: cls, reg, centerness (on cls or reg), scales, strides, norm_on_bbox.
    Fcos {
        cls: ConvRef,
        reg: ConvRef,
        centerness: ConvRef,
        on_reg: bool,
        scales: Vec<f32>,
        strides: Vec<f32>,
        norm_on_bbox: bool,
    },
}

/// Build the inference graph of `det` for a `[1, 3, h, w]` input.
///
/// Returns the builder with inputs, outputs and all nodes; the caller adds
/// metadata and assembles the model ([`GraphBuilder::finish`]).
pub fn detector_graph<B: Backend>(
    det: &Detector<B>,
    h: usize,
    w: usize,
) -> Result<GraphBuilder, ExportError> {
    let mut e = Emitter {
        g: GraphBuilder::new(),
    };
    e.g.input(INPUT_NAME, &[1, 3, h, w]);

    // Backbone.
    let bb = &det.backbone;
    let stem = plain(&bb.conv1, "backbone.conv1")?.fold_bn(&bb.bn1);
    let x = e.conv(INPUT_NAME, stem, "backbone.conv1")?;
    let x = e.relu(&x, "backbone.relu");
    let mut x = e.max_pool(&x, "backbone.maxpool");
    let mut stages = Vec::new();
    for (s, layer) in [&bb.layer1, &bb.layer2, &bb.layer3, &bb.layer4]
        .into_iter()
        .enumerate()
    {
        for (i, b) in layer.iter().enumerate() {
            x = e.block(&x, b, &format!("backbone.layer{}.{i}", s + 1))?;
        }
        stages.push(x.clone());
    }
    let inputs = &stages[1..];

    // Neck.
    let neck = &det.neck;
    let n_in = neck.lateral_convs.len();
    if n_in != inputs.len() {
        return Err(ExportError::Unsupported {
            layer: "neck".into(),
            why: format!("{n_in} lateral convs for {} backbone levels", inputs.len()),
        });
    }
    let mut laterals = Vec::with_capacity(n_in);
    for (i, (conv, x)) in neck.lateral_convs.iter().zip(inputs).enumerate() {
        let name = format!("neck.lateral_convs.{i}");
        laterals.push(e.conv(x, plain(conv, &name)?, &name)?);
    }
    for i in (1..n_in).rev() {
        let [_, _, h, w] = e.shape4(&laterals[i - 1]);
        let up = e.upsample2x(&laterals[i], [h, w], &format!("neck.upsample.{i}"))?;
        laterals[i - 1] = e.binary(
            "Add",
            &laterals[i - 1],
            &up,
            &format!("neck.top_down.{}", i - 1),
        );
    }
    let mut feats = Vec::with_capacity(neck.fpn_convs.len());
    for (i, (conv, x)) in neck.fpn_convs.iter().zip(&laterals).enumerate() {
        let name = format!("neck.fpn_convs.{i}");
        feats.push(e.conv(x, plain(conv, &name)?, &name)?);
    }
    let c5 = inputs[n_in - 1].clone();
    for i in n_in..neck.fpn_convs.len() {
        let src = if i == n_in {
            if neck.extra_on_input {
                c5.clone()
            } else {
                feats[i - 1].clone()
            }
        } else if neck.relu_before_extra_convs {
            e.relu(&feats[i - 1], &format!("neck.extra_relu.{i}"))
        } else {
            feats[i - 1].clone()
        };
        let name = format!("neck.fpn_convs.{i}");
        let y = e.conv(&src, plain(&neck.fpn_convs[i], &name)?, &name)?;
        feats.push(y);
    }

    // Head: towers and predictors, weights registered once for all levels.
    let (cls_tower, reg_tower) = det.head.towers();
    let mut tower_refs = |t: &Tower<B>, name: &str| -> Result<Vec<TowerLayerRef<B>>, ExportError> {
        t.convs
            .iter()
            .enumerate()
            .map(|(i, m): (usize, &ConvModule<B>)| {
                let n = format!("head.{name}.{i}");
                Ok((e.conv_ref(&n, plain(&m.conv, &n)?), m.gn.clone()))
            })
            .collect()
    };
    let cls_refs = tower_refs(cls_tower, "cls_convs")?;
    let reg_refs = tower_refs(reg_tower, "reg_convs")?;
    let mut reg_conv = |c: &Conv2d<B>, n: &str| -> Result<ConvRef, ExportError> {
        let name = format!("head.{n}");
        let p = plain(c, &name)?;
        Ok(e.conv_ref(&name, p))
    };
    let preds = match &det.head {
        Head::Gfl(h) => Predictors::Scaled {
            cls: reg_conv(&h.gfl_cls, "gfl_cls")?,
            reg: reg_conv(&h.gfl_reg, "gfl_reg")?,
            scales: h.scales.iter().map(scale_value).collect(),
            centerness: None,
        },
        Head::Atss(h) => Predictors::Scaled {
            cls: reg_conv(&h.atss_cls, "atss_cls")?,
            reg: reg_conv(&h.atss_reg, "atss_reg")?,
            scales: h.scales.iter().map(scale_value).collect(),
            centerness: Some(reg_conv(&h.atss_centerness, "atss_centerness")?),
        },
        Head::RetinaNet(h) => Predictors::Plain {
            cls: reg_conv(&h.retina_cls, "retina_cls")?,
            reg: reg_conv(&h.retina_reg, "retina_reg")?,
        },
        Head::Fcos(h) => Predictors::Fcos {
            cls: reg_conv(&h.conv_cls, "conv_cls")?,
            reg: reg_conv(&h.conv_reg, "conv_reg")?,
            centerness: reg_conv(&h.conv_centerness, "conv_centerness")?,
            on_reg: h.centerness_on_reg,
            scales: h.scales.iter().map(scale_value).collect(),
            strides: h.strides.clone(),
            norm_on_bbox: h.norm_on_bbox,
        },
    };
    for (l, feat) in feats.iter().enumerate() {
        let [cls_out, bbox_out, ctr_out] = output_names(l);
        let cls_feat = e.tower(feat, &cls_refs, "head.cls_convs", l)?;
        let reg_feat = e.tower(feat, &reg_refs, "head.reg_convs", l)?;
        let level_scale = |scales: &[f32]| {
            scales
                .get(l)
                .copied()
                .ok_or_else(|| ExportError::Unsupported {
                    layer: format!("head.scales.{l}"),
                    why: format!("{} scales for {} levels", scales.len(), feats.len()),
                })
        };
        match &preds {
            Predictors::Scaled {
                cls,
                reg,
                scales,
                centerness,
            } => {
                e.apply(&cls_feat, cls, &cls_out)?;
                let r = e.apply(&reg_feat, reg, &format!("head.reg_pred.l{l}"))?;
                e.mul_scalar(
                    &r,
                    level_scale(scales)?,
                    &format!("head.scales.{l}"),
                    &bbox_out,
                );
                if let Some(c) = centerness {
                    e.apply(&reg_feat, c, &ctr_out)?;
                }
            }
            Predictors::Plain { cls, reg } => {
                e.apply(&cls_feat, cls, &cls_out)?;
                e.apply(&reg_feat, reg, &bbox_out)?;
            }
            Predictors::Fcos {
                cls,
                reg,
                centerness,
                on_reg,
                scales,
                strides,
                norm_on_bbox,
            } => {
                e.apply(&cls_feat, cls, &cls_out)?;
                let r = e.apply(&reg_feat, reg, &format!("head.reg_pred.l{l}"))?;
                let s = e.mul_scalar(
                    &r,
                    level_scale(scales)?,
                    &format!("head.scales.{l}"),
                    &format!("head.scaled.l{l}"),
                );
                if *norm_on_bbox {
                    let stride = level_scale(strides)?;
                    let y = e.relu(&s, &format!("head.relu_bbox.l{l}"));
                    e.mul_scalar(&y, stride, &format!("head.strides.{l}"), &bbox_out);
                } else {
                    e.unary("Exp", &s, &bbox_out);
                }
                let src = if *on_reg { &reg_feat } else { &cls_feat };
                e.apply(src, centerness, &ctr_out)?;
            }
        }
        e.g.output(&cls_out);
        e.g.output(&bbox_out);
        if !matches!(
            preds,
            Predictors::Plain { .. }
                | Predictors::Scaled {
                    centerness: None,
                    ..
                }
        ) {
            e.g.output(&ctr_out);
        }
    }
    Ok(e.g)
}
