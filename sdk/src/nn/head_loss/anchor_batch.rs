//! Anchors and per-anchor targets for a whole batch (GFL, ATSS, RetinaNet).

use crate::boxes::BBox;
use crate::{valid_flags, AnchorGenerator};
use rayon::prelude::*;

use crate::nn::ImageMeta;
use crate::targets::anchor_targets::anchor_targets;
use crate::targets::assign_result::AssignResult;
use crate::targets::atss::AtssAssigner;
use crate::targets::max_iou::MaxIouAssigner;

/// Which assigner labels the anchors.
#[derive(Debug, Clone)]
pub enum AnchorAssigner {
    /// ATSS (GFL, ATSS heads).
    Atss(AtssAssigner),
    /// Max-IoU (RetinaNet).
    MaxIou(MaxIouAssigner),
}

/// Targets of every anchor of every image, flattened image-major.
#[derive(Debug, Clone)]
pub struct BatchAnchorTargets {
    /// Anchors of one image (all levels, `(level, y, x, a)` order); shared by all images.
    pub anchors: Vec<BBox>,
    /// Stride of each anchor's level.
    pub anchor_strides: Vec<f32>,
    /// Number of anchors per image.
    pub num_anchors: usize,
    /// Class per row (`num_classes` = background), `N·num_anchors` rows.
    pub labels: Vec<usize>,
    /// 0 for ignored and padding anchors, 1 otherwise.
    pub label_weights: Vec<f32>,
    /// Positive rows (flat, ascending).
    pub pos_rows: Vec<usize>,
    /// Anchor of each positive row.
    pub pos_anchors: Vec<BBox>,
    /// Assigned GT box of each positive row.
    pub pos_gt_boxes: Vec<BBox>,
    /// Level stride of each positive row.
    pub pos_strides: Vec<f32>,
    /// Positives per image.
    pub num_pos_per_image: Vec<usize>,
}

impl BatchAnchorTargets {
    /// Total number of positives.
    pub fn num_pos(&self) -> usize {
        self.pos_rows.len()
    }

    /// MMDet's `avg_factor` of the pseudo sampler: `SamplingResult.num_pos` is
    /// `max(num_pos, 1)` per image, summed over the batch (so every image
    /// without positives still counts 1). Used by GFL, ATSS and RetinaNet.
    pub fn avg_factor(&self) -> f32 {
        self.num_pos_per_image
            .iter()
            .map(|&p| p.max(1) as f32)
            .sum()
    }
}

/// Targets of the one-square-anchor-per-location heads (GFL, ATSS): ATSS
/// assignment with `topk` candidates per level.
pub fn atss_square_anchor_targets<B: burn::prelude::Backend>(
    topk: usize,
    num_classes: usize,
    strides: &[f32],
    outputs: &[crate::nn::heads::LevelOutput<B>],
    metas: &[ImageMeta],
) -> BatchAnchorTargets {
    anchor_batch_targets(
        &AnchorGenerator::gfl_atss(strides),
        &super::level_shapes(outputs),
        metas,
        &AnchorAssigner::Atss(AtssAssigner::new(topk)),
        num_classes,
    )
}

/// Generate anchors for `shapes`, assign every image and gather targets.
pub fn anchor_batch_targets(
    generator: &AnchorGenerator,
    shapes: &[(usize, usize)],
    metas: &[ImageMeta],
    assigner: &AnchorAssigner,
    num_classes: usize,
) -> BatchAnchorTargets {
    let a = generator.num_base_anchors();
    let mut anchors = Vec::new();
    let mut anchor_strides = Vec::new();
    let mut level_counts = Vec::with_capacity(shapes.len());
    for (l, &(h, w)) in shapes.iter().enumerate() {
        let lvl = generator.grid_anchors(l, h, w);
        level_counts.push(lvl.len());
        anchor_strides.extend(std::iter::repeat_n(generator.strides[l], lvl.len()));
        anchors.extend(lvl);
    }
    let per_image: Vec<_> = metas
        .par_iter()
        .map(|meta| {
            let (ph, pw) = meta.pad_shape;
            let mut valid = Vec::with_capacity(anchors.len());
            for (l, &(h, w)) in shapes.iter().enumerate() {
                valid.extend(valid_flags(h, w, generator.strides[l], ph, pw, a));
            }
            let assign: AssignResult = match assigner {
                AnchorAssigner::Atss(asg) => {
                    asg.assign_valid(&anchors, &level_counts, &valid, &meta.gt_boxes)
                }
                AnchorAssigner::MaxIou(asg) => asg.assign_valid(&anchors, &valid, &meta.gt_boxes),
            };
            anchor_targets(&assign, &meta.gt_boxes, &meta.gt_labels, num_classes)
        })
        .collect();
    let t = anchors.len();
    let mut out = BatchAnchorTargets {
        num_anchors: t,
        labels: Vec::with_capacity(t * metas.len()),
        label_weights: Vec::with_capacity(t * metas.len()),
        pos_rows: Vec::new(),
        pos_anchors: Vec::new(),
        pos_gt_boxes: Vec::new(),
        pos_strides: Vec::new(),
        num_pos_per_image: Vec::with_capacity(metas.len()),
        anchors: Vec::new(),
        anchor_strides: Vec::new(),
    };
    for (img, tg) in per_image.into_iter().enumerate() {
        out.labels.extend(&tg.labels);
        out.label_weights.extend(&tg.label_weights);
        out.num_pos_per_image.push(tg.num_pos());
        for &i in &tg.pos_inds {
            out.pos_rows.push(img * t + i);
            out.pos_anchors.push(anchors[i]);
            out.pos_gt_boxes.push(tg.bbox_targets[i]);
            out.pos_strides.push(anchor_strides[i]);
        }
    }
    out.anchors = anchors;
    out.anchor_strides = anchor_strides;
    out
}
