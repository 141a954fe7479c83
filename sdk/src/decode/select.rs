//! Score threshold and per-level top-k over `(prior, class)` pairs (MMDetection's
//! `filter_scores_and_topk`).

/// A (prior, class) pair that passed the score threshold and the per-level top-k.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// Prior index `(y * W + x) * A + a` within its level.
    pub prior: usize,
    /// Class index `c`.
    pub class_id: usize,
    /// `sigmoid(logit)`.
    pub score: f32,
}

/// Logistic sigmoid `1 / (1 + exp(-x))` in `f32`.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Logits below this can never pass `sigmoid(x) > score_thr` (a safe margin of 0.01
/// in logit space, far above f32 rounding); `-inf` when no safe cut-off exists.
fn logit_cutoff(score_thr: f32) -> f32 {
    if score_thr > 0.0 && score_thr <= 0.99 {
        let t = score_thr as f64;
        ((t / (1.0 - t)).ln() - 0.01) as f32
    } else {
        f32::NEG_INFINITY
    }
}

/// MMDetection's `filter_scores_and_topk` on one level: scores `sigmoid(cls)`,
/// keep `(prior, class)` pairs with score `> score_thr`, then the `nms_pre` best.
///
/// `cls_score` is `(A * C, hw)` channel-major (see [`LevelOutput`](super::LevelOutput)); the caller
/// checks its length. Sorted by descending score; equal scores keep the
/// flattened `(prior, class)` row-major order (`prior * C + class` ascending),
/// which is the order MMDetection's `nonzero` lists them in.
///
/// ```
/// use crosskd_sdk::decode::select_candidates;
/// // One anchor, two classes, a 1×2 map: logits per class, then per location.
/// // sigmoid(2) = 0.881, sigmoid(0) = 0.5, sigmoid(-3) = 0.047.
/// let cls_score = [2.0, -3.0, /* class 1: */ 0.0, 2.0];
/// let c = select_candidates(&cls_score, 1, 2, 2, 0.3, 1000);
/// let picked: Vec<_> = c.iter().map(|c| (c.prior, c.class_id)).collect();
/// // Ties keep (prior, class) order; 0.047 is under the threshold.
/// assert_eq!(picked, [(0, 0), (1, 1), (0, 1)]);
/// ```
pub fn select_candidates(
    cls_score: &[f32],
    num_anchors: usize,
    num_classes: usize,
    hw: usize,
    score_thr: f32,
    nms_pre: usize,
) -> Vec<Candidate> {
    let cutoff = logit_cutoff(score_thr);
    let mut cands = Vec::new();
    for (ch, row) in cls_score
        .chunks_exact(hw.max(1))
        .take(num_anchors * num_classes)
        .enumerate()
    {
        let (a, class_id) = (ch / num_classes, ch % num_classes);
        for (cell, &logit) in row.iter().enumerate() {
            if logit < cutoff {
                continue;
            }
            let score = sigmoid(logit);
            if score > score_thr {
                cands.push(Candidate {
                    prior: cell * num_anchors + a,
                    class_id,
                    score,
                });
            }
        }
    }
    // Scores passed `> score_thr`, so none is NaN: total_cmp is the numeric order.
    let order = |x: &Candidate, y: &Candidate| {
        y.score
            .total_cmp(&x.score)
            .then((x.prior * num_classes + x.class_id).cmp(&(y.prior * num_classes + y.class_id)))
    };
    if cands.len() > nms_pre {
        if nms_pre > 0 {
            cands.select_nth_unstable_by(nms_pre - 1, order);
        }
        cands.truncate(nms_pre);
    }
    cands.sort_unstable_by(order);
    cands
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_candidates_thresholds_sorts_and_truncates() {
        // 1 anchor, 2 classes, 3 cells: channel-major [class0 cells.., class1 cells..].
        // sigmoid(0) = 0.5, sigmoid(-3) = 0.0474 < 0.05, sigmoid(2) = 0.8808, sigmoid(1) = 0.7311.
        let cls = [0.0, -3.0, 2.0, /* class 1: */ 1.0, 0.0, -10.0];
        let c = select_candidates(&cls, 1, 2, 3, 0.05, 1000);
        let got: Vec<(usize, usize)> = c.iter().map(|c| (c.prior, c.class_id)).collect();
        // Order: (2,0) 0.881, (0,1) 0.731, then the two 0.5 ties in flattened order:
        // (0,0) → flat 0, (1,1) → flat 3.
        assert_eq!(got, vec![(2, 0), (0, 1), (0, 0), (1, 1)]);
        assert!((c[0].score - 0.880_797).abs() < 1e-6);
        // Top-2 keeps the two best.
        let c = select_candidates(&cls, 1, 2, 3, 0.05, 2);
        assert_eq!(
            c.iter().map(|c| (c.prior, c.class_id)).collect::<Vec<_>>(),
            vec![(2, 0), (0, 1)]
        );
        // nms_pre 0 keeps nothing (as MMDetection's topk of 0).
        assert!(select_candidates(&cls, 1, 2, 3, 0.05, 0).is_empty());
    }

    #[test]
    fn select_candidates_maps_anchor_channels_to_priors() {
        // 2 anchors, 1 class, 2 cells: channel a*1 + 0, prior = cell * 2 + a.
        let cls = [-9.0, -9.0, /* anchor 1: */ -9.0, 3.0];
        let c = select_candidates(&cls, 2, 1, 2, 0.05, 10);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].prior, c[0].class_id), (3, 0));
    }

    #[test]
    fn logit_prefilter_is_exact_at_the_threshold() {
        // logit(0.05) = ln(0.05/0.95) = -2.944439; logits a hair either side of it must
        // be classified by the sigmoid itself, not by the cut-off.
        let thr = 0.05f32;
        let l = (0.05f64 / 0.95).ln() as f32;
        for x in [l - 1e-3, l - 1e-5, l, l + 1e-5, l + 1e-3] {
            let kept = !select_candidates(&[x], 1, 1, 1, thr, 10).is_empty();
            assert_eq!(kept, sigmoid(x) > thr, "logit {x}");
        }
    }
}
