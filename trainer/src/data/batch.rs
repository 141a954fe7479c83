//! A collated batch: padded image tensor + per-image annotations and shapes.

use burn::prelude::*;
pub use crosskd_sdk::nn::ImageMeta;

/// Normalised, padded images `[N, 3, H, W]` and their metas.
#[derive(Debug, Clone)]
pub struct Batch<B: Backend> {
    /// Image tensor (normalised, zero-padded bottom/right to a multiple of 32).
    pub images: Tensor<B, 4>,
    /// Per-image metadata, same order as `images`.
    pub metas: Vec<ImageMeta>,
}
