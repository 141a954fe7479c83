//! Errors of decoding: inconsistent specs, wrong shapes, bad image geometry.

use super::HeadKind;

/// Why raw outputs could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The number of levels differs from the number of strides.
    #[error("expected {expected} feature levels (one per stride), got {actual}")]
    LevelCount {
        /// `strides.len()`.
        expected: usize,
        /// `levels.len()`.
        actual: usize,
    },
    /// A slice does not hold `channels * height * width` values.
    #[error(
        "level {level}: {tensor} has {actual} values, expected {expected} \
         ({channels} channels x {height} x {width})"
    )]
    ShapeMismatch {
        /// Level index.
        level: usize,
        /// `"cls_score"`, `"bbox_pred"` or `"centerness"`.
        tensor: &'static str,
        /// Expected number of values.
        expected: usize,
        /// Actual slice length.
        actual: usize,
        /// Expected channel count.
        channels: usize,
        /// Feature-map height given in the level.
        height: usize,
        /// Feature-map width given in the level.
        width: usize,
    },
    /// An FCOS/ATSS level without centerness.
    #[error("level {level}: {kind} heads need a centerness output, none was given")]
    MissingCenterness {
        /// Level index.
        level: usize,
        /// Head kind.
        kind: HeadKind,
    },
    /// A GFL/RetinaNet level with a centerness slice (most likely a wiring mistake).
    #[error("level {level}: {kind} heads have no centerness, but one was given")]
    UnexpectedCenterness {
        /// Level index.
        level: usize,
        /// Head kind.
        kind: HeadKind,
    },
    /// The [`DecodeSpec`](super::DecodeSpec) is inconsistent.
    #[error("invalid decode spec: {field}: {reason}")]
    InvalidSpec {
        /// The offending field of the spec.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The image shape is negative or not finite.
    #[error("invalid image shape (h {height}, w {width}): must be finite and >= 0")]
    InvalidImageShape {
        /// Height.
        height: f32,
        /// Width.
        width: f32,
    },
    /// The scale factor is not finite and positive.
    #[error("invalid scale factor (w {w_scale}, h {h_scale}): must be finite and > 0")]
    InvalidScaleFactor {
        /// Width scale.
        w_scale: f32,
        /// Height scale.
        h_scale: f32,
    },
}
