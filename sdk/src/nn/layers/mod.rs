//! Building blocks shared by backbones, necks and heads.

pub mod batch_broadcast;
pub mod batch_norm;
pub mod conv;
pub mod conv_module;
pub mod scale;

pub use batch_broadcast::{channel_vector, group_norm, repeat_over_batch};
pub use batch_norm::{EvalBatchNorm2d, EvalBatchNorm2dConfig};
pub use conv::{conv2d, conv_forward, ConvInit};
pub use conv_module::{ConvModule, ConvModuleConfig};
pub use scale::Scale;
