//! Axis-aligned box math on `[x1, y1, x2, y2]` boxes in pixels.
//!
//! Conventions follow MMDetection 3.x: widths are `x2 - x1` (no `+1`), areas of
//! inverted boxes are negative (callers decide whether that matters), and the
//! IoU denominator is clamped at `eps` so degenerate boxes never produce NaN.
//!
//! ```
//! use crosskd_sdk::boxes::{iou, giou};
//! let a = [0.0, 0.0, 2.0, 2.0];
//! let b = [1.0, 1.0, 3.0, 3.0];
//! assert!((iou(&a, &b) - 1.0 / 7.0).abs() < 1e-6);
//! assert!((giou(&a, &b) - (1.0 / 7.0 - 2.0 / 9.0)).abs() < 1e-6);
//! ```

/// A box as `[x1, y1, x2, y2]`.
pub type BBox = [f32; 4];

/// Smallest denominator used by IoU-style ratios (MMDetection's `eps=1e-6`).
pub const IOU_EPS: f32 = 1e-6;

/// Width of a box (`x2 - x1`).
#[inline]
pub fn width(b: &BBox) -> f32 {
    b[2] - b[0]
}

/// Height of a box (`y2 - y1`).
#[inline]
pub fn height(b: &BBox) -> f32 {
    b[3] - b[1]
}

/// Area `(x2 - x1) * (y2 - y1)`.
#[inline]
pub fn area(b: &BBox) -> f32 {
    width(b) * height(b)
}

/// Centre `(cx, cy)` of a box.
#[inline]
pub fn center(b: &BBox) -> (f32, f32) {
    ((b[0] + b[2]) * 0.5, (b[1] + b[3]) * 0.5)
}

/// Area of the intersection of two boxes (0 when disjoint).
#[inline]
pub fn intersection(a: &BBox, b: &BBox) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    w * h
}

/// Intersection over union; the union is clamped at [`IOU_EPS`].
#[inline]
pub fn iou(a: &BBox, b: &BBox) -> f32 {
    let inter = intersection(a, b);
    inter / (area(a) + area(b) - inter).max(IOU_EPS)
}

/// Intersection over the area of `a` (MMDetection's `iof` mode, foreground = `a`).
#[inline]
pub fn iof(a: &BBox, b: &BBox) -> f32 {
    intersection(a, b) / area(a).max(IOU_EPS)
}

/// Generalised IoU: `iou - (enclose - union) / enclose`, union and enclosing
/// area both clamped at [`IOU_EPS`].
#[inline]
pub fn giou(a: &BBox, b: &BBox) -> f32 {
    let inter = intersection(a, b);
    let union = (area(a) + area(b) - inter).max(IOU_EPS);
    let ew = (a[2].max(b[2]) - a[0].min(b[0])).max(0.0);
    let eh = (a[3].max(b[3]) - a[1].min(b[1])).max(0.0);
    let enclose = (ew * eh).max(IOU_EPS);
    inter / union - (enclose - union) / enclose
}

/// Pairwise IoU, row-major `a.len() × b.len()`.
pub fn iou_matrix(a: &[BBox], b: &[BBox]) -> Vec<f32> {
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            out.push(iou(x, y));
        }
    }
    out
}

/// Pairwise intersection over the area of `a[i]`, row-major `a.len() × b.len()`.
pub fn iof_matrix(a: &[BBox], b: &[BBox]) -> Vec<f32> {
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            out.push(iof(x, y));
        }
    }
    out
}

/// Clip a box to an image of `width × height` pixels (coordinates in `[0, width]`, `[0, height]`).
#[inline]
pub fn clip(b: &BBox, width: f32, height: f32) -> BBox {
    [
        b[0].clamp(0.0, width),
        b[1].clamp(0.0, height),
        b[2].clamp(0.0, width),
        b[3].clamp(0.0, height),
    ]
}

/// Convert a COCO `[x, y, w, h]` box to `[x1, y1, x2, y2]`.
#[inline]
pub fn xywh_to_xyxy(b: [f32; 4]) -> BBox {
    [b[0], b[1], b[0] + b[2], b[1] + b[3]]
}

/// Convert `[x1, y1, x2, y2]` to COCO `[x, y, w, h]`.
#[inline]
pub fn xyxy_to_xywh(b: &BBox) -> [f32; 4] {
    [b[0], b[1], b[2] - b[0], b[3] - b[1]]
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values below are computed by hand from the definitions.
    #[test]
    fn iou_of_half_overlapping_squares() {
        // inter = 1x1 = 1, union = 4 + 4 - 1 = 7.
        let a = [0.0, 0.0, 2.0, 2.0];
        let b = [1.0, 1.0, 3.0, 3.0];
        assert!((iou(&a, &b) - 1.0 / 7.0).abs() < 1e-7);
        // enclosing box 3x3 = 9: giou = 1/7 - (9 - 7)/9.
        assert!((giou(&a, &b) - (1.0 / 7.0 - 2.0 / 9.0)).abs() < 1e-7);
        // iof: inter / area(a) = 1/4.
        assert!((iof(&a, &b) - 0.25).abs() < 1e-7);
    }

    #[test]
    fn disjoint_and_identical_boxes() {
        let a = [0.0, 0.0, 1.0, 1.0];
        let b = [2.0, 0.0, 3.0, 1.0];
        assert_eq!(iou(&a, &b), 0.0);
        // enclose = 3x1 = 3, union = 2: giou = 0 - 1/3.
        assert!((giou(&a, &b) + 1.0 / 3.0).abs() < 1e-7);
        assert!((iou(&a, &a) - 1.0).abs() < 1e-7);
        assert!((giou(&a, &a) - 1.0).abs() < 1e-7);
    }

    #[test]
    fn degenerate_boxes_stay_finite() {
        let z = [0.0; 4];
        assert_eq!(iou(&z, &z), 0.0);
        assert!(giou(&z, &z).is_finite());
    }

    #[test]
    fn matrix_is_row_major() {
        let a = [[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]];
        let b = [
            [0.0, 0.0, 2.0, 2.0],
            [1.0, 1.0, 3.0, 3.0],
            [5.0, 5.0, 6.0, 6.0],
        ];
        let m = iou_matrix(&a, &b);
        assert_eq!(m.len(), 6);
        assert!((m[0] - 1.0).abs() < 1e-7);
        assert!((m[1] - 1.0 / 7.0).abs() < 1e-7);
        assert!((m[3] - 0.25).abs() < 1e-7); // 1x1 box inside 2x2 box
        assert_eq!(m[5], 0.0);
    }

    #[test]
    fn clip_and_conversions() {
        assert_eq!(
            clip(&[-1.0, 2.0, 12.0, 5.0], 10.0, 4.0),
            [0.0, 2.0, 10.0, 4.0]
        );
        assert_eq!(xywh_to_xyxy([1.0, 2.0, 3.0, 4.0]), [1.0, 2.0, 4.0, 6.0]);
        assert_eq!(xyxy_to_xywh(&[1.0, 2.0, 4.0, 6.0]), [1.0, 2.0, 3.0, 4.0]);
    }
}
