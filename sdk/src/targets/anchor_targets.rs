//! Per-anchor training targets from an [`AssignResult`], as MMDetection's
//! `AnchorHead`/`ATSSHead`/`GFLHead._get_targets_single` with the pseudo sampler
//! (every non-positive, non-ignored valid anchor is a negative).
//!
//! Box targets are the assigned GT boxes in pixels; encoding them (DeltaXYWH for
//! RetinaNet, distances for GFL, or nothing for `reg_decoded_bbox` heads) is the
//! coder's business.

use crate::boxes::BBox;

use super::assign_result::AssignResult;

/// Targets for the anchors of one image (same order and length as the assignment).
#[derive(Debug, Clone, PartialEq)]
pub struct AnchorTargets {
    /// Class per anchor; `num_classes` (background) for negative and ignored ones.
    pub labels: Vec<usize>,
    /// 1 for positives and negatives, 0 for ignored (incl. invalid) anchors.
    pub label_weights: Vec<f32>,
    /// Assigned GT box `[x1, y1, x2, y2]` for positives, zeros elsewhere.
    pub bbox_targets: Vec<BBox>,
    /// 1 for positives, 0 elsewhere (MMDet repeats it over the 4 coordinates).
    pub bbox_weights: Vec<f32>,
    /// Positive anchor indices, ascending.
    pub pos_inds: Vec<usize>,
    /// GT index of each entry of `pos_inds`.
    pub pos_gt_inds: Vec<usize>,
    /// Negative anchor indices, ascending.
    pub neg_inds: Vec<usize>,
}

impl AnchorTargets {
    /// Number of positive anchors (the per-image part of the loss normaliser).
    pub fn num_pos(&self) -> usize {
        self.pos_inds.len()
    }

    /// Number of negative anchors.
    pub fn num_neg(&self) -> usize {
        self.neg_inds.len()
    }
}

/// Turn an assignment into per-anchor targets.
///
/// ```
/// use crosskd_sdk::targets::{anchor_targets::anchor_targets, assign_result::AssignResult};
/// let assign = AssignResult {
///     gt_inds: vec![1, AssignResult::NEGATIVE, AssignResult::IGNORE],
///     max_overlaps: vec![0.8, 0.1, 0.45],
/// };
/// let gts = [[0.0, 0.0, 4.0, 4.0], [10.0, 10.0, 20.0, 30.0]];
/// let t = anchor_targets(&assign, &gts, &[3, 17], 80);
/// assert_eq!(t.labels, vec![17, 80, 80]);
/// assert_eq!(t.label_weights, vec![1.0, 1.0, 0.0]);
/// assert_eq!(t.bbox_targets[0], [10.0, 10.0, 20.0, 30.0]);
/// assert_eq!(t.num_pos(), 1);
/// ```
///
/// # Panics
/// If `gt_boxes` and `gt_labels` differ in length, a label is `>= num_classes`, or
/// the assignment refers to a GT that does not exist.
pub fn anchor_targets(
    assign: &AssignResult,
    gt_boxes: &[BBox],
    gt_labels: &[usize],
    num_classes: usize,
) -> AnchorTargets {
    assert_eq!(gt_boxes.len(), gt_labels.len(), "one label per GT box");
    assert!(
        gt_labels.iter().all(|&l| l < num_classes),
        "GT label >= num_classes"
    );
    let n = assign.len();
    let mut t = AnchorTargets {
        labels: vec![num_classes; n],
        label_weights: vec![0.0; n],
        bbox_targets: vec![[0.0; 4]; n],
        bbox_weights: vec![0.0; n],
        pos_inds: Vec::new(),
        pos_gt_inds: Vec::new(),
        neg_inds: Vec::new(),
    };
    for (i, &g) in assign.gt_inds.iter().enumerate() {
        match g {
            AssignResult::NEGATIVE => {
                t.label_weights[i] = 1.0;
                t.neg_inds.push(i);
            }
            AssignResult::IGNORE => {}
            g if g >= 0 => {
                let g = g as usize;
                assert!(g < gt_boxes.len(), "anchor {i} assigned to missing GT {g}");
                t.labels[i] = gt_labels[g];
                // MMDet's pos_weight <= 0 → weight 1.
                t.label_weights[i] = 1.0;
                t.bbox_targets[i] = gt_boxes[g];
                t.bbox_weights[i] = 1.0;
                t.pos_inds.push(i);
                t.pos_gt_inds.push(g);
            }
            other => panic!("invalid gt index {other} for anchor {i}"),
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_assignment() {
        let assign = AssignResult {
            gt_inds: vec![
                AssignResult::IGNORE,
                0,
                AssignResult::NEGATIVE,
                1,
                0,
                AssignResult::NEGATIVE,
            ],
            max_overlaps: vec![0.0, 0.7, 0.2, 0.6, 0.55, 0.0],
        };
        let gts = [[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 25.0, 15.0]];
        let t = anchor_targets(&assign, &gts, &[4, 0], 80);
        assert_eq!(t.labels, vec![80, 4, 80, 0, 4, 80]);
        assert_eq!(t.label_weights, vec![0.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        assert_eq!(t.bbox_weights, vec![0.0, 1.0, 0.0, 1.0, 1.0, 0.0]);
        assert_eq!(t.bbox_targets[1], gts[0]);
        assert_eq!(t.bbox_targets[3], gts[1]);
        assert_eq!(t.bbox_targets[0], [0.0; 4]);
        assert_eq!(t.bbox_targets[2], [0.0; 4]);
        assert_eq!(t.pos_inds, vec![1, 3, 4]);
        assert_eq!(t.pos_gt_inds, vec![0, 1, 0]);
        assert_eq!(t.neg_inds, vec![2, 5]);
        assert_eq!((t.num_pos(), t.num_neg()), (3, 2));
    }

    #[test]
    fn no_gt_all_background() {
        let t = anchor_targets(&AssignResult::all_negative(3), &[], &[], 80);
        assert_eq!(t.labels, vec![80; 3]);
        assert_eq!(t.label_weights, vec![1.0; 3]);
        assert_eq!(t.num_pos(), 0);
    }

    #[test]
    #[should_panic(expected = "missing GT")]
    fn rejects_dangling_gt_index() {
        let assign = AssignResult {
            gt_inds: vec![2],
            max_overlaps: vec![1.0],
        };
        anchor_targets(&assign, &[[0.0, 0.0, 1.0, 1.0]], &[0], 80);
    }

    #[test]
    #[should_panic(expected = "num_classes")]
    fn rejects_background_label_on_gt() {
        anchor_targets(
            &AssignResult::all_negative(1),
            &[[0.0, 0.0, 1.0, 1.0]],
            &[80],
            80,
        );
    }
}
