//! Image pre-processing shared by training, evaluation and the edge runtime:
//! keep-ratio rescale (MMDetection's `Resize(keep_ratio=True)`), bilinear
//! resampling, normalisation and zero padding into a CHW `f32` buffer.
//!
//! The trainer's evaluation pipeline and the SDK's `Detector` both call these
//! functions, so a model sees the same pixels on the board as in evaluation.
//!
//! ```
//! use crosskd_sdk::preprocess::{rescale_size, Normalization, resize_normalize};
//! // A 200×100 (w×h) image rescaled to fit (1333, 800): factor min(1333/200, 800/100) = 6.665.
//! let (h, w, sf) = rescale_size(100, 200, (1333, 800));
//! assert_eq!((h, w), (667, 1333));
//! assert!((sf.0 - 1333.0 / 200.0).abs() < 1e-6 && (sf.1 - 6.67).abs() < 1e-6);
//! let rgb = vec![255u8; 2 * 2 * 3];
//! let chw = resize_normalize(&rgb, 2, 2, 1, 1, &Normalization::identity());
//! assert_eq!(chw, vec![255.0, 255.0, 255.0]);
//! ```

use serde::{Deserialize, Serialize};

/// Mean/std normalisation and channel order of a model's input.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalization {
    /// Per-channel mean, in the channel order the network sees.
    pub mean: [f32; 3],
    /// Per-channel std, in the channel order the network sees.
    pub std: [f32; 3],
    /// `true`: the network sees RGB (pytorch-style); `false`: BGR (caffe-style).
    pub to_rgb: bool,
}

impl Normalization {
    /// ImageNet statistics of torchvision backbones, RGB.
    pub fn pytorch() -> Self {
        Self {
            mean: crate::metadata::PYTORCH_MEAN,
            std: crate::metadata::PYTORCH_STD,
            to_rgb: true,
        }
    }

    /// Detectron caffe-style statistics, BGR, std 1.
    pub fn caffe() -> Self {
        Self {
            mean: [102.9801, 115.9465, 122.7717],
            std: [1.0; 3],
            to_rgb: false,
        }
    }

    /// No normalisation (RGB, mean 0, std 1).
    pub fn identity() -> Self {
        Self {
            mean: [0.0; 3],
            std: [1.0; 3],
            to_rgb: true,
        }
    }
}

/// Size `(new_h, new_w)` and `scale_factor = (w_scale, h_scale)` of MMDetection's
/// keep-ratio rescale of an `h × w` image to `scale = (long_edge, short_edge)`:
/// factor = min(long / max(h, w), short / min(h, w)); sides rounded with `+0.5`.
pub fn rescale_size(h: usize, w: usize, scale: (usize, usize)) -> (usize, usize, (f32, f32)) {
    let (long, short) = (scale.0.max(scale.1) as f64, scale.0.min(scale.1) as f64);
    let factor = (long / h.max(w) as f64).min(short / h.min(w) as f64);
    let new_w = ((w as f64 * factor + 0.5) as usize).max(1);
    let new_h = ((h as f64 * factor + 0.5) as usize).max(1);
    (
        new_h,
        new_w,
        (new_w as f32 / w as f32, new_h as f32 / h as f32),
    )
}

/// Source index pairs and weights of a bilinear resampling along one axis
/// (half-pixel centres, edge clamped, no anti-aliasing — OpenCV's `INTER_LINEAR`).
pub(crate) fn axis_taps(src: usize, dst: usize) -> Vec<(usize, usize, f32)> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|d| {
            let s = ((d as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (s.floor() as usize).min(src - 1);
            let i1 = (i0 + 1).min(src - 1);
            (i0, i1, (s - i0 as f64).clamp(0.0, 1.0) as f32)
        })
        .collect()
}

/// Bilinear-resize an interleaved RGB `u8` image (`src_h × src_w × 3`) to
/// `dst_h × dst_w`, normalise, and return it as planar CHW `f32` in the
/// network's channel order.
///
/// # Panics
/// If `rgb.len() != src_h * src_w * 3` or any size is zero.
pub fn resize_normalize(
    rgb: &[u8],
    src_h: usize,
    src_w: usize,
    dst_h: usize,
    dst_w: usize,
    norm: &Normalization,
) -> Vec<f32> {
    assert_eq!(rgb.len(), src_h * src_w * 3, "RGB buffer size");
    assert!(
        src_h > 0 && src_w > 0 && dst_h > 0 && dst_w > 0,
        "empty image"
    );
    let xs = axis_taps(src_w, dst_w);
    let ys = axis_taps(src_h, dst_h);
    let plane = dst_h * dst_w;
    let mut out = vec![0.0f32; 3 * plane];
    // Network channel c reads source channel order[c].
    let order = if norm.to_rgb { [0, 1, 2] } else { [2, 1, 0] };
    let inv_std = norm.std.map(|s| 1.0 / s);
    for (y, &(y0, y1, fy)) in ys.iter().enumerate() {
        let row0 = &rgb[y0 * src_w * 3..(y0 + 1) * src_w * 3];
        let row1 = &rgb[y1 * src_w * 3..(y1 + 1) * src_w * 3];
        for (x, &(x0, x1, fx)) in xs.iter().enumerate() {
            for (c, &sc) in order.iter().enumerate() {
                let p = |row: &[u8], xi: usize| row[xi * 3 + sc] as f32;
                let top = p(row0, x0) + (p(row0, x1) - p(row0, x0)) * fx;
                let bot = p(row1, x0) + (p(row1, x1) - p(row1, x0)) * fx;
                let v = top + (bot - top) * fy;
                out[c * plane + y * dst_w + x] = (v - norm.mean[c]) * inv_std[c];
            }
        }
    }
    out
}

