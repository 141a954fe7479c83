//! Detection and distillation losses as burn tensor code.
//!
//! Every loss is generic over `B: Backend` and differentiable under `Autodiff<B>`.
//! Conventions shared by all files (MMDetection 3.x behaviour):
//! - a loss returns a scalar `Tensor<B, 1>` of shape `[1]`, reduced by
//!   [`reduce::weight_reduce_loss`]: `Σ(loss·w) / (avg_factor + f32::EPSILON)` when an
//!   `avg_factor` is given, the plain mean of `loss·w` otherwise;
//! - `loss_weight` multipliers of the configs are NOT applied here: the caller multiplies;
//! - targets (labels, IoU scores, teacher logits, box targets) and weights are detached inside
//!   the loss, so no gradient ever reaches them (every weight in the GFL/RetinaNet/ATSS/FCOS
//!   and CrossKD losses is a constant: label weights, detached scores, centerness targets);
//! - log-terms are computed with `log_sigmoid` / `log_softmax`, never `log(sigmoid(x))`, so
//!   logits of ±50 (or more) give finite values and gradients.

pub mod cross_entropy;
pub mod distribution_focal;
pub mod elementwise;
pub mod focal;
pub mod iou;
pub mod kd_quality_focal;
pub mod kl_div;
pub mod l1;
pub mod pkd;
pub mod quality_focal;
pub mod reduce;

#[cfg(test)]
pub(crate) mod test_util;

pub use cross_entropy::binary_cross_entropy_with_logits;
pub use distribution_focal::distribution_focal_loss;
pub use focal::{sigmoid_focal_loss, FOCAL_ALPHA, FOCAL_GAMMA};
pub use iou::{aligned_overlaps, giou_loss, iou_loss, IouLossMode, OverlapMode, IOU_LOSS_EPS};
pub use kd_quality_focal::{kd_quality_focal_loss, KD_QFL_BETA};
pub use kl_div::{knowledge_distillation_kl_div_loss, ClassReduction};
pub use l1::{l1_loss, smooth_l1_loss};
pub use pkd::{align_to, channel_standardise, pkd_loss};
pub use quality_focal::{quality_focal_loss, QFL_BETA};
pub use reduce::{weight_reduce_loss, weight_reduce_rows};
