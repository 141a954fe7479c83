//! Point + `(left, top, right, bottom)` distances ↔ box (GFL, FCOS).
//!
//! ```
//! use crosskd_sdk::coders::{bbox2distance, distance2bbox};
//! let b = distance2bbox([10.0, 20.0], [1.0, 2.0, 3.0, 4.0], None);
//! assert_eq!(b, [9.0, 18.0, 13.0, 24.0]);
//! assert_eq!(bbox2distance([10.0, 20.0], &b, None), [1.0, 2.0, 3.0, 4.0]);
//! ```

use super::clip_to_shape;
use crate::boxes::BBox;

/// Margin MMDetection keeps below `max_dis` when clamping distances (`eps=0.1`),
/// so a GFL target stays strictly below the last bin (`reg_max - 0.1`).
pub const BBOX2DISTANCE_EPS: f32 = 0.1;

/// Box from a point and distances `[l, t, r, b]`:
/// `[px - l, py - t, px + r, py + b]`, then x clipped to `[0, w]` and y to `[0, h]`
/// when `max_shape = Some((h, w))`.
pub fn distance2bbox(point: [f32; 2], dist: [f32; 4], max_shape: Option<(f32, f32)>) -> BBox {
    let b = [
        point[0] - dist[0],
        point[1] - dist[1],
        point[0] + dist[2],
        point[1] + dist[3],
    ];
    clip_to_shape(b, max_shape)
}

/// Distances `[l, t, r, b]` from a point to the sides of `bbox`.
///
/// With `max_dist = Some(m)` every distance is clamped to `[0, m - 0.1]`
/// ([`BBOX2DISTANCE_EPS`], MMDetection's default); see [`bbox2distance_eps`].
pub fn bbox2distance(point: [f32; 2], bbox: &BBox, max_dist: Option<f32>) -> [f32; 4] {
    bbox2distance_eps(point, bbox, max_dist, BBOX2DISTANCE_EPS)
}

/// [`bbox2distance`] with an explicit margin: clamps to `[0, max_dist - eps]`.
///
/// The bound `max_dist - eps` is formed in `f64` and rounded once to `f32`, as
/// MMDetection subtracts Python floats before clamping an `f32` tensor.
pub fn bbox2distance_eps(
    point: [f32; 2],
    bbox: &BBox,
    max_dist: Option<f32>,
    eps: f32,
) -> [f32; 4] {
    let d = [
        point[0] - bbox[0],
        point[1] - bbox[1],
        bbox[2] - point[0],
        bbox[3] - point[1],
    ];
    match max_dist {
        None => d,
        Some(m) => {
            let hi = (m as f64 - eps as f64) as f32;
            d.map(|v| super::clamp_coord(v, hi))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance2bbox_by_hand_and_clipped() {
        // By hand: point (16, 8), l=20, t=4, r=10, b=30 → [-4, 4, 26, 38].
        let p = [16.0, 8.0];
        let d = [20.0, 4.0, 10.0, 30.0];
        assert_eq!(distance2bbox(p, d, None), [-4.0, 4.0, 26.0, 38.0]);
        // Image h=32, w=24: x into [0, 24], y into [0, 32] → [0, 4, 24, 32].
        assert_eq!(
            distance2bbox(p, d, Some((32.0, 24.0))),
            [0.0, 4.0, 24.0, 32.0]
        );
    }

    #[test]
    fn bbox2distance_inverts_distance2bbox() {
        let p = [33.5, 12.25];
        let d = [3.5, 0.25, 10.0, 7.75];
        let b = distance2bbox(p, d, None);
        // All values are dyadic, so the round trip is exact.
        assert_eq!(bbox2distance(p, &b, None), d);
    }

    #[test]
    fn bbox2distance_clamps_below_max_minus_eps() {
        // By hand: point (5, 5), box [-20, 4, 6, 30] → l=25, t=1, r=1, b=25.
        // max 16 → upper bound 16 - 0.1 = 15.9; a point outside the box on no side here.
        let d = bbox2distance([5.0, 5.0], &[-20.0, 4.0, 6.0, 30.0], Some(16.0));
        assert_eq!(d, [15.9, 1.0, 1.0, 15.9]);
        // A point outside the box gives a negative distance, clamped to 0.
        let d = bbox2distance([5.0, 5.0], &[6.0, 0.0, 9.0, 9.0], Some(16.0));
        assert_eq!(d, [0.0, 5.0, 4.0, 4.0]);
        // Explicit eps.
        let d = bbox2distance_eps([0.0, 0.0], &[-100.0, -1.0, 1.0, 1.0], Some(16.0), 0.01);
        assert_eq!(d[0], 15.99);
    }
}
