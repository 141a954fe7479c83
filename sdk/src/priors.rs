//! Priors of dense heads: anchor boxes, anchor-free points, valid flags and
//! the feature-map sizes a ResNet + FPN produces for a given input.
//!
//! Everything follows MMDetection 3.x (`AnchorGenerator`, `MlvlPointGenerator`):
//!
//! * an anchor's base size is its level's stride; the anchor centre sits at
//!   `stride * center_offset` inside its grid cell (offset 0 → the cell's
//!   top-left corner, which is what GFL, ATSS and RetinaNet use);
//! * within one location anchors are ordered ratio-major, then scale;
//! * all per-level lists are flattened `(y, x, anchor)` row-major, which is
//!   the order of a `(C, H, W)` head output permuted to `(H, W, C)`.
//!
//! ```
//! use crosskd_sdk::priors::AnchorGenerator;
//! let gen = AnchorGenerator::gfl_atss(&[8.0, 16.0]);
//! // One 64x64 anchor per location at stride 8, centred on (x*8, y*8).
//! let anchors = gen.grid_anchors(0, 2, 2);
//! assert_eq!(anchors.len(), 4);
//! assert_eq!(anchors[1], [8.0 - 32.0, -32.0, 8.0 + 32.0, 32.0]);
//! ```

use serde::{Deserialize, Serialize};

use crate::boxes::BBox;

/// Strides of the five FPN levels P3..P7 used by all four detectors.
pub const FPN_STRIDES: [f32; 5] = [8.0, 16.0, 32.0, 64.0, 128.0];

/// MMDetection-style anchor generator (square strides, base size = stride).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchorGenerator {
    /// Stride (and base anchor size) of each level, in input pixels.
    pub strides: Vec<f32>,
    /// Scale of the first octave step: anchor side = stride * scale.
    pub octave_base_scale: f32,
    /// Number of scales per octave: scale_i = octave_base_scale * 2^(i / scales_per_octave).
    pub scales_per_octave: usize,
    /// Aspect ratios `h / w`.
    pub ratios: Vec<f32>,
    /// Anchor centre inside its cell, as a fraction of the stride (0 = top-left).
    pub center_offset: f32,
}

impl AnchorGenerator {
    /// GFL / ATSS anchors: one square of side `8 * stride` per location.
    pub fn gfl_atss(strides: &[f32]) -> Self {
        Self {
            strides: strides.to_vec(),
            octave_base_scale: 8.0,
            scales_per_octave: 1,
            ratios: vec![1.0],
            center_offset: 0.0,
        }
    }

    /// RetinaNet anchors: 3 scales (`4 * 2^(i/3)`) x ratios `[0.5, 1, 2]` = 9 per location.
    pub fn retinanet(strides: &[f32]) -> Self {
        Self {
            strides: strides.to_vec(),
            octave_base_scale: 4.0,
            scales_per_octave: 3,
            ratios: vec![0.5, 1.0, 2.0],
            center_offset: 0.0,
        }
    }

    /// Number of levels (one per stride).
    pub fn num_levels(&self) -> usize {
        self.strides.len()
    }

    /// Anchors per location: `ratios.len() * scales_per_octave`.
    pub fn num_base_anchors(&self) -> usize {
        self.ratios.len() * self.scales_per_octave
    }

    /// The anchor scales `octave_base_scale * 2^(i / scales_per_octave)`.
    ///
    /// The power of two is evaluated in `f64` and rounded to `f32` (as MMDetection
    /// builds its scale tensor from Python floats), then multiplied in `f32`.
    pub fn scales(&self) -> Vec<f32> {
        (0..self.scales_per_octave)
            .map(|i| {
                let octave = 2f64.powf(i as f64 / self.scales_per_octave as f64) as f32;
                self.octave_base_scale * octave
            })
            .collect()
    }

