//! Letterbox an RGB frame into a fixed-size network input: keep-ratio bilinear
//! resize, normalise, place top-left, zero the rest — written straight into a
//! caller-owned buffer, so a steady stream of same-sized frames allocates nothing.
//!
//! The arithmetic is exactly [`resize_normalize`](crate::preprocess::resize_normalize)
//! followed by [`pad_into`](crate::preprocess::pad_into) (the trainer's evaluation
//! path), so the board sees bit-identical inputs.
//!
//! ```
//! use crosskd_sdk::letterbox::Letterbox;
//! use crosskd_sdk::preprocess::Normalization;
//! let mut lb = Letterbox::new((4, 4), Normalization::identity());
//! let mut input = vec![0.0f32; 3 * 4 * 4];
//! // A 2×1 (w×h) white frame becomes 4×2 at the top of the 4×4 input.
//! let fit = lb.run(&[255u8; 6], 1, 2, &mut input);
//! assert_eq!(fit.img_shape, (2, 4));
//! assert_eq!(fit.scale_factor, (2.0, 2.0));
//! assert_eq!(&input[..8], &[255.0; 8]);
//! assert_eq!(&input[8..16], &[0.0; 8]);
//! ```

use crate::preprocess::{axis_taps, rescale_size, Normalization};

/// Where a frame landed in the network input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fit {
    /// `(h, w)` of the resized frame inside the input (before padding).
    pub img_shape: (usize, usize),
    /// `(w_scale, h_scale)`: resized size / original size.
    pub scale_factor: (f32, f32),
}

/// Size of a `src_h × src_w` frame letterboxed into `input = (w, h)`.
///
/// It is MMDetection's keep-ratio rescale to `(w, h)` — the trainer's test
/// transform, so boxes agree with `crosskd predict` — whenever that fits the
/// input (always for square inputs); otherwise (e.g. a portrait frame into a
/// landscape input) the plain fit factor `min(w / src_w, h / src_h)`.
pub fn fit_size(src_h: usize, src_w: usize, input: (usize, usize)) -> Fit {
    fit_size_to_scale(src_h, src_w, input, input)
}

/// [`fit_size`] with the keep-ratio resize aimed at `scale = (long, short)`
/// (the trainer's test scale, which `input` was padded up from) instead of
/// `input` itself: the same size and scale factor as the trainer's test
/// transform whenever the result fits the input.
///
/// ```
/// use crosskd_sdk::letterbox::fit_size_to_scale;
/// // Test scale 1333x800 padded to a 1344x800 input: a 2:1 frame is resized to
/// // 1333 wide, as the trainer does, not 1344.
/// let fit = fit_size_to_scale(500, 1000, (1344, 800), (1333, 800));
/// assert_eq!(fit.img_shape, (667, 1333));
/// // A portrait frame would be 667x1333 (w x h) there, taller than the input: fitted.
/// let fit = fit_size_to_scale(1000, 500, (1344, 800), (1333, 800));
/// assert_eq!(fit.img_shape, (800, 400));
/// ```
pub fn fit_size_to_scale(
    src_h: usize,
    src_w: usize,
    input: (usize, usize),
    scale: (usize, usize),
) -> Fit {
    let (in_w, in_h) = input;
    let (h, w, sf) = rescale_size(src_h, src_w, scale);
    if h <= in_h && w <= in_w {
        return Fit {
            img_shape: (h, w),
            scale_factor: sf,
        };
    }
    let factor = (in_w as f64 / src_w as f64).min(in_h as f64 / src_h as f64);
    let w = ((src_w as f64 * factor + 0.5) as usize).clamp(1, in_w);
    let h = ((src_h as f64 * factor + 0.5) as usize).clamp(1, in_h);
    Fit {
        img_shape: (h, w),
        scale_factor: (w as f32 / src_w as f32, h as f32 / src_h as f32),
    }
}

/// Reusable letterboxing state: the resampling taps of the last frame size.
#[derive(Clone, Debug)]
pub struct Letterbox {
    input: (usize, usize),
    /// Keep-ratio target `(long, short)`; `input` unless set.
    scale: (usize, usize),
    norm: Normalization,
    inv_std: [f32; 3],
    /// `(src_h, src_w)` the taps were computed for.
    cached_for: (usize, usize),
    xs: Vec<(usize, usize, f32)>,
    ys: Vec<(usize, usize, f32)>,
}

impl Letterbox {
    /// A letterbox into an `input = (w, h)` network input with `norm`.
    pub fn new(input: (usize, usize), norm: Normalization) -> Self {
        Self {
            input,
            scale: input,
            norm,
            inv_std: norm.std.map(|s| 1.0 / s),
            cached_for: (0, 0),
            xs: Vec::new(),
            ys: Vec::new(),
        }
    }

    /// Resizes to the trainer's keep-ratio test `scale = (long, short)` (see
    /// [`fit_size_to_scale`]) instead of to the input size.
    ///
    /// ```
    /// use crosskd_sdk::letterbox::Letterbox;
    /// use crosskd_sdk::preprocess::Normalization;
    /// let lb = Letterbox::new((1344, 800), Normalization::identity()).with_scale((1333, 800));
    /// assert_eq!(lb.input_size(), (1344, 800));
    /// ```
    pub fn with_scale(mut self, scale: (usize, usize)) -> Self {
        if scale != self.scale {
            self.scale = scale;
            self.cached_for = (0, 0);
        }
        self
    }

