//! Box coders: how dense heads turn regression outputs into boxes and back.
//!
//! * [`DeltaXywhCoder`]: RetinaNet / ATSS deltas relative to an anchor.
//! * [`distance2bbox`] / [`bbox2distance`]: GFL / FCOS `(l, t, r, b)` distances
//!   from a point.
//!
//! Both follow MMDetection 3.x, including clipping to `max_shape = (h, w)`.

mod delta_xywh;
mod distance_point;

pub use delta_xywh::{DeltaXywhCoder, DEFAULT_WH_RATIO_CLIP};
pub use distance_point::{bbox2distance, bbox2distance_eps, distance2bbox, BBOX2DISTANCE_EPS};

use crate::boxes::BBox;

/// `min(max(v, 0), hi)` like `torch.clamp(v, min=0, max=hi)`: NaN passes through and
/// a negative `hi` wins (no panic, unlike `f32::clamp`).
#[inline]
pub(crate) fn clamp_coord(v: f32, hi: f32) -> f32 {
    let v = if v < 0.0 { 0.0 } else { v };
    if v > hi {
        hi
    } else {
        v
    }
}

/// Clip x to `[0, w]` and y to `[0, h]` for `max_shape = Some((h, w))`.
#[inline]
pub(crate) fn clip_to_shape(b: BBox, max_shape: Option<(f32, f32)>) -> BBox {
    match max_shape {
        None => b,
        Some((h, w)) => [
            clamp_coord(b[0], w),
            clamp_coord(b[1], h),
            clamp_coord(b[2], w),
            clamp_coord(b[3], h),
        ],
    }
}
