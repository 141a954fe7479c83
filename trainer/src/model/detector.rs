//! A single-stage detector: ResNet backbone → FPN → dense head.
//!
//! `loss()` returns the head's named GT loss components for a batch and
//! `predict()` turns head outputs into detections through the SDK's decoder,
//! the same code the edge runtime runs.

use burn::prelude::*;
use crosskd_sdk::{DecodeError, DecodeSpec, Detection, HeadKind, TestConfig};
use serde::{Deserialize, Serialize};

use super::head_loss::{to_vec, HeadTargets};
use super::loss_dict::LossDict;
use crate::data::{Batch, ImageMeta};

use super::backbone::{ResNet, ResNetConfig};
use super::head::{Head, HeadConfig};
use super::heads::{DenseHead, LevelOutput};
use super::neck::{Fpn, FpnConfig};

/// `[model]` section of a config: backbone, neck and head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    /// Backbone settings.
    pub backbone: ResNetConfig,
    /// Neck settings (`in_channels` is taken from the backbone).
    pub neck: FpnConfig,
    /// Head settings.
    pub head: HeadConfig,
}

/// A configuration that cannot produce a working detector.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// Invalid backbone.
    #[error(transparent)]
    Backbone(#[from] super::backbone::resnet::ResNetError),
    /// Invalid field value.
    #[error("model.{field} = {value}: {why}")]
    Field {
        /// Dotted field path below `model`.
        field: &'static str,
        /// The offending value.
        value: String,
        /// What is wrong and what to do.
        why: String,
    },
}

fn field_err(field: &'static str, value: impl ToString, why: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        field,
        value: value.to_string(),
        why: why.into(),
    }
}

impl DetectorConfig {
    /// The paper's setting of `kind` (MMDet defaults: 256-channel FPN and 4-conv
    /// towers) on a ResNet of `depth`, for `num_classes` classes.
    ///
    /// ```
    /// use crosskd_trainer::model::detector::DetectorConfig;
    /// use crosskd_sdk::HeadKind;
    /// let cfg = DetectorConfig::preset(HeadKind::Gfl, 50, 80);
    /// assert_eq!(cfg.strides(), vec![8.0, 16.0, 32.0, 64.0, 128.0]);
    /// cfg.validate().unwrap();
    /// ```
    pub fn preset(kind: HeadKind, depth: usize, num_classes: usize) -> Self {
        use super::heads::{AtssHeadConfig, FcosHeadConfig, GflHeadConfig, RetinaHeadConfig};
        let mut neck = FpnConfig::new(vec![], 256);
        let head = match kind {
            HeadKind::Gfl => HeadConfig::Gfl(GflHeadConfig::new(num_classes)),
            HeadKind::RetinaNet => HeadConfig::Retinanet(RetinaHeadConfig::new(num_classes)),
            HeadKind::Fcos => {
                neck.relu_before_extra_convs = true;
                HeadConfig::Fcos(FcosHeadConfig::new(num_classes))
            }
            HeadKind::Atss => HeadConfig::Atss(AtssHeadConfig::new(num_classes)),
        };
        Self {
            backbone: ResNetConfig::new(depth),
            neck,
            head,
        }
    }

    /// Level strides of the FPN outputs (P3 = 8, doubling).
    pub fn strides(&self) -> Vec<f32> {
        (0..self.neck.num_outs)
            .map(|l| (8u32 << l) as f32)
            .collect()
    }

    /// The head family.
    pub fn kind(&self) -> HeadKind {
        self.head.kind()
    }

    /// What the SDK needs to decode this detector's raw outputs.
    pub fn decode_spec(&self) -> DecodeSpec {
        let mut spec = DecodeSpec::for_kind(self.kind(), self.head.num_classes());
        spec.strides = self.strides();
        if let HeadConfig::Gfl(g) = &self.head {
            spec.reg_max = g.reg_max;
        }
        if let Some(a) = spec.anchors.as_mut() {
            a.strides = spec.strides.clone();
        }
        spec
    }

