//! IoU-threshold assignment, as MMDetection's `MaxIoUAssigner` (RetinaNet).
//!
//! Per anchor, with `max` = its highest IoU over all GTs:
//! 1. `0 ≤ max < neg_iou_thr` → negative;
//! 2. `max ≥ pos_iou_thr` → positive for the argmax GT (ties: lowest GT index);
//! 3. low-quality matching (optional), GT by GT in order: if the GT's best IoU over
//!    all anchors is `≥ min_pos_iou`, every anchor whose IoU with it *equals* that
//!    best value is (re)assigned to it (`gt_max_assign_all`; otherwise only the
//!    first such anchor). Later GTs overwrite earlier ones and steps 1–2;
//! 4. everything else (the `[neg, pos)` band) is ignored.

use crate::boxes::{iou, BBox};

use super::assign_result::{assign_with_valid_flags, gather, AssignResult};

/// MMDetection's `MaxIoUAssigner` (no `ignore_iof_thr`, scalar `neg_iou_thr`).
///
/// [`Default`] is RetinaNet's configuration: 0.5 / 0.4 / 0.0, low-quality matching
/// on, `gt_max_assign_all` on.
///
/// ```
/// use crosskd_sdk::targets::{assign_result::AssignResult, max_iou::MaxIouAssigner};
/// let gts = [[0.0, 0.0, 10.0, 10.0]];
/// let anchors = [
///     [0.0, 0.0, 10.0, 12.0],  // IoU 100/120 = 0.83 → positive
///     [0.0, 0.0, 10.0, 22.0],  // IoU 100/220 = 0.45 → ignored (in [0.4, 0.5))
///     [20.0, 0.0, 30.0, 10.0], // IoU 0 → negative
/// ];
/// let r = MaxIouAssigner::default().assign(&anchors, &gts);
/// assert_eq!(r.gt_inds, vec![0, AssignResult::IGNORE, AssignResult::NEGATIVE]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaxIouAssigner {
    /// IoU at or above which an anchor is positive.
    pub pos_iou_thr: f32,
    /// IoU below which an anchor is negative.
    pub neg_iou_thr: f32,
    /// A GT's best IoU must reach this for low-quality matching.
    pub min_pos_iou: f32,
    /// Give each GT its best anchor(s) even below `pos_iou_thr`.
    pub match_low_quality: bool,
    /// Low-quality matching takes every anchor tied at the GT's best IoU (else the
    /// first one).
    pub gt_max_assign_all: bool,
}

impl Default for MaxIouAssigner {
    fn default() -> Self {
        Self {
            pos_iou_thr: 0.5,
            neg_iou_thr: 0.4,
            min_pos_iou: 0.0,
            match_low_quality: true,
            gt_max_assign_all: true,
        }
    }
}