    /// The network input size `(w, h)`.
    pub fn input_size(&self) -> (usize, usize) {
        self.input
    }

    /// Letterboxes an interleaved RGB frame (`src_h × src_w × 3` bytes) into
    /// `out`, a planar CHW buffer of `3 × h × w` for the input `(w, h)`.
    ///
    /// # Panics
    /// If a size is zero or a buffer has the wrong length (the [`Detector`](crate::Detector)
    /// checks both before calling).
    pub fn run(&mut self, rgb: &[u8], src_h: usize, src_w: usize, out: &mut [f32]) -> Fit {
        let (in_w, in_h) = self.input;
        assert!(src_h > 0 && src_w > 0, "empty frame");
        assert_eq!(rgb.len(), src_h * src_w * 3, "RGB buffer size");
        assert_eq!(out.len(), 3 * in_h * in_w, "input buffer size");
        let fit = fit_size_to_scale(src_h, src_w, self.input, self.scale);
        let (h, w) = fit.img_shape;
        if self.cached_for != (src_h, src_w) {
            // Taps depend only on the frame size: a camera stream computes them once.
            self.xs = axis_taps(src_w, w);
            self.ys = axis_taps(src_h, h);
            self.cached_for = (src_h, src_w);
        }
        let plane = in_h * in_w;
        // Network channel c reads source channel order[c].
        let order = if self.norm.to_rgb {
            [0, 1, 2]
        } else {
            [2, 1, 0]
        };
        let (mean, inv_std) = (self.norm.mean, self.inv_std);
        for (c, &sc) in order.iter().enumerate() {
            let dst_plane = &mut out[c * plane..(c + 1) * plane];
            for (y, &(y0, y1, fy)) in self.ys.iter().enumerate() {
                let row0 = &rgb[y0 * src_w * 3..(y0 + 1) * src_w * 3];
                let row1 = &rgb[y1 * src_w * 3..(y1 + 1) * src_w * 3];
                let dst = &mut dst_plane[y * in_w..(y + 1) * in_w];
                for (d, &(x0, x1, fx)) in dst[..w].iter_mut().zip(&self.xs) {
                    // Same operations, same order as `resize_normalize`: bit-identical.
                    let p = |row: &[u8], xi: usize| row[xi * 3 + sc] as f32;
                    let top = p(row0, x0) + (p(row0, x1) - p(row0, x0)) * fx;
                    let bot = p(row1, x0) + (p(row1, x1) - p(row1, x0)) * fx;
                    let v = top + (bot - top) * fy;
                    *d = (v - mean[c]) * inv_std[c];
                }
                dst[w..].fill(0.0);
            }
            dst_plane[h * in_w..].fill(0.0);
        }
        fit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::{pad_into, resize_normalize};

    fn frame(h: usize, w: usize, seed: u32) -> Vec<u8> {
        let mut s = seed;
        (0..h * w * 3)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn bit_identical_to_the_trainer_path() {
        let norm = Normalization::pytorch();
        let mut lb = Letterbox::new((64, 64), norm);
        let mut out = vec![f32::NAN; 3 * 64 * 64];
        // Landscape, portrait, upscaled, and a repeat of the first size (cached taps).
        for (i, &(h, w)) in [(30, 50), (90, 40), (7, 9), (30, 50)].iter().enumerate() {
            let rgb = frame(h, w, i as u32);
            let fit = lb.run(&rgb, h, w, &mut out);
            let (rh, rw, sf) = rescale_size(h, w, (64, 64));
            assert_eq!(fit.img_shape, (rh, rw));
            assert_eq!(fit.scale_factor, sf);
            let chw = resize_normalize(&rgb, h, w, rh, rw, &norm);
            let mut want = vec![0.0; 3 * 64 * 64];
            pad_into(&chw, rh, rw, 64, 64, &mut want);
            assert!(out
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }

    #[test]
    fn bgr_models_see_swapped_channels() {
        let norm = Normalization::caffe();
        let mut lb = Letterbox::new((32, 32), norm);
        let mut out = vec![0.0; 3 * 32 * 32];
        let rgb = frame(20, 20, 3);
        lb.run(&rgb, 20, 20, &mut out);
        let chw = resize_normalize(&rgb, 20, 20, 32, 32, &norm);
        assert_eq!(out, chw);
    }

    #[test]
    fn non_square_inputs_fit_both_orientations() {
        // Landscape input 64×32 (w×h): a landscape frame takes MMDet's rescale.
        assert_eq!(fit_size(100, 200, (64, 32)).img_shape, (32, 64));
        // A portrait 100×200 (w×h) frame cannot take (64, 32) rotated: it fits by height.
        let fit = fit_size(200, 100, (64, 32));
        assert_eq!(fit.img_shape, (32, 16));
        assert_eq!(fit.scale_factor, (0.16, 0.16));
        // Every fit stays inside the input.
        for (h, w) in [(1, 1000), (1000, 1), (33, 31), (480, 640)] {
            let f = fit_size(h, w, (96, 64));
            assert!(f.img_shape.0 <= 64 && f.img_shape.1 <= 96, "{h}x{w}: {f:?}");
        }
    }
}
