//! Per-image geometry and ground truth as the head losses see it.

use crate::boxes::BBox;

/// One image's geometry and annotations in network-input pixels.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImageMeta {
    /// Dataset image id (COCO `image_id`).
    pub image_id: u64,
    /// `(h, w)` of the resized image before padding.
    pub img_shape: (usize, usize),
    /// `(h, w)` of this image padded to a multiple of 32 (drives valid flags).
    pub pad_shape: (usize, usize),
    /// `(w_scale, h_scale)` from original to resized pixels.
    pub scale_factor: (f32, f32),
    /// Ground-truth boxes (xyxy, resized pixels).
    pub gt_boxes: Vec<BBox>,
    /// Contiguous class labels `0..num_classes`.
    pub gt_labels: Vec<usize>,
    /// Crowd regions, kept out of the positives.
    pub gt_ignore: Vec<BBox>,
}

impl ImageMeta {
    /// Meta for an unscaled image of `(h, w)` with the given boxes and labels.
    pub fn new(
        image_id: u64,
        h: usize,
        w: usize,
        gt_boxes: Vec<BBox>,
        gt_labels: Vec<usize>,
    ) -> Self {
        let pad = |x: usize| x.div_ceil(32) * 32;
        Self {
            image_id,
            img_shape: (h, w),
            pad_shape: (pad(h), pad(w)),
            scale_factor: (1.0, 1.0),
            gt_boxes,
            gt_labels,
            gt_ignore: Vec::new(),
        }
    }
}