    /// The anchors of one location of `level`, relative to the cell origin
    /// (centre at `stride * center_offset`), ratio-major then scale.
    ///
    /// # Panics
    /// If `level >= self.num_levels()`.
    pub fn base_anchors(&self, level: usize) -> Vec<BBox> {
        let base = self.strides[level];
        let center = base * self.center_offset;
        let scales = self.scales();
        let mut out = Vec::with_capacity(self.num_base_anchors());
        for &ratio in &self.ratios {
            let h_ratio = ratio.sqrt();
            let w_ratio = 1.0 / h_ratio;
            for &scale in &scales {
                let w = base * w_ratio * scale;
                let h = base * h_ratio * scale;
                out.push([
                    center - 0.5 * w,
                    center - 0.5 * h,
                    center + 0.5 * w,
                    center + 0.5 * h,
                ]);
            }
        }
        out
    }

    /// All anchors of a `feat_h x feat_w` map of `level`, `(y, x, anchor)` row-major.
    ///
    /// # Panics
    /// If `level >= self.num_levels()`.
    pub fn grid_anchors(&self, level: usize, feat_h: usize, feat_w: usize) -> Vec<BBox> {
        let stride = self.strides[level];
        let base = self.base_anchors(level);
        let mut out = Vec::with_capacity(feat_h * feat_w * base.len());
        for y in 0..feat_h {
            for x in 0..feat_w {
                out.extend(base.iter().map(|b| shift_anchor(b, stride, x, y)));
            }
        }
        out
    }
}

/// A base anchor moved to grid cell `(x, y)`: adds `x * stride` and `y * stride`.
///
/// `grid_anchors` and the decoders both use this, so a decoded prior is bit-identical
/// to the corresponding entry of [`AnchorGenerator::grid_anchors`].
#[inline]
pub fn shift_anchor(base: &BBox, stride: f32, x: usize, y: usize) -> BBox {
    let sx = x as f32 * stride;
    let sy = y as f32 * stride;
    [base[0] + sx, base[1] + sy, base[2] + sx, base[3] + sy]
}

/// The point of grid cell `(x, y)`: `((x + offset) * stride, (y + offset) * stride)`.
#[inline]
pub fn grid_point(stride: f32, x: usize, y: usize, offset: f32) -> [f32; 2] {
    [(x as f32 + offset) * stride, (y as f32 + offset) * stride]
}

/// Anchor-free points of a `feat_h x feat_w` map, `(y, x)` row-major
/// (MMDetection's `MlvlPointGenerator`; FCOS uses `offset = 0.5`).
///
/// ```
/// use crosskd_sdk::priors::grid_points;
/// assert_eq!(grid_points(8.0, 1, 2, 0.5), vec![[4.0, 4.0], [12.0, 4.0]]);
/// ```
pub fn grid_points(stride: f32, feat_h: usize, feat_w: usize, offset: f32) -> Vec<[f32; 2]> {
    let mut out = Vec::with_capacity(feat_h * feat_w);
    for y in 0..feat_h {
        for x in 0..feat_w {
            out.push(grid_point(stride, x, y, offset));
        }
    }
    out
}

/// Valid flags of one level, `(y, x, anchor)` row-major.
///
/// A cell is valid iff `y < min(ceil(pad_h / stride), feat_h)` and
/// `x < min(ceil(pad_w / stride), feat_w)`, where `pad_h x pad_w` is the image's
/// own padded size (not the batch tensor's). Each cell's flag is repeated
/// `num_base_anchors` times.
pub fn valid_flags(
    feat_h: usize,
    feat_w: usize,
    stride: f32,
    pad_h: usize,
    pad_w: usize,
    num_base_anchors: usize,
) -> Vec<bool> {
    let cells = |pad: usize, feat: usize| -> usize {
        let n = (pad as f64 / stride as f64).ceil();
        // `as usize` saturates: NaN/negative → 0, huge → usize::MAX.
        (n as usize).min(feat)
    };
    let valid_h = cells(pad_h, feat_h);
    let valid_w = cells(pad_w, feat_w);
    let mut out = Vec::with_capacity(feat_h * feat_w * num_base_anchors);
    for y in 0..feat_h {
        for x in 0..feat_w {
            let v = y < valid_h && x < valid_w;
            out.extend(std::iter::repeat_n(v, num_base_anchors));
        }
    }
    out
}

/// Output size of a convolution / pooling: `floor((n + 2p - k) / s) + 1`, floored at 0.
fn conv_out(n: usize, kernel: i64, stride: i64, pad: i64) -> usize {
    let n = n as i64 + 2 * pad - kernel;
    (n.div_euclid(stride) + 1).max(0) as usize
}

