//! Adaptive Training Sample Selection (ATSS, Zhang et al. 2020), as MMDetection's
//! `ATSSAssigner` (used by the GFL and ATSS heads).
//!
//! For each GT:
//! 1. per pyramid level, take the `min(topk, level size)` anchors whose centres are
//!    closest (L2) to the GT centre — the candidates;
//! 2. threshold = mean + std (unbiased, `n - 1`) of the candidates' IoUs with the GT;
//! 3. a candidate is positive iff its IoU ≥ threshold and its centre lies inside the
//!    GT with `min(l, t, r, b) > 0.01`.
//!
//! An anchor positive for several GTs goes to the one with the highest IoU (ties:
//! lowest GT index). Everything else is negative; ATSS never ignores anchors (only
//! invalid anchors are ignored, see [`AtssAssigner::assign_valid`]).

use crate::boxes::{center, iou, BBox};

use super::assign_result::{assign_with_valid_flags, gather, num_valid_per_level, AssignResult};

/// Minimum distance of a positive anchor's centre from every GT side (pixels).
const MIN_CENTER_MARGIN: f32 = 0.01;

/// MMDetection's `ATSSAssigner` (`topk` = 9 for GFL and ATSS; no `alpha`, no
/// `ignore_iof_thr`).
///
/// ```
/// use crosskd_sdk::targets::{assign_result::AssignResult, atss::AtssAssigner};
/// // One level: two 8x8 anchors tiling the GT, one far away. topk 2 → candidates
/// // a0, a1 (both 4 px from the GT centre), IoUs 0.5 and 0.5 → thr 0.5 + 0 → both
/// // positive (their centres lie inside the GT).
/// let anchors = [[0.0, 0.0, 8.0, 8.0], [8.0, 0.0, 16.0, 8.0], [32.0, 0.0, 40.0, 8.0]];
/// let gts = [[0.0, 0.0, 16.0, 8.0]];
/// let r = AtssAssigner::new(2).assign(&anchors, &[3], &gts);
/// assert_eq!(r.gt_inds, vec![0, 0, AssignResult::NEGATIVE]);
/// assert_eq!(r.max_overlaps, vec![0.5, 0.5, 0.0]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtssAssigner {
    /// Candidates per level per GT.
    pub topk: usize,
}

impl Default for AtssAssigner {
    fn default() -> Self {
        Self { topk: 9 }
    }
}

impl AtssAssigner {
    /// An assigner keeping `topk` candidates per level per GT.
    pub fn new(topk: usize) -> Self {
        Self { topk }
    }

