//! Necks: multi-level feature fusion.

pub mod fpn;

pub use fpn::{upsample_nearest, ExtraConvsOn, Fpn, FpnConfig};