impl MaxIouAssigner {
    /// Assign `anchors` (all valid) to `gt_boxes`.
    ///
    /// `max_overlaps[i]` is anchor `i`'s highest IoU over *all* GTs (MMDet's
    /// semantics), which is not the IoU with the assigned GT when low-quality
    /// matching moved the anchor to another GT.
    ///
    /// **Replicated MMDet quirk** (`min_pos_iou = 0`): a GT that overlaps no anchor
    /// has best IoU 0 ≥ 0, so low-quality matching assigns to it *every* anchor
    /// with IoU 0 to it — including anchors already positive for other GTs. With
    /// RetinaNet's dense anchors this needs a degenerate (zero-area) or far
    /// off-image GT; the data pipeline should drop such boxes.
    pub fn assign(&self, anchors: &[BBox], gt_boxes: &[BBox]) -> AssignResult {
        let num_priors = anchors.len();
        let num_gt = gt_boxes.len();
        if num_gt == 0 || num_priors == 0 {
            return AssignResult::all_negative(num_priors);
        }
        // No IoU matrix (RetinaNet: ~200k anchors x up to ~100 GTs): IoUs are
        // recomputed where needed; `iou` is deterministic, so the exact-equality
        // test of low-quality matching sees the very same values.
        let mut out = AssignResult {
            gt_inds: vec![AssignResult::IGNORE; num_priors],
            max_overlaps: vec![0.0; num_priors],
        };
        // Per GT: its best IoU over all anchors and the first anchor reaching it.
        let mut gt_best = vec![(0usize, f32::NEG_INFINITY); num_gt];
        for (p, anchor) in anchors.iter().enumerate() {
            // First maximum on ties, like torch's max(dim).
            let mut arg = 0;
            let mut max = f32::NEG_INFINITY;
            for (g, gt) in gt_boxes.iter().enumerate() {
                let v = iou(anchor, gt);
                if v > max {
                    (arg, max) = (g, v);
                }
                if v > gt_best[g].1 {
                    gt_best[g] = (p, v);
                }
            }
            out.max_overlaps[p] = max;
            if max >= 0.0 && max < self.neg_iou_thr {
                out.gt_inds[p] = AssignResult::NEGATIVE;
            }
            if max >= self.pos_iou_thr {
                out.gt_inds[p] = arg as i32;
            }
        }

        if self.match_low_quality {
            let eligible: Vec<bool> = gt_best
                .iter()
                .map(|&(_, best)| best >= self.min_pos_iou)
                .collect();
            if self.gt_max_assign_all {
                // MMDet loops over GTs and, for each, over all anchors, later GTs
                // overwriting; per anchor that is "the last GT whose best IoU it
                // equals", which is what this anchor-major loop computes. Exact float
                // equality on purpose: anchors symmetric around a GT produce
                // bit-identical IoUs and all of them become positive.
                for (p, anchor) in anchors.iter().enumerate() {
                    for (g, gt) in gt_boxes.iter().enumerate() {
                        if eligible[g] && iou(anchor, gt) == gt_best[g].1 {
                            out.gt_inds[p] = g as i32;
                        }
                    }
                }
            } else {
                for (g, &(first, _)) in gt_best.iter().enumerate() {
                    if eligible[g] {
                        out.gt_inds[first] = g as i32;
                    }
                }
            }
        }
        out
    }

