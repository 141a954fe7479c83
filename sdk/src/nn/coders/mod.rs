//! Differentiable box coders (burn tensor versions of the SDK coders).
//!
//! All coders work on `[M, 4]` xyxy boxes (`x2 − x1` widths, no `+1`) and are generic over
//! `B: Backend`, so gradients flow through them under `Autodiff<B>`.

pub mod columns;
pub mod delta_xywh;
pub mod distance_point;
pub mod integral;

pub use distance_point::{bbox2distance, distance2bbox, BBOX2DISTANCE_EPS};
pub use integral::integral;
