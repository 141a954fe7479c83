//! The `DeltaXYWH` box coder of RetinaNet and ATSS (MMDetection's
//! `DeltaXYWHBBoxCoder`, `add_ctr_clamp=False`, `clip_border=True`).
//!
//! ```
//! use crosskd_sdk::coders::DeltaXywhCoder;
//! let coder = DeltaXywhCoder::default();
//! let anchor = [0.0, 0.0, 10.0, 20.0];
//! let gt = [2.0, 4.0, 12.0, 24.0];
//! let delta = coder.encode(&anchor, &gt);
//! assert_eq!(delta, [0.2, 0.2, 0.0, 0.0]);
//! assert_eq!(coder.decode(&anchor, &delta, None), gt);
//! ```

use serde::{Deserialize, Serialize};

use super::clip_to_shape;
use crate::boxes::BBox;

/// MMDetection's default `wh_ratio_clip` (16 / 1000): decoded `dw, dh` are clamped to
/// `±|ln(16 / 1000)|` ≈ ±4.135.
pub const DEFAULT_WH_RATIO_CLIP: f64 = 16.0 / 1000.0;

/// Encodes a box relative to an anchor as normalised `(dx, dy, dw, dh)` and back.
///
/// Widths are `x2 - x1` (no `+1`). `encode`: `dx = (gx - px) / pw`,
/// `dy = (gy - py) / ph`, `dw = ln(gw / pw)`, `dh = ln(gh / ph)`, then
/// `(d - means) / stds`. `decode` inverts it, clamping `dw, dh` to `±max_ratio`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaXywhCoder {
    /// Target means subtracted after encoding.
    pub means: [f32; 4],
    /// Target stds divided after encoding.
    pub stds: [f32; 4],
    /// Bound on `|dw|`, `|dh|` when decoding.
    pub max_ratio: f32,
}

impl Default for DeltaXywhCoder {
    /// RetinaNet's coder: means 0, stds 1, `max_ratio = |ln(16/1000)|`.
    fn default() -> Self {
        Self::new([0.0; 4], [1.0; 4])
    }
}

impl DeltaXywhCoder {
    /// A coder with the given normalisation and the default `max_ratio`.
    pub fn new(means: [f32; 4], stds: [f32; 4]) -> Self {
        Self {
            means,
            stds,
            max_ratio: DEFAULT_WH_RATIO_CLIP.ln().abs() as f32,
        }
    }

    /// ATSS's coder: means 0, stds `[0.1, 0.1, 0.2, 0.2]`.
    pub fn atss() -> Self {
        Self::new([0.0; 4], [0.1, 0.1, 0.2, 0.2])
    }

    /// Normalised deltas that move `anchor` onto `gt`.
    pub fn encode(&self, anchor: &BBox, gt: &BBox) -> [f32; 4] {
        let px = (anchor[0] + anchor[2]) * 0.5;
        let py = (anchor[1] + anchor[3]) * 0.5;
        let pw = anchor[2] - anchor[0];
        let ph = anchor[3] - anchor[1];
        let gx = (gt[0] + gt[2]) * 0.5;
        let gy = (gt[1] + gt[3]) * 0.5;
        let gw = gt[2] - gt[0];
        let gh = gt[3] - gt[1];
        let d = [
            (gx - px) / pw,
            (gy - py) / ph,
            (gw / pw).ln(),
            (gh / ph).ln(),
        ];
        std::array::from_fn(|k| (d[k] - self.means[k]) / self.stds[k])
    }

    /// The box that `delta` describes relative to `anchor`; with
    /// `max_shape = Some((h, w))` x is clipped to `[0, w]` and y to `[0, h]`.
    pub fn decode(&self, anchor: &BBox, delta: &[f32; 4], max_shape: Option<(f32, f32)>) -> BBox {
        let d: [f32; 4] = std::array::from_fn(|k| delta[k] * self.stds[k] + self.means[k]);
        let px = (anchor[0] + anchor[2]) * 0.5;
        let py = (anchor[1] + anchor[3]) * 0.5;
        let pw = anchor[2] - anchor[0];
        let ph = anchor[3] - anchor[1];
        let dw = clamp_abs(d[2], self.max_ratio);
        let dh = clamp_abs(d[3], self.max_ratio);
        let gx = px + pw * d[0];
        let gy = py + ph * d[1];
        let gw = pw * dw.exp();
        let gh = ph * dh.exp();
        let b = [gx - gw * 0.5, gy - gh * 0.5, gx + gw * 0.5, gy + gh * 0.5];
        clip_to_shape(b, max_shape)
    }
}

