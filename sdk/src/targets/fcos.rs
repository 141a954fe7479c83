//! FCOS point targets, as MMDetection's `FCOSHead.get_targets` for one image.
//!
//! A point is a candidate for a GT when it lies strictly inside it (with centre
//! sampling: strictly inside the GT ∩ a square of half-side `radius · stride`
//! around the GT centre) and the largest of its distances `(l, t, r, b)` to the GT
//! sides is within its level's regress range `[lo, hi]` (both ends inclusive).
//! Among its candidates a point takes the GT with the smallest area (ties: lowest
//! GT index); points without candidate are background (label `num_classes`).

use crate::boxes::BBox;

/// MMDet's `INF` for "not a candidate" areas.
const INF: f32 = 1e8;

/// FCOS target settings; [`Default`] is the stock `fcos_r50-caffe_fpn_gn-head`
/// configuration (strides 8..128, no centre sampling, no box normalisation).
#[derive(Debug, Clone, PartialEq)]
pub struct FcosTargetConfig {
    /// Stride of each level.
    pub strides: Vec<f32>,
    /// `(lo, hi)` range of `max(l, t, r, b)` per level, both ends inclusive.
    pub regress_ranges: Vec<(f32, f32)>,
    /// Restrict candidates to a square of half-side `radius · stride` around the GT
    /// centre (clipped to the GT).
    pub center_sampling: bool,
    /// The `radius` of centre sampling, in strides.
    pub center_sample_radius: f32,
    /// Divide the box targets by the level's stride.
    pub norm_on_bbox: bool,
    /// Number of foreground classes = the background label.
    pub num_classes: usize,
}

impl Default for FcosTargetConfig {
    fn default() -> Self {
        Self {
            strides: vec![8.0, 16.0, 32.0, 64.0, 128.0],
            regress_ranges: vec![
                (-1.0, 64.0),
                (64.0, 128.0),
                (128.0, 256.0),
                (256.0, 512.0),
                (512.0, INF),
            ],
            center_sampling: false,
            center_sample_radius: 1.5,
            norm_on_bbox: false,
            num_classes: 80,
        }
    }
}

/// Targets for the points of one image, flattened level after level.
#[derive(Debug, Clone, PartialEq)]
pub struct FcosTargets {
    /// Class per point; `num_classes` for background.
    pub labels: Vec<usize>,
    /// `(l, t, r, b)` distances to the chosen GT (divided by the level's stride when
    /// `norm_on_bbox`). Background points hold the distances to GT 0 — MMDet's
    /// argmin over all-`INF` areas — and must not be used.
    pub bbox_targets: Vec<[f32; 4]>,
    /// Index of the chosen GT per point, `-1` for background.
    pub gt_inds: Vec<i32>,
    /// Number of points of each level (as given).
    pub num_points_per_level: Vec<usize>,
}

impl FcosTargets {
    /// Indices of foreground points, ascending.
    pub fn pos_inds(&self) -> Vec<usize> {
        (0..self.gt_inds.len())
            .filter(|&i| self.gt_inds[i] >= 0)
            .collect()
    }

    /// Number of foreground points.
    pub fn num_pos(&self) -> usize {
        self.gt_inds.iter().filter(|&&g| g >= 0).count()
    }
}

/// `(l, t, r, b)` distances from point `(x, y)` to the sides of `gt`
/// (`x − x1, y − y1, x2 − x, y2 − y`); all positive iff the point is strictly
/// inside. Also what the ATSS head's centerness target uses, with the anchor centre.
#[inline]
pub fn ltrb_from_point(x: f32, y: f32, gt: &BBox) -> [f32; 4] {
    [x - gt[0], y - gt[1], gt[2] - x, gt[3] - y]
}