    /// Check every cross-field constraint; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.backbone.validate()?;
        let (num_classes, in_c, feat_c, stacked, gn) = self.head.dims();
        if num_classes == 0 {
            return Err(field_err("head.num_classes", 0, "needs at least one class"));
        }
        if self.neck.out_channels == 0 {
            return Err(field_err("neck.out_channels", 0, "must be positive"));
        }
        if self.neck.num_outs < 3 {
            return Err(field_err(
                "neck.num_outs",
                self.neck.num_outs,
                "must be at least 3 (P3..P5)",
            ));
        }
        if in_c != self.neck.out_channels {
            return Err(field_err(
                "head.in_channels",
                in_c,
                format!("must equal neck.out_channels = {}", self.neck.out_channels),
            ));
        }
        if feat_c == 0 || stacked == 0 {
            return Err(field_err(
                "head.feat_channels/stacked_convs",
                format!("{feat_c}/{stacked}"),
                "both must be positive",
            ));
        }
        if let Some(g) = gn {
            if g == 0 || feat_c % g != 0 {
                return Err(field_err(
                    "head.gn_groups",
                    g,
                    format!("must divide head.feat_channels = {feat_c}"),
                ));
            }
        }
        if let HeadConfig::Fcos(f) = &self.head {
            if f.regress_ranges.len() != self.neck.num_outs {
                return Err(field_err(
                    "head.regress_ranges",
                    f.regress_ranges.len(),
                    format!("needs one range per FPN level ({})", self.neck.num_outs),
                ));
            }
        }
        Ok(())
    }

    /// Build the detector on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Detector<B>, ConfigError> {
        self.validate()?;
        let backbone = self.backbone.init(device)?;
        let mut neck_cfg = self.neck.clone();
        neck_cfg.in_channels = self.backbone.stage_channels()?[1..].to_vec();
        let strides = self.strides();
        Ok(Detector {
            backbone,
            neck: neck_cfg.init(device),
            head: self.head.init(&strides, device),
            config: self.clone(),
        })
    }
}

/// Backbone + neck + head.
#[derive(Module, Debug)]
pub struct Detector<B: Backend> {
    /// Feature extractor.
    pub backbone: ResNet<B>,
    /// Feature pyramid.
    pub neck: Fpn<B>,
    /// Dense head.
    pub head: Head<B>,
    /// The configuration it was built from (not a parameter).
    #[module(skip)]
    pub config: DetectorConfig,
}

/// The input cannot go through the network.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InputError {
    /// Wrong channel count or rank.
    #[error("input batch has shape {0:?}: expected [N, 3, H, W]")]
    Shape([usize; 4]),
    /// A GT label outside `0..num_classes`.
    #[error("image {image_id}: GT label {label} is outside 0..{num_classes}: check the category mapping")]
    Label {
        /// Dataset image id.
        image_id: u64,
        /// The label.
        label: usize,
        /// Classes of the model.
        num_classes: usize,
    },
    /// A non-finite GT box or boxes/labels count mismatch.
    #[error("image {image_id}: {why}")]
    Annotation {
        /// Dataset image id.
        image_id: u64,
        /// What is wrong.
        why: String,
    },
    /// Metas and images disagree.
    #[error("batch has {images} images but {metas} metas")]
    BatchSize {
        /// Images in the tensor.
        images: usize,
        /// Metas given.
        metas: usize,
    },
    /// Too small for the deepest level.
    #[error("input {h}x{w} is smaller than the backbone stride {stride}: resize or pad images to at least {stride}x{stride}")]
    TooSmall {
        /// Height.
        h: usize,
        /// Width.
        w: usize,
        /// Backbone output stride.
        stride: usize,
    },
}

/// Prediction failed.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// Bad input batch.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The SDK decoder rejected the outputs.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// Decode batched head outputs with the SDK (the code the edge runtime runs).
pub fn decode_outputs<B: Backend>(
    spec: &DecodeSpec,
    test_cfg: &TestConfig,
    outputs: &[LevelOutput<B>],
    metas: &[ImageMeta],
) -> Result<Vec<Vec<Detection>>, PredictError> {
    struct HostLevel {
        cls: Vec<f32>,
        bbox: Vec<f32>,
        ctr: Option<Vec<f32>>,
        dims: [usize; 4],
        bbox_c: usize,
    }
    let host: Vec<HostLevel> = outputs
        .iter()
        .map(|o| HostLevel {
            dims: o.cls_score.dims(),
            bbox_c: o.bbox_pred.dims()[1],
            cls: to_vec(o.cls_score.clone()),
            bbox: to_vec(o.bbox_pred.clone()),
            ctr: o.centerness.clone().map(to_vec),
        })
        .collect();
    metas
        .iter()
        .enumerate()
        .map(|(i, meta)| {
            let levels: Vec<crosskd_sdk::LevelOutput> = host
                .iter()
                .map(|l| {
                    let [_, cc, h, w] = l.dims;
                    let hw = h * w;
                    crosskd_sdk::LevelOutput {
                        cls_score: &l.cls[i * cc * hw..(i + 1) * cc * hw],
                        bbox_pred: &l.bbox[i * l.bbox_c * hw..(i + 1) * l.bbox_c * hw],
                        centerness: l.ctr.as_ref().map(|c| &c[i * hw..(i + 1) * hw]),
                        height: h,
                        width: w,
                    }
                })
                .collect();
            let (h, w) = meta.img_shape;
            Ok(crosskd_sdk::postprocess(
                spec,
                test_cfg,
                &levels,
                (h as f32, w as f32),
                meta.scale_factor,
            )?)
        })
        .collect()
}