    /// Assign `anchors` (all valid; flattened level by level, `num_level_anchors[l]`
    /// in level `l`) to `gt_boxes`.
    ///
    /// `max_overlaps[i]` is the IoU of anchor `i` with its assigned GT and 0 for
    /// negatives. (MMDet stores `-1e8` for negatives; no head reads it.)
    ///
    /// Ties in the top-k distance ranking are broken by the lower anchor index
    /// (torch's `topk` makes no promise there; with the regular anchor grids used
    /// here equal distances to a GT centre are common, e.g. a centre halfway between
    /// two anchor columns, so a different implementation may pick a different
    /// candidate set at exactly that point).
    ///
    /// # Panics
    /// If `num_level_anchors` does not sum to `anchors.len()`.
    pub fn assign(
        &self,
        anchors: &[BBox],
        num_level_anchors: &[usize],
        gt_boxes: &[BBox],
    ) -> AssignResult {
        assert_eq!(
            num_level_anchors.iter().sum::<usize>(),
            anchors.len(),
            "num_level_anchors must sum to the number of anchors"
        );
        let num_priors = anchors.len();
        let num_gt = gt_boxes.len();
        if num_gt == 0 || num_priors == 0 {
            return AssignResult::all_negative(num_priors);
        }

        let prior_centers: Vec<(f32, f32)> = anchors.iter().map(center).collect();

        // best[p] = (gt, iou) of the best positive GT so far for prior p.
        let mut best: Vec<Option<(usize, f32)>> = vec![None; num_priors];
        let mut order: Vec<usize> = Vec::new();
        let mut dist: Vec<f32> = vec![0.0; num_priors];
        let mut candidates: Vec<usize> = Vec::new();
        let mut cand_ious: Vec<f32> = Vec::new();

        for (g, gt) in gt_boxes.iter().enumerate() {
            let (gcx, gcy) = center(gt);
            for (d, &(px, py)) in dist.iter_mut().zip(&prior_centers) {
                // Same f32 expression as MMDet: sqrt(dx² + dy²).
                let dx = px - gcx;
                let dy = py - gcy;
                *d = (dx * dx + dy * dy).sqrt();
            }

            candidates.clear();
            let mut start = 0;
            for &n in num_level_anchors {
                let k = self.topk.min(n);
                if k > 0 {
                    order.clear();
                    order.extend(start..start + n);
                    let cmp = |a: &usize, b: &usize| dist[*a].total_cmp(&dist[*b]).then(a.cmp(b));
                    if k < n {
                        order.select_nth_unstable_by(k - 1, cmp);
                    }
                    candidates.extend_from_slice(&order[..k]);
                }
                start += n;
            }

            // IoUs are only needed for the candidates (≤ topk · levels per GT).
            cand_ious.clear();
            cand_ious.extend(candidates.iter().map(|&p| iou(&anchors[p], gt)));
            let thr = mean_plus_unbiased_std(cand_ious.iter().copied());

            for (&p, &ov) in candidates.iter().zip(&cand_ious) {
                // A NaN threshold (a single candidate) fails this, like torch.
                let passes_iou = ov >= thr;
                if !passes_iou {
                    continue;
                }
                let (cx, cy) = prior_centers[p];
                let l = cx - gt[0];
                let t = cy - gt[1];
                let r = gt[2] - cx;
                let b = gt[3] - cy;
                if l.min(t).min(r).min(b) <= MIN_CENTER_MARGIN {
                    continue;
                }
                // GTs are visited in increasing order and only a strictly higher IoU
                // takes over, so IoU ties keep the lowest GT index (torch's max
                // returns the first maximum).
                match best[p] {
                    Some((_, cur)) if ov <= cur => {}
                    _ => best[p] = Some((g, ov)),
                }
            }
        }

        let mut out = AssignResult::all_negative(num_priors);
        for (p, b) in best.iter().enumerate() {
            if let Some((g, ov)) = *b {
                out.gt_inds[p] = g as i32;
                out.max_overlaps[p] = ov;
            }
        }
        out
    }

    /// Assign only the anchors whose `valid` flag is set (MMDet's `inside_flags`),
    /// with per-level top-k over the valid anchors of each level; invalid anchors
    /// come back as [`AssignResult::IGNORE`].
    ///
    /// ```
    /// use crosskd_sdk::targets::{assign_result::AssignResult, atss::AtssAssigner};
    /// let anchors = [[0.0, 0.0, 8.0, 8.0], [100.0, 100.0, 108.0, 108.0]];
    /// let r = AtssAssigner::default().assign_valid(&anchors, &[2], &[true, false], &[]);
    /// assert_eq!(r.gt_inds, vec![AssignResult::NEGATIVE, AssignResult::IGNORE]);
    /// ```
    ///
    /// # Panics
    /// If `valid.len() != anchors.len()` or the level sizes do not sum to it.
    pub fn assign_valid(
        &self,
        anchors: &[BBox],
        num_level_anchors: &[usize],
        valid: &[bool],
        gt_boxes: &[BBox],
    ) -> AssignResult {
        assert_eq!(valid.len(), anchors.len(), "one valid flag per anchor");
        let counts = num_valid_per_level(valid, num_level_anchors);
        assign_with_valid_flags(valid, |idx| {
            self.assign(&gather(anchors, idx), &counts, gt_boxes)
        })
    }
}