/// Centerness target `sqrt(min(l,r)/max(l,r) · min(t,b)/max(t,b))` of a positive
/// point's `(l, t, r, b)` (1 at the GT centre, → 0 at its border). Meaningless for
/// non-positive distances (NaN or negative ratios), exactly as in MMDet, which only
/// evaluates it on positives. Scale-invariant, so normalised targets give the same.
///
/// ```
/// use crosskd_sdk::targets::fcos::centerness_target;
/// assert_eq!(centerness_target(&[5.0, 5.0, 5.0, 5.0]), 1.0);
/// // l/r = 1/4, t/b = 1 → sqrt(0.25) = 0.5
/// assert_eq!(centerness_target(&[2.0, 3.0, 8.0, 3.0]), 0.5);
/// ```
#[inline]
pub fn centerness_target(ltrb: &[f32; 4]) -> f32 {
    let [l, t, r, b] = *ltrb;
    ((l.min(r) / l.max(r)) * (t.min(b) / t.max(b))).sqrt()
}

/// FCOS targets for one image.
///
/// `points` holds the points of every level concatenated in level order
/// (`num_points_per_level[l]` of them in level `l`, e.g. from a grid with offset
/// 0.5: `((x + 0.5)·s, (y + 0.5)·s)`); `gt_labels[g] < cfg.num_classes`.
///
/// ```
/// use crosskd_sdk::targets::fcos::{fcos_targets, FcosTargetConfig};
/// let cfg = FcosTargetConfig {
///     strides: vec![8.0],
///     regress_ranges: vec![(-1.0, 64.0)],
///     ..Default::default()
/// };
/// // Two points of stride 8; the GT covers the first one only.
/// let t = fcos_targets(&cfg, &[[4.0, 4.0], [12.0, 4.0]], &[2], &[[0.0, 0.0, 8.0, 10.0]], &[7]);
/// assert_eq!(t.labels, vec![7, 80]);
/// assert_eq!(t.bbox_targets[0], [4.0, 4.0, 4.0, 6.0]);
/// ```
///
/// # Panics
/// If the level counts do not sum to `points.len()`, the per-level config is
/// shorter than `num_points_per_level`, the label and box counts differ, or a label
/// is `>= num_classes`.
pub fn fcos_targets(
    cfg: &FcosTargetConfig,
    points: &[[f32; 2]],
    num_points_per_level: &[usize],
    gt_boxes: &[BBox],
    gt_labels: &[usize],
) -> FcosTargets {
    assert_eq!(
        num_points_per_level.iter().sum::<usize>(),
        points.len(),
        "num_points_per_level must sum to the number of points"
    );
    let num_levels = num_points_per_level.len();
    assert!(
        cfg.strides.len() >= num_levels && cfg.regress_ranges.len() >= num_levels,
        "need a stride and a regress range per level"
    );
    assert_eq!(gt_boxes.len(), gt_labels.len(), "one label per GT box");
    assert!(
        gt_labels.iter().all(|&l| l < cfg.num_classes),
        "GT label >= num_classes"
    );

    let num_points = points.len();
    let mut out = FcosTargets {
        labels: vec![cfg.num_classes; num_points],
        bbox_targets: vec![[0.0; 4]; num_points],
        gt_inds: vec![-1; num_points],
        num_points_per_level: num_points_per_level.to_vec(),
    };
    if gt_boxes.is_empty() {
        // MMDet returns zero box targets when there is no GT.
        return out;
    }

    let areas: Vec<f32> = gt_boxes
        .iter()
        .map(|g| (g[2] - g[0]) * (g[3] - g[1]))
        .collect();
    let centers: Vec<(f32, f32)> = gt_boxes
        .iter()
        .map(|g| ((g[0] + g[2]) / 2.0, (g[1] + g[3]) / 2.0))
        .collect();

    let mut start = 0;
    for (lvl, &n) in num_points_per_level.iter().enumerate() {
        let stride = cfg.strides[lvl];
        let (lo, hi) = cfg.regress_ranges[lvl];
        let radius = stride * cfg.center_sample_radius;
        for (p, &[x, y]) in points.iter().enumerate().skip(start).take(n) {
            // Literal port of "areas of non-candidates = INF, then argmin": the
            // first minimum wins ties, and with no candidate argmin is GT 0.
            let mut best = (0usize, f32::INFINITY);
            for (g, gt) in gt_boxes.iter().enumerate() {
                let ltrb = ltrb_from_point(x, y, gt);
                let inside = if cfg.center_sampling {
                    let (cx, cy) = centers[g];
                    // The centre box clipped to the GT.
                    let cb = [
                        (cx - radius).max(gt[0]),
                        (cy - radius).max(gt[1]),
                        (cx + radius).min(gt[2]),
                        (cy + radius).min(gt[3]),
                    ];
                    min4(&ltrb_from_point(x, y, &cb)) > 0.0
                } else {
                    min4(&ltrb) > 0.0
                };
                let far = max4(&ltrb);
                let in_range = far >= lo && far <= hi;
                let cost = if inside && in_range { areas[g] } else { INF };
                if cost < best.1 {
                    best = (g, cost);
                }
            }
            let (g, cost) = best;
            // A candidate with area >= INF would read as background, as in MMDet.
            if cost != INF {
                out.labels[p] = gt_labels[g];
                out.gt_inds[p] = g as i32;
            }
            let mut t = ltrb_from_point(x, y, &gt_boxes[g]);
            if cfg.norm_on_bbox {
                for v in &mut t {
                    *v /= stride;
                }
            }
            out.bbox_targets[p] = t;
        }
        start += n;
    }
    out
}