impl<B: Backend> Detector<B> {
    /// Reject inputs that would produce empty feature maps.
    pub fn check_input(&self, images: &Tensor<B, 4>) -> Result<(), InputError> {
        let dims = images.dims();
        if dims[1] != 3 || dims[0] == 0 {
            return Err(InputError::Shape(dims));
        }
        // C5 has stride 32; smaller inputs leave it empty (P6/P7 round up).
        let stride = 32;
        if dims[2] < stride || dims[3] < stride {
            return Err(InputError::TooSmall {
                h: dims[2],
                w: dims[3],
                stride,
            });
        }
        Ok(())
    }

    /// Check a batch's annotations against the model before computing targets.
    pub fn check_batch(&self, batch: &Batch<B>) -> Result<(), InputError> {
        self.check_input(&batch.images)?;
        let n = batch.images.dims()[0];
        if n != batch.metas.len() {
            return Err(InputError::BatchSize {
                images: n,
                metas: batch.metas.len(),
            });
        }
        let num_classes = self.config.head.num_classes();
        for m in &batch.metas {
            if m.gt_boxes.len() != m.gt_labels.len() {
                return Err(InputError::Annotation {
                    image_id: m.image_id,
                    why: format!(
                        "{} boxes but {} labels",
                        m.gt_boxes.len(),
                        m.gt_labels.len()
                    ),
                });
            }
            if let Some(&label) = m.gt_labels.iter().find(|&&l| l >= num_classes) {
                return Err(InputError::Label {
                    image_id: m.image_id,
                    label,
                    num_classes,
                });
            }
            if let Some(b) = m.gt_boxes.iter().find(|b| b.iter().any(|v| !v.is_finite())) {
                return Err(InputError::Annotation {
                    image_id: m.image_id,
                    why: format!("GT box {b:?} is not finite"),
                });
            }
        }
        Ok(())
    }

    /// Named GT losses of a batch (`loss_cls`, `loss_bbox`, ...; sum them to train).
    pub fn loss(&self, batch: &Batch<B>) -> Result<LossDict<B>, InputError> {
        self.check_batch(batch)?;
        let outputs = self.forward(batch.images.clone());
        Ok(self.loss_from_outputs(&outputs, &batch.metas))
    }

    /// GT losses from already computed head outputs.
    pub fn loss_from_outputs(
        &self,
        outputs: &[LevelOutput<B>],
        metas: &[ImageMeta],
    ) -> LossDict<B> {
        let targets = self.targets(outputs, metas);
        self.loss_from_targets(outputs, &targets)
    }

    /// The head's GT assignment for `outputs` (priors from their level shapes).
    pub fn targets(&self, outputs: &[LevelOutput<B>], metas: &[ImageMeta]) -> HeadTargets {
        self.config
            .head
            .targets(&self.config.strides(), outputs, metas)
    }

    /// GT losses from head outputs and their [`targets`](Self::targets).
    ///
    /// # Panics
    /// If `targets` were computed for a different head family.
    pub fn loss_from_targets(
        &self,
        outputs: &[LevelOutput<B>],
        targets: &HeadTargets,
    ) -> LossDict<B> {
        self.config.head.loss_from_targets(outputs, targets)
    }

    /// Detections per image in original-image pixels, decoded by the SDK.
    ///
    /// Run it on a non-autodiff backend (`detector.valid()`) for speed.
    pub fn predict(
        &self,
        batch: &Batch<B>,
        test_cfg: &TestConfig,
    ) -> Result<Vec<Vec<Detection>>, PredictError> {
        self.check_input(&batch.images)?;
        let outputs = self.forward(batch.images.clone());
        decode_outputs(&self.config.decode_spec(), test_cfg, &outputs, &batch.metas)
    }

    /// FPN features `[P3, …, P7]`.
    pub fn extract_feat(&self, images: Tensor<B, 4>) -> Vec<Tensor<B, 4>> {
        self.neck.forward(self.backbone.forward(images))
    }

