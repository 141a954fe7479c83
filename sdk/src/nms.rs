//! Greedy non-maximum suppression, plain and class-aware.
//!
//! Semantics follow mmcv's `nms` / `batched_nms`: candidates are visited in
//! descending score order and a box is suppressed by a kept box when their IoU is
//! strictly greater than `iou_thr` (IoU as in [`crate::boxes::iou`], widths
//! `x2 - x1`). Equal scores keep their input order (lower index first), NaN scores
//! sort last. `batched_nms` never lets boxes of different labels suppress each
//! other (mmcv offsets boxes per class to get the same effect).
//!
//! ```
//! use crosskd_sdk::nms::{batched_nms, nms};
//! let boxes = [[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0], [50.0, 50.0, 60.0, 60.0]];
//! let scores = [0.8, 0.9, 0.7];
//! assert_eq!(nms(&boxes, &scores, 0.5), vec![1, 2]);
//! // Different classes: box 0 survives.
//! assert_eq!(batched_nms(&boxes, &scores, &[0, 1, 0], 0.5), vec![1, 0, 2]);
//! ```

use std::cmp::Ordering;

use crate::boxes::{iou, BBox};

/// Descending order of `scores`, NaN last; ties keep index order (stable sort).
pub fn descending_order(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| cmp_desc(scores[a], scores[b]));
    order
}

/// Descending comparison that puts NaN after every number.
#[inline]
fn cmp_desc(a: f32, b: f32) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (false, false) => b.partial_cmp(&a).unwrap_or(Ordering::Equal),
        (a_nan, b_nan) => a_nan.cmp(&b_nan),
    }
}

/// Greedy suppression over `order` (already score-descending); returns the kept
/// indices in that order.
fn greedy(boxes: &[BBox], order: &[usize], iou_thr: f32) -> Vec<usize> {
    let mut suppressed = vec![false; order.len()];
    let mut keep = Vec::new();
    for i in 0..order.len() {
        if suppressed[i] {
            continue;
        }
        let kept = &boxes[order[i]];
        keep.push(order[i]);
        for (j, s) in suppressed.iter_mut().enumerate().skip(i + 1) {
            if !*s && iou(kept, &boxes[order[j]]) > iou_thr {
                *s = true;
            }
        }
    }
    keep
}

/// Class-agnostic NMS. Returns the indices of the kept boxes in descending score order.
///
/// # Panics
/// If `boxes` and `scores` differ in length.
pub fn nms(boxes: &[BBox], scores: &[f32], iou_thr: f32) -> Vec<usize> {
    assert_eq!(
        boxes.len(),
        scores.len(),
        "nms: boxes and scores differ in length"
    );
    greedy(boxes, &descending_order(scores), iou_thr)
}