/// `mean + std` of `values` with the unbiased (`n - 1`) standard deviation, as
/// `torch.mean + torch.std` on f32 would give. Accumulated in f64 and rounded
/// to f32 separately before the (f32) addition, so the threshold can differ from
/// torch's float32 reductions by an ulp; an IoU landing exactly on it is the only
/// case where that matters.
///
/// One value → `n - 1 = 0` → NaN, exactly like `torch.std` of one element: no
/// candidate passes `iou >= NaN`, so that GT gets no positive. This happens only
/// when the whole pyramid offers a single candidate (`topk = 1` and one level, or
/// one anchor in total).
fn mean_plus_unbiased_std(values: impl Iterator<Item = f32> + Clone) -> f32 {
    let mut n = 0usize;
    let mut sum = 0.0f64;
    for v in values.clone() {
        n += 1;
        sum += v as f64;
    }
    if n == 0 {
        return f32::NAN;
    }
    let mean = sum / n as f64;
    let ss: f64 = values.map(|v| (v as f64 - mean).powi(2)).sum();
    let std = (ss / (n as f64 - 1.0)).sqrt();
    mean as f32 + std as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEG: i32 = AssignResult::NEGATIVE;
    const IGN: i32 = AssignResult::IGNORE;

    fn square(cx: f32, cy: f32, side: f32) -> BBox {
        let h = side / 2.0;
        [cx - h, cy - h, cx + h, cy + h]
    }

    #[test]
    fn unbiased_std_threshold() {
        // [0, 0.5, 1]: mean 0.5, unbiased var = (0.25 + 0 + 0.25) / 2 = 0.25 → std 0.5.
        // (The biased std would be sqrt(1/6) = 0.408.)
        let thr = mean_plus_unbiased_std([0.0f32, 0.5, 1.0].into_iter());
        assert!((thr - 1.0).abs() < 1e-7);
        // A single value → NaN (torch.std of one element).
        assert!(mean_plus_unbiased_std([0.3f32].into_iter()).is_nan());
        // Identical values → std 0, thr = the value exactly.
        assert_eq!(mean_plus_unbiased_std([0.3f32; 9].into_iter()), 0.3);
    }

    #[test]
    fn no_gt_or_no_anchor() {
        let anchors = [square(4.0, 4.0, 8.0), square(12.0, 4.0, 8.0)];
        let r = AtssAssigner::default().assign(&anchors, &[2], &[]);
        assert_eq!(r.gt_inds, vec![NEG, NEG]);
        assert_eq!(r.max_overlaps, vec![0.0, 0.0]);
        let r = AtssAssigner::default().assign(&[], &[0, 0], &[[0.0, 0.0, 1.0, 1.0]]);
        assert!(r.is_empty());
    }

    #[test]
    #[should_panic(expected = "num_level_anchors")]
    fn level_sizes_must_cover_anchors() {
        AtssAssigner::default().assign(&[square(4.0, 4.0, 8.0)], &[2], &[]);
    }

    /// topk 2; level 0: a0..a3 = 10x10 squares centred (5,5), (15,5), (25,5), (35,5);
    /// level 1: a4 = [0,0,20,20] (centre (10,10)), a5 = [20,0,40,20] (centre (30,10)).
    ///
    /// GT0 = [0,0,20,18], centre (10,9), area 360.
    ///   L0: a0, a1 at √41 = 6.4 (a2 at 15.5) → IoU 100/360 = 0.2778 each.
    ///   L1: a4 at 1 → IoU 360/400 = 0.9; a5 at 20.02 → 0.
    ///   mean 0.3639, unbiased std 0.3806 → thr 0.7445 → a4 passes (centre inside).
    /// GT1 = [0,0,20,20] (= a4), centre (10,10).
    ///   L0: a0, a1 at 7.07 → IoU 0.25 each; L1: a4 (0) → 1.0, a5 (20) → 0.
    ///   mean 0.375, unbiased std 0.4330 → thr 0.8080 → a4 passes.
    ///   a4 is positive for GT0 (0.9) and GT1 (1.0) → GT1, the higher IoU, although
    ///   it has the larger index.
    /// GT2 = [20,0,30,10] (= a2), centre (25,5).
    ///   L0: a2 (0), then a1 and a3 both at 10 → tie → a1 (lower index); IoUs 1, 0.
    ///   L1: a5 at 7.07 → IoU 100/400 = 0.25; a4 at 15.8 → 0.
    ///   {1, 0, 0.25, 0}: mean 0.3125, unbiased std 0.4732 → thr 0.7857 → a2.
    #[test]
    fn two_levels_three_gts_hand_checked() {
        let anchors = [
            square(5.0, 5.0, 10.0),
            square(15.0, 5.0, 10.0),
            square(25.0, 5.0, 10.0),
            square(35.0, 5.0, 10.0),
            [0.0, 0.0, 20.0, 20.0],
            [20.0, 0.0, 40.0, 20.0],
        ];
        let gts = [
            [0.0, 0.0, 20.0, 18.0],
            [0.0, 0.0, 20.0, 20.0],
            [20.0, 0.0, 30.0, 10.0],
        ];
        let r = AtssAssigner::new(2).assign(&anchors, &[4, 2], &gts);
        assert_eq!(r.gt_inds, vec![NEG, NEG, 2, NEG, 1, NEG]);
        assert_eq!(r.max_overlaps, vec![0.0, 0.0, 1.0, 0.0, 1.0, 0.0]);
        assert_eq!(r.pos_inds(), vec![2, 4]);

        // Without GT1, a4 falls back to GT0 with IoU 0.9.
        let r = AtssAssigner::new(2).assign(&anchors, &[4, 2], &[gts[0], gts[2]]);
        assert_eq!(r.gt_inds, vec![NEG, NEG, 1, NEG, 0, NEG]);
        assert!((r.max_overlaps[4] - 0.9).abs() < 1e-6);
    }

    /// Equal IoUs for two GTs: the lower GT index wins.
    /// One level, topk 2, 10x10 anchors centred x = 5, 15, 25, 35.
    /// GT0 = GT2 = [0,0,20,10]: candidates a0, a1 (distance 5), IoU 0.5 each → thr 0.5
    ///   → both positive with IoU 0.5.
    /// GT1 = [0,0,20,11] (area 220): same candidates, IoU 100/220 = 0.4545 each →
    ///   thr 0.4545 → both positive, but with a lower IoU than GT0/GT2.
    #[test]
    fn equal_iou_goes_to_lowest_gt_index() {
        let anchors: Vec<BBox> = (0..4)
            .map(|i| square(5.0 + 10.0 * i as f32, 5.0, 10.0))
            .collect();
        let gts = [
            [0.0, 0.0, 20.0, 10.0],
            [0.0, 0.0, 20.0, 11.0],
            [0.0, 0.0, 20.0, 10.0],
        ];
        let r = AtssAssigner::new(2).assign(&anchors, &[4], &gts);
        assert_eq!(r.gt_inds, vec![0, 0, NEG, NEG]);
        assert_eq!(r.max_overlaps, vec![0.5, 0.5, 0.0, 0.0]);

        // Taller GT first: it loses on IoU; the tie between the other two → index 1.
        let gts = [
            [0.0, 0.0, 20.0, 11.0],
            [0.0, 0.0, 20.0, 10.0],
            [0.0, 0.0, 20.0, 10.0],
        ];
        let r = AtssAssigner::new(2).assign(&anchors, &[4], &gts);
        assert_eq!(r.gt_inds, vec![1, 1, NEG, NEG]);
    }

    /// Two candidates with IoUs {1, 0}: the unbiased std is 1/√2, so thr = 0.5 +
    /// 0.7071 = 1.207 and even the anchor that matches the GT perfectly is rejected.
    /// (A biased std, 0.5, would give thr = 1.0 and a positive.)
    #[test]
    fn two_candidates_unbiased_std_rejects_perfect_match() {
        let anchors = [square(5.0, 5.0, 10.0), square(45.0, 5.0, 10.0)];
        let r = AtssAssigner::new(2).assign(&anchors, &[2], &[[0.0, 0.0, 10.0, 10.0]]);
        assert_eq!(r.gt_inds, vec![NEG, NEG]);
        // Same anchors split into two levels with topk 1: still two candidates.
        let r = AtssAssigner::new(1).assign(&anchors, &[1, 1], &[[0.0, 0.0, 10.0, 10.0]]);
        assert_eq!(r.gt_inds, vec![NEG, NEG]);
    }

    /// A single candidate in the whole pyramid: torch.std of one value is NaN, so the
    /// GT gets no positive even though its only candidate matches it perfectly.
    #[test]
    fn single_candidate_has_nan_threshold() {
        let gts = [[0.0, 0.0, 10.0, 10.0]];
        let anchors = [square(5.0, 5.0, 10.0), square(25.0, 5.0, 10.0)];
        let r = AtssAssigner::new(1).assign(&anchors, &[2], &gts);
        assert_eq!(r.gt_inds, vec![NEG, NEG]);
        // Two levels of one perfect anchor each: {1, 1} → thr 1 + 0 → both positive.
        let anchors = [square(5.0, 5.0, 10.0), square(5.0, 5.0, 10.0)];
        let r = AtssAssigner::new(1).assign(&anchors, &[1, 1], &gts);
        assert_eq!(r.gt_inds, vec![0, 0]);
    }

    /// The centre must be more than 0.01 px inside every GT side. Three identical
    /// anchors (side 100, centre (50, 50)) → identical IoUs → std 0 → all pass the
    /// IoU test; only the GT's left edge moves (l = 50 − x1).
    #[test]
    fn centre_margin_is_strictly_above_0_01() {
        let anchors = [square(50.0, 50.0, 100.0); 3];
        let a = AtssAssigner::new(3);
        // l = 0.005 → rejected.
        assert_eq!(
            a.assign(&anchors, &[3], &[[49.995, 0.0, 100.0, 100.0]])
                .num_pos(),
            0
        );
        // l = 0 → rejected (centre on the edge).
        assert_eq!(
            a.assign(&anchors, &[3], &[[50.0, 0.0, 100.0, 100.0]])
                .num_pos(),
            0
        );
        // l = 0.02 → accepted.
        let r = a.assign(&anchors, &[3], &[[49.98, 0.0, 100.0, 100.0]]);
        assert_eq!(r.gt_inds, vec![0, 0, 0]);
    }

    /// Invalid anchors are removed before top-k and the level sizes shrink.
    ///
    /// topk 2; level 0: 10x10 anchors centred (5,5), (15,5), (25,5); level 1: 20x20
    /// anchors centred (10,10) and (30,10). GT = [0,0,20,10], centre (10,5).
    /// * all valid: L0 → a0, a1 (distance 5, IoU 0.5 each); L1 → a3 (5, IoU 0.5),
    ///   a4 (20.6, IoU 0). {.5,.5,.5,0}: mean 0.375, std 0.25 → thr 0.625 → none.
    /// * a4 invalid: L1 has one valid anchor → candidates a0, a1, a3, all 0.5 → thr
    ///   0.5; a3's centre (10,10) is on the GT's bottom edge (b = 0) → a0, a1 only.
    /// * a0 invalid: L0 → a1 (5), a2 (15): {.5, 0}; L1: {.5, 0} → mean 0.25,
    ///   std 0.2887 → thr 0.539 → none.
    #[test]
    fn invalid_anchors_are_excluded_from_topk() {
        let anchors = [
            square(5.0, 5.0, 10.0),
            square(15.0, 5.0, 10.0),
            square(25.0, 5.0, 10.0),
            square(10.0, 10.0, 20.0),
            square(30.0, 10.0, 20.0),
        ];
        let gts = [[0.0, 0.0, 20.0, 10.0]];
        let a = AtssAssigner::new(2);
        let all = a.assign_valid(&anchors, &[3, 2], &[true; 5], &gts);
        assert_eq!(all.gt_inds, vec![NEG; 5]);
        assert_eq!(all, a.assign(&anchors, &[3, 2], &gts));

        let r = a.assign_valid(&anchors, &[3, 2], &[true, true, true, true, false], &gts);
        assert_eq!(r.gt_inds, vec![0, 0, NEG, NEG, IGN]);
        assert_eq!(r.max_overlaps, vec![0.5, 0.5, 0.0, 0.0, 0.0]);

        let r = a.assign_valid(&anchors, &[3, 2], &[false, true, true, true, true], &gts);
        assert_eq!(r.gt_inds, vec![IGN, NEG, NEG, NEG, NEG]);
    }

    /// A level smaller than topk contributes all its anchors, an empty level none.
    /// Level 0 empty, level 1 two anchors equal to the GT → {1, 1} → thr 1 → both.
    #[test]
    fn small_and_empty_levels() {
        let anchors = [square(5.0, 5.0, 10.0), square(5.0, 5.0, 10.0)];
        let r = AtssAssigner::default().assign(&anchors, &[0, 2], &[[0.0, 0.0, 10.0, 10.0]]);
        assert_eq!(r.gt_inds, vec![0, 0]);
        assert_eq!(r.max_overlaps, vec![1.0, 1.0]);
    }
}