    /// Raw head outputs per level.
    pub fn forward(&self, images: Tensor<B, 4>) -> Vec<LevelOutput<B>> {
        self.head.forward(&self.extract_feat(images))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::backend::{Flex, FlexAutodiff};
    use crate::model::heads::{AtssHeadConfig, FcosHeadConfig, GflHeadConfig, RetinaHeadConfig};
    use burn::module::{ModuleVisitor, Param, ParamId};
    use burn::tensor::backend::AutodiffBackend;
    use burn::tensor::Distribution;

    /// A tiny detector of `kind`: R18 × 0.25, 16-channel FPN/head, 2-conv towers, 3 classes.
    pub(crate) fn tiny_config(kind: HeadKind) -> DetectorConfig {
        let n = 3;
        let head = match kind {
            HeadKind::Gfl => HeadConfig::Gfl(GflHeadConfig {
                in_channels: 16,
                feat_channels: 16,
                stacked_convs: 2,
                gn_groups: 4,
                reg_max: 8,
                ..GflHeadConfig::new(n)
            }),
            HeadKind::RetinaNet => HeadConfig::Retinanet(RetinaHeadConfig {
                in_channels: 16,
                feat_channels: 16,
                stacked_convs: 2,
                ..RetinaHeadConfig::new(n)
            }),
            HeadKind::Fcos => HeadConfig::Fcos(FcosHeadConfig {
                in_channels: 16,
                feat_channels: 16,
                stacked_convs: 2,
                gn_groups: 4,
                ..FcosHeadConfig::new(n)
            }),
            HeadKind::Atss => HeadConfig::Atss(AtssHeadConfig {
                in_channels: 16,
                feat_channels: 16,
                stacked_convs: 2,
                gn_groups: 4,
                ..AtssHeadConfig::new(n)
            }),
        };
        DetectorConfig {
            backbone: ResNetConfig::new(18).with_width_mult(0.25),
            neck: FpnConfig::new(vec![], 16),
            head,
        }
    }

    pub(crate) const KINDS: [HeadKind; 4] = [
        HeadKind::Gfl,
        HeadKind::RetinaNet,
        HeadKind::Fcos,
        HeadKind::Atss,
    ];

    #[test]
    fn head_output_shapes_at_two_sizes() {
        let device = Default::default();
        // Feature sizes by hand: 64 → stem 32 → pool 16 → C3 8, C4 4, C5 2, P6 1, P7 1;
        // 96×128 → 48×64 → 24×32 → 12×16, 6×8, 3×4, P6 2×2, P7 1×1.
        let cases = [
            ((64, 64), vec![(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]),
            ((96, 128), vec![(12, 16), (6, 8), (3, 4), (2, 2), (1, 1)]),
        ];
        for kind in KINDS {
            let det = tiny_config(kind).init::<Flex>(&device).unwrap();
            let (a, box_c, has_ctr) = match kind {
                HeadKind::Gfl => (1, 4 * 9, false),
                HeadKind::RetinaNet => (9, 36, false),
                HeadKind::Fcos => (1, 4, true),
                HeadKind::Atss => (1, 4, true),
            };
            for ((h, w), sizes) in &cases {
                let x = Tensor::<Flex, 4>::random(
                    [2, 3, *h, *w],
                    Distribution::Normal(0.0, 1.0),
                    &device,
                );
                let outs = det.forward(x);
                assert_eq!(outs.len(), 5);
                for (o, &(fh, fw)) in outs.iter().zip(sizes) {
                    assert_eq!(o.cls_score.dims(), [2, a * 3, fh, fw], "{kind:?} cls");
                    assert_eq!(o.bbox_pred.dims(), [2, box_c, fh, fw], "{kind:?} bbox");
                    assert_eq!(
                        o.centerness.as_ref().map(|c| c.dims()),
                        has_ctr.then_some([2, 1, fh, fw])
                    );
                }
            }
        }
    }

    #[test]
    fn resuming_a_tower_from_layer_k_reproduces_the_forward() {
        let device = Default::default();
        for kind in KINDS {
            let det = tiny_config(kind).init::<Flex>(&device).unwrap();
            let x =
                Tensor::<Flex, 4>::random([1, 16, 6, 5], Distribution::Normal(0.0, 1.0), &device);
            let (full, trace) = det.head.forward_level_traced(x.clone(), 1);
            assert_eq!(trace.cls.len(), 2);
            for k in 0..=2 {
                let (ci, ri) = if k == 0 {
                    (x.clone(), x.clone())
                } else {
                    (
                        burn::tensor::activation::relu(trace.cls[k - 1].clone()),
                        burn::tensor::activation::relu(trace.reg[k - 1].clone()),
                    )
                };
                let resumed = det.head.forward_level_from(ci, ri, k, 1);
                let diff = (resumed.bbox_pred - full.bbox_pred.clone())
                    .abs()
                    .max()
                    .into_scalar();
                assert!(diff < 1e-5, "{kind:?} k={k}: {diff}");
                let diff = (resumed.cls_score - full.cls_score.clone())
                    .abs()
                    .max()
                    .into_scalar();
                assert!(diff < 1e-5, "{kind:?} k={k}: {diff}");
            }
        }
    }

    /// Collects `(id, requires_grad, grad_abs_sum)` per float parameter.
    struct GradProbe<'a, B: AutodiffBackend> {
        grads: &'a B::Gradients,
        seen: Vec<(ParamId, bool, Option<f32>)>,
    }

    impl<B: AutodiffBackend> ModuleVisitor<B> for GradProbe<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let t = param.val();
            let g = t
                .grad(self.grads)
                .map(|g| g.abs().sum().into_scalar().elem::<f32>());
            self.seen.push((param.id, t.is_require_grad(), g));
        }
    }

    #[test]
    fn trainable_params_get_gradients_and_frozen_ones_none() {
        let device = Default::default();
        for kind in KINDS {
            let det = tiny_config(kind).init::<FlexAutodiff>(&device).unwrap();
            let x = Tensor::<FlexAutodiff, 4>::random(
                [2, 3, 64, 64],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let outs = det.forward(x);
            let mut total = Tensor::<FlexAutodiff, 1>::zeros([1], &device);
            for o in outs {
                total = total + o.cls_score.powi_scalar(2).sum() + o.bbox_pred.powi_scalar(2).sum();
                if let Some(c) = o.centerness {
                    total = total + c.powi_scalar(2).sum();
                }
            }
            let grads = total.backward();
            let mut probe = GradProbe::<FlexAutodiff> {
                grads: &grads,
                seen: vec![],
            };
            det.visit(&mut probe);
            let mut frozen = 0;
            for (id, trainable, g) in &probe.seen {
                if *trainable {
                    let g = g.unwrap_or(0.0);
                    assert!(g > 0.0, "{kind:?}: trainable param {id} got no gradient");
                } else {
                    frozen += 1;
                    assert!(g.is_none(), "{kind:?}: frozen param {id} got a gradient");
                }
            }
            // stem conv + bn (4 tensors) + layer1 (2 blocks × (2 convs + 2 BNs × 4)) frozen,
            // plus running stats of every other BN.
            assert!(frozen > 20, "{kind:?}: only {frozen} frozen tensors");
        }
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let mut cfg = tiny_config(HeadKind::Gfl);
        if let HeadConfig::Gfl(h) = &mut cfg.head {
            h.num_classes = 0;
        }
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("head.num_classes"), "{err}");

        let mut cfg = tiny_config(HeadKind::Atss);
        if let HeadConfig::Atss(h) = &mut cfg.head {
            h.gn_groups = 5;
        }
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("head.gn_groups"));

        let mut cfg = tiny_config(HeadKind::Fcos);
        cfg.neck.out_channels = 32;
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("head.in_channels"));

        let mut cfg = tiny_config(HeadKind::RetinaNet);
        cfg.backbone.depth = 42;
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("depth = 42"));
    }

    #[test]
    fn too_small_input_is_an_error() {
        let device = Default::default();
        let det = tiny_config(HeadKind::Fcos).init::<Flex>(&device).unwrap();
        let x = Tensor::<Flex, 4>::zeros([1, 3, 16, 64], &device);
        assert!(matches!(
            det.check_input(&x),
            Err(InputError::TooSmall { .. })
        ));
        let x = Tensor::<Flex, 4>::zeros([1, 1, 64, 64], &device);
        assert!(matches!(det.check_input(&x), Err(InputError::Shape(_))));
    }

    #[test]
    fn config_round_trips_through_toml() {
        let cfg = tiny_config(HeadKind::Fcos);
        let text = toml::to_string(&cfg).unwrap();
        let back: DetectorConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, cfg);
        let bad = text.replace("stacked_convs", "stacked_conv");
        let err = toml::from_str::<DetectorConfig>(&bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("stacked_conv"), "{err}");
    }
}