/// Copy a CHW image of `h × w` into the top-left corner of a zeroed CHW
/// buffer of `pad_h × pad_w` (padding value 0 in normalised space, as MMDet).
///
/// # Panics
/// If the image is larger than the padded size or `chw.len() != 3·h·w`.
pub fn pad_into(chw: &[f32], h: usize, w: usize, pad_h: usize, pad_w: usize, out: &mut [f32]) {
    assert!(
        h <= pad_h && w <= pad_w,
        "image larger than its padded size"
    );
    assert_eq!(chw.len(), 3 * h * w, "CHW buffer size");
    assert_eq!(out.len(), 3 * pad_h * pad_w, "padded buffer size");
    out.fill(0.0);
    for c in 0..3 {
        for y in 0..h {
            let src = &chw[(c * h + y) * w..(c * h + y) * w + w];
            out[(c * pad_h + y) * pad_w..(c * pad_h + y) * pad_w + w].copy_from_slice(src);
        }
    }
}

/// Round `x` up to a multiple of `divisor`.
pub fn pad_to_multiple(x: usize, divisor: usize) -> usize {
    x.div_ceil(divisor) * divisor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_matches_mmdet_rounding() {
        // 640×480 (w×h) to (1333, 800): factor = min(1333/640, 800/480) = 1.6667 → 1067×800.
        let (h, w, sf) = rescale_size(480, 640, (1333, 800));
        assert_eq!((h, w), (800, 1067));
        assert!((sf.0 - 1067.0 / 640.0).abs() < 1e-6 && (sf.1 - 800.0 / 480.0).abs() < 1e-6);
        // Portrait 300×600 (w×h) to (320, 320): factor = 320/600 → 160×320.
        let (h, w, _) = rescale_size(600, 300, (320, 320));
        assert_eq!((h, w), (320, 160));
        // Scale given as (short, long) means the same.
        assert_eq!(rescale_size(480, 640, (800, 1333)).0, 800);
    }

    #[test]
    fn bilinear_upsample_by_two_matches_half_pixel_rule() {
        // One row [0, 100] (grey) upsampled to width 4: source x = (d+0.5)/2-0.5 =
        // -0.25→0 (clamped), 0.25, 0.75, 1.25→ i0=1 (clamped) → 0, 25, 75, 100.
        let rgb = [0u8, 0, 0, 100, 100, 100];
        let out = resize_normalize(&rgb, 1, 2, 1, 4, &Normalization::identity());
        assert_eq!(&out[..4], &[0.0, 25.0, 75.0, 100.0]);
    }

    #[test]
    fn normalisation_and_channel_order() {
        // A single pixel RGB (10, 20, 30).
        let rgb = [10u8, 20, 30];
        let n = Normalization {
            mean: [1.0, 2.0, 3.0],
            std: [1.0, 2.0, 3.0],
            to_rgb: true,
        };
        assert_eq!(resize_normalize(&rgb, 1, 1, 1, 1, &n), vec![9.0, 9.0, 9.0]);
        // BGR: the network sees (30, 20, 10): (30-1)/1, (20-2)/2, (10-3)/3.
        let n = Normalization { to_rgb: false, ..n };
        let out = resize_normalize(&rgb, 1, 1, 1, 1, &n);
        assert_eq!(&out[..2], &[29.0, 9.0]);
        assert!((out[2] - 7.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn padding_keeps_the_image_top_left() {
        let chw: Vec<f32> = (1..=3 * 2 * 2).map(|v| v as f32).collect();
        let mut out = vec![9.0; 3 * 3 * 4];
        pad_into(&chw, 2, 2, 3, 4, &mut out);
        assert_eq!(&out[..8], &[1.0, 2.0, 0.0, 0.0, 3.0, 4.0, 0.0, 0.0]);
        assert_eq!(&out[8..12], &[0.0; 4]);
        assert_eq!(out[12], 5.0);
        assert_eq!(pad_to_multiple(33, 32), 64);
        assert_eq!(pad_to_multiple(64, 32), 64);
    }
}
