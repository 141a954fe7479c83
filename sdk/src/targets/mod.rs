//! Target assignment (CPU, no autograd).
//!
//! Matches MMDetection 3.x (spec §5.3–5.7): [`atss::AtssAssigner`] (GFL, ATSS),
//! [`max_iou::MaxIouAssigner`] (RetinaNet), [`fcos::fcos_targets`] (FCOS). Anchor
//! assigners produce an [`assign_result::AssignResult`] per image; run them through
//! `assign_valid` so padding anchors are excluded *before* assignment, then turn the
//! result into per-anchor labels / weights / boxes with
//! [`anchor_targets::anchor_targets`].
//!
//! ```
//! use crosskd_sdk::targets::{anchor_targets::anchor_targets, atss::AtssAssigner};
//! let anchors = [[0.0, 0.0, 8.0, 8.0], [8.0, 0.0, 16.0, 8.0], [32.0, 0.0, 40.0, 8.0]];
//! let valid = [true, true, true];
//! let gts = [[0.0, 0.0, 16.0, 8.0]];
//! let assign = AtssAssigner::new(2).assign_valid(&anchors, &[3], &valid, &gts);
//! let t = anchor_targets(&assign, &gts, &[5], 80);
//! assert_eq!(t.labels, vec![5, 5, 80]);
//! assert_eq!(t.num_pos(), 2);
//! ```

pub mod anchor_targets;
pub mod assign_result;
pub mod atss;
pub mod fcos;
pub mod max_iou;

#[cfg(test)]
mod reference_data;
#[cfg(test)]
mod reference_tests;
