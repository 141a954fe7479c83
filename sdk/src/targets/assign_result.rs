//! The per-prior outcome of an assigner, and running an assigner on the valid
//! priors only.
//!
//! Encoding (differs from MMDetection, which uses `0` = negative, `-1` = ignore and
//! `i + 1` = GT `i`): here a non-negative value is the 0-based index of the assigned
//! ground-truth box, [`AssignResult::NEGATIVE`] is background and
//! [`AssignResult::IGNORE`] means "label_weight 0" — both anchors MaxIoU leaves in its
//! ignore band and priors that were never assigned because their valid flag is off.

/// Per-prior assignment: `gt_inds[i]` is the GT index of prior `i`, or
/// [`AssignResult::NEGATIVE`] / [`AssignResult::IGNORE`]; `max_overlaps[i]` is an
/// IoU whose exact meaning is assigner-specific (see each assigner's docs).
///
/// ```
/// use crosskd_sdk::targets::assign_result::AssignResult;
/// let r = AssignResult {
///     gt_inds: vec![1, AssignResult::NEGATIVE, AssignResult::IGNORE, 0],
///     max_overlaps: vec![0.7, 0.1, 0.45, 0.6],
/// };
/// assert_eq!(r.pos_inds(), vec![0, 3]);
/// assert_eq!(r.num_pos(), 2);
/// assert!(r.is_neg(1) && r.is_ignored(2));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AssignResult {
    /// Assigned GT index per prior (`>= 0`), or `NEGATIVE` / `IGNORE`.
    pub gt_inds: Vec<i32>,
    /// An IoU per prior (assigner-specific meaning; 0 for invalid priors).
    pub max_overlaps: Vec<f32>,
}

impl AssignResult {
    /// Background: label = `num_classes`, label_weight 1.
    pub const NEGATIVE: i32 = -1;
    /// Not trained on: label = `num_classes`, label_weight 0 (MaxIoU's ignore band,
    /// and priors whose valid flag is off).
    pub const IGNORE: i32 = -2;

    /// Every prior negative with overlap 0 (what MMDet returns when an image has no GT).
    pub fn all_negative(num_priors: usize) -> Self {
        Self {
            gt_inds: vec![Self::NEGATIVE; num_priors],
            max_overlaps: vec![0.0; num_priors],
        }
    }

    /// Number of priors.
    pub fn len(&self) -> usize {
        self.gt_inds.len()
    }

    /// True when there are no priors.
    pub fn is_empty(&self) -> bool {
        self.gt_inds.is_empty()
    }

    /// True if prior `i` is assigned to a GT.
    #[inline]
    pub fn is_pos(&self, i: usize) -> bool {
        self.gt_inds[i] >= 0
    }

    /// True if prior `i` is background (trained as negative).
    #[inline]
    pub fn is_neg(&self, i: usize) -> bool {
        self.gt_inds[i] == Self::NEGATIVE
    }

    /// True if prior `i` is ignored (label_weight 0).
    #[inline]
    pub fn is_ignored(&self, i: usize) -> bool {
        self.gt_inds[i] == Self::IGNORE
    }

    /// The GT index assigned to prior `i`, if any.
    #[inline]
    pub fn assigned_gt(&self, i: usize) -> Option<usize> {
        usize::try_from(self.gt_inds[i]).ok()
    }

    /// Indices of positive priors, ascending (MMDet's sampler also sorts them).
    pub fn pos_inds(&self) -> Vec<usize> {
        (0..self.len()).filter(|&i| self.is_pos(i)).collect()
    }

    /// Indices of negative priors, ascending.
    pub fn neg_inds(&self) -> Vec<usize> {
        (0..self.len()).filter(|&i| self.is_neg(i)).collect()
    }

    /// Number of positive priors.
    pub fn num_pos(&self) -> usize {
        self.gt_inds.iter().filter(|&&g| g >= 0).count()
    }
}

/// Indices of the priors whose valid flag is set, ascending.
pub fn valid_indices(valid: &[bool]) -> Vec<usize> {
    valid
        .iter()
        .enumerate()
        .filter_map(|(i, &v)| v.then_some(i))
        .collect()
}

/// Number of valid priors in each level (`num_level_priors` are the full,
/// unfiltered level sizes in flattening order).
///
/// MMDet's `get_num_level_anchors_inside`: after filtering, ATSS must be given these
/// counts, not the original ones, or its per-level top-k windows slide across levels.
///
/// # Panics
/// If `num_level_priors` does not sum to `valid.len()`.
pub fn num_valid_per_level(valid: &[bool], num_level_priors: &[usize]) -> Vec<usize> {
    assert_eq!(
        num_level_priors.iter().sum::<usize>(),
        valid.len(),
        "level sizes must sum to the number of priors"
    );
    let mut start = 0;
    num_level_priors
        .iter()
        .map(|&n| {
            let c = valid[start..start + n].iter().filter(|&&v| v).count();
            start += n;
            c
        })
        .collect()
}