/// `min(max(v, -m), m)` like `torch.clamp`; never panics (unlike `f32::clamp` on a
/// NaN or negative bound).
#[inline]
fn clamp_abs(v: f32, m: f32) -> f32 {
    let v = if v < -m { -m } else { v };
    if v > m {
        m
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32; 4], b: &[f64; 4], tol: f64) -> bool {
        a.iter().zip(b).all(|(x, y)| (*x as f64 - y).abs() < tol)
    }

    #[test]
    fn default_max_ratio_is_ln_1000_over_16() {
        // ln(1000/16) = ln(62.5) = 4.135166556742356.
        assert!((DeltaXywhCoder::default().max_ratio as f64 - 4.135166556742356).abs() < 1e-6);
    }

    #[test]
    fn encode_by_hand_with_atss_stds() {
        // Anchor [0,0,8,16]: centre (4, 8), size 8 x 16.
        // GT [2,4,18,20]: centre (10, 12), size 16 x 16.
        // dx = 6/8 = 0.75, dy = 4/16 = 0.25, dw = ln 2, dh = ln 1 = 0;
        // / stds [0.1, 0.1, 0.2, 0.2] → [7.5, 2.5, ln2 / 0.2 = 3.4657359, 0].
        let c = DeltaXywhCoder::atss();
        let d = c.encode(&[0.0, 0.0, 8.0, 16.0], &[2.0, 4.0, 18.0, 20.0]);
        assert!(close(&d, &[7.5, 2.5, 3.4657359, 0.0], 1e-5), "{d:?}");
    }

    #[test]
    fn decode_by_hand() {
        // Anchor [10,10,30,50]: centre (20, 30), size 20 x 40.
        // delta (0.5, -0.25, ln 1.5, ln 0.5), stds 1:
        // gx = 20 + 0.5*20 = 30, gy = 30 - 0.25*40 = 20, gw = 30, gh = 20
        // → [15, 10, 45, 30].
        let c = DeltaXywhCoder::default();
        let b = c.decode(
            &[10.0, 10.0, 30.0, 50.0],
            &[0.5, -0.25, 1.5f32.ln(), 0.5f32.ln()],
            None,
        );
        assert!(close(&b, &[15.0, 10.0, 45.0, 30.0], 1e-4), "{b:?}");
        // Clipped to h=25, w=40 → [15, 10, 40, 25].
        let b = c.decode(
            &[10.0, 10.0, 30.0, 50.0],
            &[0.5, -0.25, 1.5f32.ln(), 0.5f32.ln()],
            Some((25.0, 40.0)),
        );
        assert!(close(&b, &[15.0, 10.0, 40.0, 25.0], 1e-4), "{b:?}");
    }

    #[test]
    fn decode_clamps_huge_size_deltas() {
        // dw = 100 is clamped to ln(62.5): gw = 2 * 62.5 = 125 around centre 1;
        // dh = -100 → gh = 2 / 62.5 = 0.032 around centre 1.
        let c = DeltaXywhCoder::default();
        let b = c.decode(&[0.0, 0.0, 2.0, 2.0], &[0.0, 0.0, 100.0, -100.0], None);
        assert!(
            close(
                &b,
                &[1.0 - 62.5, 1.0 - 0.016, 1.0 + 62.5, 1.0 + 0.016],
                1e-4
            ),
            "{b:?}"
        );
    }

    #[test]
    fn round_trip_with_means_and_stds() {
        let c = DeltaXywhCoder::new([0.1, -0.1, 0.05, 0.0], [0.1, 0.1, 0.2, 0.2]);
        let anchor = [-12.0, 3.0, 52.0, 35.0];
        for gt in [
            [0.0, 0.0, 40.0, 20.0],
            [-5.0, 7.5, 3.0, 90.0],
            [10.0, 10.0, 12.0, 11.0],
        ] {
            let b = c.decode(&anchor, &c.encode(&anchor, &gt), None);
            let expect = gt.map(|v| v as f64);
            assert!(close(&b, &expect, 1e-4), "{gt:?} → {b:?}");
        }
        // A box 64x narrower than the anchor exceeds the 62.5x clamp: by hand the
        // decoded width is 64 / 62.5 = 1.024 around centre 10.5 → x in [9.988, 11.012].
        let b = c.decode(&anchor, &c.encode(&anchor, &[10.0, 10.0, 11.0, 11.0]), None);
        assert!(close(&b, &[9.988, 10.0, 11.012, 11.0], 1e-4), "{b:?}");
    }
}