/// Feature-map sizes `(h, w)` that a ResNet + FPN produces for an
/// `input_h x input_w` input, one per entry of `strides`.
///
/// The chain is the network's own arithmetic, each step
/// `out = floor((in + 2p - k) / s) + 1`:
///
/// * stride 2: stem conv 7x7, s2, p3;
/// * stride 4 (C2): max-pool 3x3, s2, p1;
/// * strides 8, 16, 32 (C3..C5, hence P3..P5): one stride-2 3x3 conv (p1) per stage
///   (a caffe-style 1x1 s2 p0 conv gives the same size);
/// * strides 64, 128 (P6, P7): FPN extra convs 3x3, s2, p1, i.e. `ceil(prev / 2)`.
///
/// Every step equals `ceil(in / 2)`, so each level is `ceil(input / stride)`.
///
/// ```
/// use crosskd_sdk::priors::{featmap_sizes, FPN_STRIDES};
/// let s = featmap_sizes(333, 320, &FPN_STRIDES);
/// assert_eq!(s, vec![(42, 40), (21, 20), (11, 10), (6, 5), (3, 3)]);
/// ```
///
/// # Panics
/// If a stride is not a power of two of at least 2 (no ResNet + FPN level has it).
pub fn featmap_sizes(input_h: usize, input_w: usize, strides: &[f32]) -> Vec<(usize, usize)> {
    strides
        .iter()
        .map(|&stride| {
            let halvings = stride.log2();
            assert!(
                stride >= 2.0 && halvings.fract() == 0.0,
                "featmap_sizes: stride {stride} is not a power of two >= 2"
            );
            let halvings = halvings as u32;
            let size = |input: usize| -> usize {
                // Stem conv 7x7 s2 p3: stride 2.
                let mut n = conv_out(input, 7, 2, 3);
                if halvings >= 2 {
                    // Max-pool 3x3 s2 p1: stride 4.
                    n = conv_out(n, 3, 2, 1);
                }
                for _ in 3..=halvings {
                    // Stage conv (strides 8..32) or FPN extra conv (64, 128): 3x3 s2 p1.
                    n = conv_out(n, 3, 2, 1);
                }
                n
            };
            (size(input_h), size(input_w))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_box_close(a: &BBox, b: &[f64; 4], tol: f64) {
        for k in 0..4 {
            assert!(
                (a[k] as f64 - b[k]).abs() < tol,
                "coordinate {k}: got {:?}, expected {:?}",
                a,
                b
            );
        }
    }

    #[test]
    fn gfl_base_anchor_is_a_square_of_eight_strides_at_the_origin() {
        // By hand: side = stride * 8 * 2^0 = 64 at stride 8, centred on (0, 0).
        let gen = AnchorGenerator::gfl_atss(&FPN_STRIDES);
        assert_eq!(gen.num_base_anchors(), 1);
        assert_eq!(gen.base_anchors(0), vec![[-32.0, -32.0, 32.0, 32.0]]);
        // stride 128 → side 1024.
        assert_eq!(gen.base_anchors(4), vec![[-512.0, -512.0, 512.0, 512.0]]);
    }

    #[test]
    fn retinanet_base_anchors_are_ratio_major() {
        // By hand (closed forms): stride 8, scale_i = 4 * 2^(i/3), ratio r = h/w,
        // w = 8 * scale / sqrt(r), h = 8 * scale * sqrt(r), centre (0, 0).
        let gen = AnchorGenerator::retinanet(&[8.0]);
        assert_eq!(gen.num_base_anchors(), 9);
        let base = gen.base_anchors(0);
        let ratios = [0.5f64, 1.0, 2.0];
        for (ri, r) in ratios.iter().enumerate() {
            for si in 0..3 {
                let scale = 4.0 * 2f64.powf(si as f64 / 3.0);
                let w = 8.0 * scale / r.sqrt();
                let h = 8.0 * scale * r.sqrt();
                let a = ri * 3 + si; // ratio-major
                assert_box_close(&base[a], &[-w / 2.0, -h / 2.0, w / 2.0, h / 2.0], 1e-4);
            }
        }
        // Spot check by hand: index 1 = ratio 0.5, scale 4*2^(1/3) = 5.0396842:
        // w = 8 * 5.0396842 * sqrt(2) = 57.017538, h = 28.508769.
        assert_box_close(
            &base[1],
            &[-28.508769, -14.254385, 28.508769, 14.254385],
            1e-4,
        );
    }

    #[test]
    fn grid_anchors_are_y_x_anchor_row_major() {
        // 2x3 map, stride 16, 9 anchors: entry (y, x, a) = base[a] + (16x, 16y).
        let gen = AnchorGenerator::retinanet(&[8.0, 16.0]);
        let base = gen.base_anchors(1);
        let all = gen.grid_anchors(1, 2, 3);
        assert_eq!(all.len(), 2 * 3 * 9);
        let (y, x, a) = (1usize, 2usize, 7usize);
        let got = all[(y * 3 + x) * 9 + a];
        let b = base[a];
        assert_eq!(got, [b[0] + 32.0, b[1] + 16.0, b[2] + 32.0, b[3] + 16.0]);
    }

    #[test]
    fn center_offset_moves_the_anchor_centre() {
        let mut gen = AnchorGenerator::gfl_atss(&[8.0]);
        gen.center_offset = 0.5;
        // By hand: centre 8 * 0.5 = 4, side 64.
        assert_eq!(gen.base_anchors(0), vec![[-28.0, -28.0, 36.0, 36.0]]);
    }

    #[test]
    fn points_use_the_offset_and_stride() {
        // By hand: ((x + 0.5) * 16, (y + 0.5) * 16) for a 2x2 map.
        let p = grid_points(16.0, 2, 2, 0.5);
        assert_eq!(p, vec![[8.0, 8.0], [24.0, 8.0], [8.0, 24.0], [24.0, 24.0]]);
        assert_eq!(grid_points(8.0, 1, 1, 0.0), vec![[0.0, 0.0]]);
    }

    #[test]
    fn valid_flags_cut_at_the_padded_image_extent() {
        // Feature map 3x4 at stride 8; the image's own pad shape is 16 x 20:
        // valid rows < min(ceil(16/8), 3) = 2, valid cols < min(ceil(20/8), 4) = 3.
        let f = valid_flags(3, 4, 8.0, 16, 20, 2);
        assert_eq!(f.len(), 3 * 4 * 2);
        for y in 0..3 {
            for x in 0..4 {
                for a in 0..2 {
                    let expect = y < 2 && x < 3;
                    assert_eq!(f[(y * 4 + x) * 2 + a], expect, "cell ({y}, {x}) anchor {a}");
                }
            }
        }
        // A pad shape larger than the map is limited by the map.
        assert!(valid_flags(2, 2, 8.0, 1000, 1000, 1).iter().all(|&v| v));
    }

    #[test]
    fn featmap_sizes_follow_the_conv_arithmetic() {
        // By hand, each step floor((n + 2p - k)/2) + 1 = ceil(n/2):
        // 320: 160 (stem) → 80 (pool) → 40 (P3) → 20 → 10 → 5 → 3.
        assert_eq!(
            featmap_sizes(320, 320, &FPN_STRIDES),
            vec![(40, 40), (20, 20), (10, 10), (5, 5), (3, 3)]
        );
        // 333: 167 → 84 → 42 → 21 → 11 → 6 → 3.
        assert_eq!(
            featmap_sizes(333, 333, &FPN_STRIDES),
            vec![(42, 42), (21, 21), (11, 11), (6, 6), (3, 3)]
        );
        // 64: 32 → 16 → 8 → 4 → 2 → 1 → 1; height and width independent.
        assert_eq!(
            featmap_sizes(64, 320, &FPN_STRIDES),
            vec![(8, 40), (4, 20), (2, 10), (1, 5), (1, 3)]
        );
        assert_eq!(featmap_sizes(0, 1, &[8.0]), vec![(0, 1)]);
    }

    #[test]
    #[should_panic(expected = "not a power of two")]
    fn featmap_sizes_rejects_odd_strides() {
        featmap_sizes(64, 64, &[12.0]);
    }
}