#[inline]
fn min4(v: &[f32; 4]) -> f32 {
    v[0].min(v[1]).min(v[2]).min(v[3])
}

#[inline]
fn max4(v: &[f32; 4]) -> f32 {
    v[0].max(v[1]).max(v[2]).max(v[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    const BG: usize = 80;

    fn one_level(stride: f32, lo: f32, hi: f32) -> FcosTargetConfig {
        FcosTargetConfig {
            strides: vec![stride],
            regress_ranges: vec![(lo, hi)],
            ..Default::default()
        }
    }

    #[test]
    fn centerness_values() {
        assert_eq!(centerness_target(&[5.0, 5.0, 5.0, 5.0]), 1.0);
        // l/r = 1/3, t/b = 3/4 → sqrt(1/4) = 0.5
        assert!((centerness_target(&[1.0, 3.0, 3.0, 4.0]) - 0.5).abs() < 1e-7);
        // Symmetric in l↔r and t↔b, and scale-invariant.
        assert_eq!(
            centerness_target(&[3.0, 4.0, 1.0, 3.0]),
            centerness_target(&[1.0, 3.0, 3.0, 4.0])
        );
        assert!((centerness_target(&[0.125, 0.375, 0.375, 0.5]) - 0.5).abs() < 1e-7);
        // On the border → 0.
        assert_eq!(centerness_target(&[0.0, 3.0, 3.0, 4.0]), 0.0);
    }

    #[test]
    fn no_gt_is_all_background() {
        let t = fcos_targets(
            &one_level(8.0, -1.0, 64.0),
            &[[4.0, 4.0], [12.0, 4.0]],
            &[2],
            &[],
            &[],
        );
        assert_eq!(t.labels, vec![BG, BG]);
        assert_eq!(t.bbox_targets, vec![[0.0; 4]; 2]);
        assert_eq!(t.gt_inds, vec![-1, -1]);
        assert_eq!(t.num_pos(), 0);
    }

    /// Regress range bounds are inclusive on both ends, and the strict `> 0` inside
    /// test rejects points on the GT border.
    /// Point (4, 4); range [4, 6]:
    /// * GT [0,0,8,8]: ltrb (4,4,4,4), max 4 = lo → candidate.
    /// * GT [0,0,10,8]: (4,4,6,4), max 6 = hi → candidate.
    /// * GT [0,0,10.5,8]: max 6.5 > hi → not.
    /// * GT [-2,0,8,8]: (6,4,4,4), max 6 = hi → candidate; GT [-2.5,0,8,8]: 6.5 → not.
    /// * GT [4,0,12,8]: l = 0 → on the border → not inside.
    /// * range [4.5, 6]: GT [0,0,8,8] (max 4) is below lo → not.
    #[test]
    fn regress_range_bounds_are_inclusive() {
        let p = [[4.0, 4.0]];
        let cfg = one_level(8.0, 4.0, 6.0);
        let label =
            |gt: BBox, cfg: &FcosTargetConfig| fcos_targets(cfg, &p, &[1], &[gt], &[3]).labels[0];
        assert_eq!(label([0.0, 0.0, 8.0, 8.0], &cfg), 3);
        assert_eq!(label([0.0, 0.0, 10.0, 8.0], &cfg), 3);
        assert_eq!(label([0.0, 0.0, 10.5, 8.0], &cfg), BG);
        assert_eq!(label([-2.0, 0.0, 8.0, 8.0], &cfg), 3);
        assert_eq!(label([-2.5, 0.0, 8.0, 8.0], &cfg), BG);
        assert_eq!(label([4.0, 0.0, 12.0, 8.0], &cfg), BG);
        assert_eq!(label([0.0, 0.0, 8.0, 8.0], &one_level(8.0, 4.5, 6.0)), BG);
    }

    /// The same GT goes to different levels by its extent: GT [0,0,100,40].
    /// Level 0 (stride 8, range (-1,64]) point (36,20): ltrb (36,20,64,20) → max 64
    ///   = hi → positive on level 0.
    /// Level 0 point (28,20): (28,20,72,20) → 72 > 64 → background.
    /// Level 1 (stride 16, range [64,128]) point (24,24): (24,24,76,16) → 76 → positive.
    /// Level 1 point (40,24): (40,24,60,16) → 60 < 64 → background.
    #[test]
    fn levels_split_by_regress_range() {
        let cfg = FcosTargetConfig::default();
        let points = [[36.0, 20.0], [28.0, 20.0], [24.0, 24.0], [40.0, 24.0]];
        let t = fcos_targets(
            &cfg,
            &points,
            &[2, 2, 0, 0, 0],
            &[[0.0, 0.0, 100.0, 40.0]],
            &[5],
        );
        assert_eq!(t.labels, vec![5, BG, 5, BG]);
        assert_eq!(t.gt_inds, vec![0, -1, 0, -1]);
        assert_eq!(t.pos_inds(), vec![0, 2]);
        assert_eq!(t.bbox_targets[2], [24.0, 24.0, 76.0, 16.0]);
        // Background points carry the distances to GT 0 (MMDet's argmin of all-INF).
        assert_eq!(t.bbox_targets[1], [28.0, 20.0, 72.0, 20.0]);
    }

    /// Point (5, 5) inside three GTs: GT0 [0,0,20,20] (area 400), GT1 [0,0,10,20]
    /// (200), GT2 [0,0,20,10] (200). Minimal area 200, tie GT1/GT2 → GT1.
    /// Dropping GT1 → GT2. A smaller GT outside the range does not win:
    /// GT3 [4,4,6,6] (area 4) has max distance 1 < lo = 2 → not a candidate.
    #[test]
    fn min_area_wins_ties_lowest_index() {
        let cfg = one_level(8.0, 2.0, 64.0);
        let p = [[5.0, 5.0]];
        let gts = [
            [0.0, 0.0, 20.0, 20.0],
            [0.0, 0.0, 10.0, 20.0],
            [0.0, 0.0, 20.0, 10.0],
            [4.0, 4.0, 6.0, 6.0],
        ];
        let labels = [10, 11, 12, 13];
        let t = fcos_targets(&cfg, &p, &[1], &gts, &labels);
        assert_eq!((t.labels[0], t.gt_inds[0]), (11, 1));
        assert_eq!(t.bbox_targets[0], [5.0, 5.0, 5.0, 15.0]);
        let t = fcos_targets(&cfg, &p, &[1], &[gts[0], gts[2], gts[3]], &[10, 12, 13]);
        assert_eq!((t.labels[0], t.gt_inds[0]), (12, 1));
        // With lo = -1 the tiny GT3 is a candidate and wins on area.
        let t = fcos_targets(&one_level(8.0, -1.0, 64.0), &p, &[1], &gts, &labels);
        assert_eq!(t.labels[0], 13);
    }

    /// Centre sampling shrinks the candidate region to the GT ∩ a square of
    /// half-side 1.5·stride around the GT centre.
    /// GT [0,0,100,20], centre (50,10); stride 8 → radius 12 → centre box
    /// [38,-2,62,22] clipped to the GT → [38,0,62,20]. Range (-1, 1e8).
    /// * (44,10): inside the centre box → positive (targets from the GT: 44,10,56,10).
    /// * (36,10): inside the GT but left of 38 → background with sampling,
    ///   positive without.
    /// * (61.9,10): inside (62 − 61.9 > 0) → positive; (62,10): on the edge → not.
    /// * (50,19.5): inside (clipped bottom 20) → positive.
    #[test]
    fn centre_sampling_shrinks_candidates() {
        let gts = [[0.0, 0.0, 100.0, 20.0]];
        let points = [
            [44.0, 10.0],
            [36.0, 10.0],
            [61.9, 10.0],
            [62.0, 10.0],
            [50.0, 19.5],
        ];
        let plain = one_level(8.0, -1.0, 1e8);
        let cs = FcosTargetConfig {
            center_sampling: true,
            ..plain.clone()
        };
        let t = fcos_targets(&cs, &points, &[5], &gts, &[0]);
        assert_eq!(t.labels, vec![0, BG, 0, BG, 0]);
        assert_eq!(t.bbox_targets[0], [44.0, 10.0, 56.0, 10.0]);
        let t = fcos_targets(&plain, &points, &[5], &gts, &[0]);
        assert_eq!(t.labels, vec![0; 5]);

        // The radius scales with the level's stride: at stride 16 (radius 24, box
        // [26,0,74,20]) the point (36,10) is a candidate again.
        let cs16 = FcosTargetConfig {
            strides: vec![16.0],
            ..cs
        };
        assert_eq!(
            fcos_targets(&cs16, &points[1..2], &[1], &gts, &[0]).labels,
            vec![0]
        );
    }

    /// norm_on_bbox divides the targets by the level stride; the regress range is
    /// still checked on pixel distances. GT [0,0,64,64]; level 0 stride 8 point
    /// (20,12): ltrb (20,12,44,52) → /8 = (2.5,1.5,5.5,6.5); level 1 stride 16 point
    /// (24,40): (24,40,40,24) pixel max 40 is outside level 1's [64,128] range →
    /// background, but its (GT 0) target is normalised too: (1.5,2.5,2.5,1.5).
    #[test]
    fn norm_on_bbox_divides_by_level_stride() {
        let cfg = FcosTargetConfig {
            norm_on_bbox: true,
            ..Default::default()
        };
        let t = fcos_targets(
            &cfg,
            &[[20.0, 12.0], [24.0, 40.0]],
            &[1, 1, 0, 0, 0],
            &[[0.0, 0.0, 64.0, 64.0]],
            &[1],
        );
        assert_eq!(t.labels, vec![1, BG]);
        assert_eq!(
            t.bbox_targets,
            vec![[2.5, 1.5, 5.5, 6.5], [1.5, 2.5, 2.5, 1.5]]
        );
        // Centerness is unchanged by the normalisation.
        let raw = ltrb_from_point(20.0, 12.0, &[0.0, 0.0, 64.0, 64.0]);
        assert!((centerness_target(&raw) - centerness_target(&t.bbox_targets[0])).abs() < 1e-7);
    }

    #[test]
    #[should_panic(expected = "num_points_per_level")]
    fn level_counts_must_cover_points() {
        fcos_targets(&FcosTargetConfig::default(), &[[0.0, 0.0]], &[2], &[], &[]);
    }

    #[test]
    #[should_panic(expected = "num_classes")]
    fn labels_must_be_foreground() {
        fcos_targets(
            &one_level(8.0, -1.0, 64.0),
            &[[4.0, 4.0]],
            &[1],
            &[[0.0, 0.0, 8.0, 8.0]],
            &[80],
        );
    }
}