/// Run an assigner on the valid priors only and scatter its result back to all
/// priors; invalid priors become [`AssignResult::IGNORE`] with overlap 0.
///
/// `assign` receives the ascending indices of the valid priors and must return a
/// result with one entry per such index (in the same order). This mirrors MMDet,
/// which slices anchors with `inside_flags` *before* assignment and `unmap`s the
/// targets afterwards (invalid anchors: background label, label_weight 0): an
/// invalid anchor can therefore never take part in ATSS's top-k or in MaxIoU's
/// per-GT maximum.
///
/// ```
/// use crosskd_sdk::targets::assign_result::{assign_with_valid_flags, AssignResult};
/// let valid = [true, false, true];
/// let r = assign_with_valid_flags(&valid, |idx| {
///     assert_eq!(idx, &[0, 2]);
///     AssignResult { gt_inds: vec![0, AssignResult::NEGATIVE], max_overlaps: vec![0.9, 0.0] }
/// });
/// assert_eq!(r.gt_inds, vec![0, AssignResult::IGNORE, AssignResult::NEGATIVE]);
/// ```
///
/// # Panics
/// If the sub-result does not have one entry per valid prior.
pub fn assign_with_valid_flags(
    valid: &[bool],
    assign: impl FnOnce(&[usize]) -> AssignResult,
) -> AssignResult {
    let idx = valid_indices(valid);
    let sub = assign(&idx);
    assert_eq!(sub.gt_inds.len(), idx.len(), "sub-result length (gt_inds)");
    assert_eq!(
        sub.max_overlaps.len(),
        idx.len(),
        "sub-result length (max_overlaps)"
    );
    let mut out = AssignResult {
        gt_inds: vec![AssignResult::IGNORE; valid.len()],
        max_overlaps: vec![0.0; valid.len()],
    };
    for (k, &i) in idx.iter().enumerate() {
        out.gt_inds[i] = sub.gt_inds[k];
        out.max_overlaps[i] = sub.max_overlaps[k];
    }
    out
}

/// Gather `items[idx]` into a new vector (helper for assigning valid subsets).
pub(crate) fn gather<T: Copy>(items: &[T], idx: &[usize]) -> Vec<T> {
    idx.iter().map(|&i| items[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_on_mixed_result() {
        let r = AssignResult {
            gt_inds: vec![AssignResult::IGNORE, 2, AssignResult::NEGATIVE, 0, 0],
            max_overlaps: vec![0.45, 0.8, 0.1, 0.6, 0.5],
        };
        assert_eq!(r.len(), 5);
        assert_eq!(r.pos_inds(), vec![1, 3, 4]);
        assert_eq!(r.neg_inds(), vec![2]);
        assert_eq!(r.num_pos(), 3);
        assert!(r.is_pos(1) && !r.is_pos(0) && !r.is_pos(2));
        assert!(r.is_ignored(0) && r.is_neg(2));
        assert_eq!(r.assigned_gt(1), Some(2));
        assert_eq!(r.assigned_gt(0), None);
        assert_eq!(r.assigned_gt(2), None);
    }

    #[test]
    fn all_negative_and_empty() {
        let r = AssignResult::all_negative(3);
        assert_eq!(r.gt_inds, vec![-1, -1, -1]);
        assert_eq!(r.max_overlaps, vec![0.0; 3]);
        assert_eq!(r.num_pos(), 0);
        assert!(AssignResult::all_negative(0).is_empty());
    }

    #[test]
    fn valid_counts_per_level() {
        // level sizes 3, 2, 4: valid flags T F T | F F | T T F T → 2, 0, 3.
        let valid = [true, false, true, false, false, true, true, false, true];
        assert_eq!(num_valid_per_level(&valid, &[3, 2, 4]), vec![2, 0, 3]);
        assert_eq!(valid_indices(&valid), vec![0, 2, 5, 6, 8]);
    }

    #[test]
    #[should_panic(expected = "level sizes")]
    fn valid_counts_reject_bad_levels() {
        num_valid_per_level(&[true, true], &[1]);
    }

    #[test]
    fn scatter_back_marks_invalid_ignored() {
        let valid = [false, true, true, false, true];
        let r = assign_with_valid_flags(&valid, |idx| {
            assert_eq!(idx, &[1, 2, 4]);
            AssignResult {
                gt_inds: vec![AssignResult::NEGATIVE, 1, AssignResult::IGNORE],
                max_overlaps: vec![0.1, 0.7, 0.45],
            }
        });
        assert_eq!(r.gt_inds, vec![-2, -1, 1, -2, -2]);
        assert_eq!(r.max_overlaps, vec![0.0, 0.1, 0.7, 0.0, 0.45]);
    }

    #[test]
    #[should_panic(expected = "sub-result length")]
    fn scatter_back_rejects_wrong_length() {
        assign_with_valid_flags(&[true, true], |_| AssignResult::all_negative(1));
    }
}
