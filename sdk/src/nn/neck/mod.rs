//! Necks: multi-level feature fusion.

pub mod fpn;

pub use fpn::{ExtraConvsOn, Fpn, FpnConfig};