/// Class-aware NMS: boxes only suppress boxes with the same label. Returns the kept
/// indices in descending score order (ties: lower index first).
///
/// # Panics
/// If `boxes`, `scores` and `labels` differ in length.
pub fn batched_nms(boxes: &[BBox], scores: &[f32], labels: &[usize], iou_thr: f32) -> Vec<usize> {
    assert_eq!(
        boxes.len(),
        scores.len(),
        "batched_nms: boxes and scores differ in length"
    );
    assert_eq!(
        boxes.len(),
        labels.len(),
        "batched_nms: boxes and labels differ in length"
    );
    let order = descending_order(scores);
    // Split the global order per label (each sub-order stays score-descending).
    let num_labels = labels.iter().max().map_or(0, |&m| m + 1);
    let mut per_label: Vec<Vec<usize>> = vec![Vec::new(); num_labels];
    for &i in &order {
        per_label[labels[i]].push(i);
    }
    let mut keep = vec![false; boxes.len()];
    for sub in &per_label {
        for i in greedy(boxes, sub, iou_thr) {
            keep[i] = true;
        }
    }
    order.into_iter().filter(|&i| keep[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // IoUs below are by hand: two 10x10 boxes shifted by d along x overlap
    // (10 - d) * 10, so IoU = (10 - d) / (10 + d).

    #[test]
    fn empty_input() {
        assert!(nms(&[], &[], 0.5).is_empty());
        assert!(batched_nms(&[], &[], &[], 0.5).is_empty());
    }

    #[test]
    fn suppresses_overlaps_above_threshold_in_score_order() {
        let boxes = [
            [0.0, 0.0, 10.0, 10.0],    // 0
            [2.0, 0.0, 12.0, 10.0],    // 1: IoU with 0 = 8/12 = 0.667
            [5.0, 0.0, 15.0, 10.0],    // 2: IoU with 0 = 5/15 = 0.333, with 1 = 7/13 = 0.538
            [100.0, 0.0, 110.0, 10.0], // 3: disjoint
        ];
        let scores = [0.9, 0.8, 0.7, 0.1];
        // 0 kept, suppresses 1 (0.667 > 0.5) but not 2 (0.333); 2 kept; 3 kept.
        assert_eq!(nms(&boxes, &scores, 0.5), vec![0, 2, 3]);
        // Raising the threshold to 0.7 keeps everything.
        assert_eq!(nms(&boxes, &scores, 0.7), vec![0, 1, 2, 3]);
        // If 1 scores highest: it suppresses 0 (0.667) and 2 (0.538).
        let scores = [0.8, 0.9, 0.7, 0.1];
        assert_eq!(nms(&boxes, &scores, 0.5), vec![1, 3]);
    }

    #[test]
    fn equal_iou_and_threshold_does_not_suppress() {
        // By hand: 7.5-wide boxes shifted by 2.5 (all exactly representable):
        // inter 5 x 10 = 50, union 75 + 75 - 50 = 100 → IoU exactly 0.5, which does
        // not exceed 0.5 (strict), but does exceed 0.49.
        let boxes = [[0.0, 0.0, 7.5, 10.0], [2.5, 0.0, 10.0, 10.0]];
        assert_eq!(iou(&boxes[0], &boxes[1]), 0.5);
        assert_eq!(nms(&boxes, &[0.9, 0.8], 0.5), vec![0, 1]);
        assert_eq!(nms(&boxes, &[0.9, 0.8], 0.49), vec![0]);
    }

    #[test]
    fn ties_keep_the_lower_index() {
        // Identical boxes, identical scores: index 0 wins, whichever comes first in memory.
        let boxes = [[0.0, 0.0, 4.0, 4.0]; 3];
        assert_eq!(nms(&boxes, &[0.5, 0.5, 0.5], 0.5), vec![0]);
        // Disjoint boxes with tied scores come out in index order.
        let boxes = [
            [0.0, 0.0, 1.0, 1.0],
            [5.0, 5.0, 6.0, 6.0],
            [9.0, 9.0, 10.0, 10.0],
        ];
        assert_eq!(nms(&boxes, &[0.3, 0.7, 0.3], 0.5), vec![1, 0, 2]);
    }

    #[test]
    fn nan_scores_go_last() {
        let boxes = [[0.0, 0.0, 1.0, 1.0], [5.0, 5.0, 6.0, 6.0]];
        assert_eq!(nms(&boxes, &[f32::NAN, 0.1], 0.5), vec![1, 0]);
    }

    #[test]
    fn classes_do_not_suppress_each_other() {
        let boxes = [
            [0.0, 0.0, 10.0, 10.0], // 0, class 0
            [1.0, 0.0, 11.0, 10.0], // 1, class 1: IoU with 0 = 9/11
            [2.0, 0.0, 12.0, 10.0], // 2, class 0: IoU with 0 = 8/12, with 1 = 9/11
            [0.0, 0.0, 10.0, 10.0], // 3, class 1: IoU with 1 = 9/11
        ];
        let scores = [0.6, 0.9, 0.7, 0.95];
        let labels = [0, 1, 0, 1];
        // class 1: 3 (0.95) suppresses 1. class 0: 2 (0.7) suppresses 0.
        // Output sorted by score over classes: 3, 2.
        assert_eq!(batched_nms(&boxes, &scores, &labels, 0.5), vec![3, 2]);
        // Class-agnostic: 3 suppresses 0, 1, 2 (IoU 1, 9/11, 8/12).
        assert_eq!(nms(&boxes, &scores, 0.5), vec![3]);
        // All distinct classes: nothing suppressed, score order.
        assert_eq!(
            batched_nms(&boxes, &scores, &[0, 1, 2, 3], 0.5),
            vec![3, 1, 2, 0]
        );
    }
}