    /// Assign only the anchors whose `valid` flag is set (MMDet's `inside_flags`);
    /// invalid anchors come back as [`AssignResult::IGNORE`] and never count as a
    /// GT's best anchor in low-quality matching.
    ///
    /// # Panics
    /// If `valid.len() != anchors.len()`.
    pub fn assign_valid(
        &self,
        anchors: &[BBox],
        valid: &[bool],
        gt_boxes: &[BBox],
    ) -> AssignResult {
        assert_eq!(valid.len(), anchors.len(), "one valid flag per anchor");
        assign_with_valid_flags(valid, |idx| self.assign(&gather(anchors, idx), gt_boxes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEG: i32 = AssignResult::NEGATIVE;
    const IGN: i32 = AssignResult::IGNORE;

    /// Anchor `[0, 0, 10, h]` against GT `[0, 0, 10, 10]` (h ≥ 10): IoU = 10 / h.
    fn tall(h: f32) -> BBox {
        [0.0, 0.0, 10.0, h]
    }

    #[test]
    fn no_gt_is_all_negative() {
        let r = MaxIouAssigner::default().assign(&[tall(10.0), tall(20.0)], &[]);
        assert_eq!(r.gt_inds, vec![NEG, NEG]);
        assert_eq!(r.max_overlaps, vec![0.0, 0.0]);
        assert!(MaxIouAssigner::default()
            .assign(&[], &[tall(10.0)])
            .is_empty());
    }

    /// GT0 = [0,0,10,10] and GT1 far away at [100,0,110,10] (IoU 1 with a5).
    /// a0: IoU 10/12 = 0.833 → positive GT0.
    /// a1: 10/20 = 0.5 → exactly pos_thr → positive GT0.
    /// a2: 10/21 = 0.476 → ignore band.
    /// a3: 10/25 = 0.4 → exactly neg_thr → NOT negative (< 0.4 required) → ignore.
    /// a4: 10/26 = 0.385 → negative.
    /// a5: GT1 exactly → positive GT1.
    /// Low-quality: GT0's best is a0 (0.833), GT1's best a5 (1.0): no change.
    #[test]
    fn thresholds_and_ignore_band() {
        let anchors = [
            tall(12.0),
            tall(20.0),
            tall(21.0),
            tall(25.0),
            tall(26.0),
            [100.0, 0.0, 110.0, 10.0],
        ];
        let gts = [[0.0, 0.0, 10.0, 10.0], [100.0, 0.0, 110.0, 10.0]];
        let r = MaxIouAssigner::default().assign(&anchors, &gts);
        assert_eq!(r.gt_inds, vec![0, 0, IGN, IGN, NEG, 1]);
        assert_eq!(r.max_overlaps[1], 0.5);
        assert_eq!(r.max_overlaps[3], 0.4);
        assert_eq!(r.max_overlaps[5], 1.0);
    }

    /// The positive goes to the argmax GT; equal IoUs → lowest GT index.
    /// Anchor [0,0,10,10]; GT0 = [0,0,10,14] (IoU 0.714), GT1 = [0,0,10,12]
    /// (0.833), GT2 = GT1 → anchor → GT1.
    /// Low-quality: each GT's best anchor is this single anchor, so GT0, GT1, GT2
    /// reassign it in turn and GT2 — the last — keeps it.
    #[test]
    fn argmax_and_low_quality_overwrite_order() {
        let anchors = [[0.0, 0.0, 10.0, 10.0]];
        let gts = [tall(14.0), tall(12.0), tall(12.0)];
        let no_lq = MaxIouAssigner {
            match_low_quality: false,
            ..Default::default()
        };
        assert_eq!(no_lq.assign(&anchors, &gts).gt_inds, vec![1]);
        let r = MaxIouAssigner::default().assign(&anchors, &gts);
        assert_eq!(r.gt_inds, vec![2]);
        // max_overlaps keeps the max over GTs.
        assert!((r.max_overlaps[0] - 10.0 / 12.0).abs() < 1e-6);
    }

    /// Low-quality matching below 0.5, with ties (gt_max_assign_all).
    /// GT = [0,0,10,10]. a0 = [0,0,10,25] and a1 = [0,-15,10,10] both have IoU
    /// 10/25 = 0.4 (bit-identical), a2 = [0,0,10,30] has 0.333 → GT's best is 0.4:
    /// a0 and a1 (both otherwise ignored) become positive; a2 stays negative.
    /// With gt_max_assign_all = false only the first, a0, does.
    /// With match_low_quality = false both stay ignored.
    #[test]
    fn low_quality_match_below_pos_thr() {
        let anchors = [tall(25.0), [0.0, -15.0, 10.0, 10.0], tall(30.0)];
        let gts = [tall(10.0)];
        let r = MaxIouAssigner::default().assign(&anchors, &gts);
        assert_eq!(r.gt_inds, vec![0, 0, NEG]);

        let first_only = MaxIouAssigner {
            gt_max_assign_all: false,
            ..Default::default()
        };
        assert_eq!(first_only.assign(&anchors, &gts).gt_inds, vec![0, IGN, NEG]);

        let off = MaxIouAssigner {
            match_low_quality: false,
            ..Default::default()
        };
        assert_eq!(off.assign(&anchors, &gts).gt_inds, vec![IGN, IGN, NEG]);

        // min_pos_iou above the GT's best (0.4) disables its low-quality match.
        let strict = MaxIouAssigner {
            min_pos_iou: 0.45,
            ..Default::default()
        };
        assert_eq!(strict.assign(&anchors, &gts).gt_inds, vec![IGN, IGN, NEG]);
    }

    /// Low-quality matching can steal an anchor that is positive for another GT.
    /// a0 = [0,0,10,10]: IoU 1 with GT0 = a0, IoU 10/25 = 0.4 with GT1 = [0,0,10,25].
    /// a1 = [0,0,10,20]: IoU 0.5 with GT0, 0.8 with GT1.
    /// Threshold step: a0 → GT0, a1 → GT1. Low quality: GT0's best is a0 (1.0) → a0
    /// stays GT0; GT1's best is a1 (0.8) → a1 stays GT1. Now add GT2 = a0 copy
    /// after them: its best is a0 → a0 → GT2 (later GT wins).
    #[test]
    fn later_gt_overwrites_in_low_quality_pass() {
        let anchors = [tall(10.0), tall(20.0)];
        let gts = [tall(10.0), tall(25.0)];
        assert_eq!(
            MaxIouAssigner::default().assign(&anchors, &gts).gt_inds,
            vec![0, 1]
        );
        let gts = [tall(10.0), tall(25.0), tall(10.0)];
        assert_eq!(
            MaxIouAssigner::default().assign(&anchors, &gts).gt_inds,
            vec![2, 1]
        );
    }

    /// MMDet quirk replicated on purpose (min_pos_iou = 0): a GT that overlaps no
    /// anchor has best IoU 0 ≥ min_pos_iou, so EVERY anchor with IoU 0 to it — here
    /// all of them, including a0 which matches GT0 perfectly — is assigned to it.
    /// GT0 = [0,0,10,10]; GT1 = [500,500,510,510] (far from every anchor).
    /// a0 = GT0 (IoU 1 → GT0 first), a1 = [20,0,30,10] (IoU 0 with both → negative
    /// first). Low quality: GT0 takes a0; GT1 (best 0) takes a0 and a1.
    #[test]
    fn quirk_gt_without_overlap_takes_all_zero_iou_anchors() {
        let anchors = [[0.0, 0.0, 10.0, 10.0], [20.0, 0.0, 30.0, 10.0]];
        let gts = [[0.0, 0.0, 10.0, 10.0], [500.0, 500.0, 510.0, 510.0]];
        let r = MaxIouAssigner::default().assign(&anchors, &gts);
        assert_eq!(r.gt_inds, vec![1, 1]);
        // max_overlaps stay the max over GTs: 1 and 0.
        assert_eq!(r.max_overlaps, vec![1.0, 0.0]);
        // A zero-area GT triggers it too (its IoU with everything is 0).
        let r = MaxIouAssigner::default().assign(&anchors, &[[5.0, 5.0, 5.0, 5.0]]);
        assert_eq!(r.gt_inds, vec![0, 0]);
        // min_pos_iou > 0 avoids it: a1 back to negative, a0 back to GT0.
        let guarded = MaxIouAssigner {
            min_pos_iou: 1e-6,
            ..Default::default()
        };
        assert_eq!(guarded.assign(&anchors, &gts).gt_inds, vec![0, NEG]);
    }

    /// Invalid anchors take no part, not even as a GT's best anchor.
    /// GT = [0,0,10,10]; a0 = GT (IoU 1), a1 = [0,0,10,25] (0.4, ignore band).
    /// All valid: a0 positive, a1 ignored. a0 invalid: a1 is now the GT's best
    /// anchor → low-quality positive.
    #[test]
    fn invalid_anchors_excluded_from_low_quality_max() {
        let anchors = [tall(10.0), tall(25.0)];
        let gts = [tall(10.0)];
        let a = MaxIouAssigner::default();
        assert_eq!(
            a.assign_valid(&anchors, &[true, true], &gts).gt_inds,
            vec![0, IGN]
        );
        let r = a.assign_valid(&anchors, &[false, true], &gts);
        assert_eq!(r.gt_inds, vec![IGN, 0]);
        assert_eq!(r.max_overlaps, vec![0.0, 0.4]);
    }
}
