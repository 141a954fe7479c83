//! The fixed network input size of an exported model: parsing `--input-size WxH`,
//! the default derived from the test scale, and the divisibility check.
//!
//! The size must be a multiple of [`SIZE_DIVISOR`] = 32, the stride of C5, the
//! deepest level the FPN upsamples from: only then is every top-down step an
//! exact ×2 (the `Resize` by constant scales tract runs fast). P6/P7 come from
//! stride-2 convolutions that round up, exactly as in training, where images
//! are padded to a multiple of 32 too.
//!
//! ```
//! use crosskd_trainer::export::input_size::{default_input_size, parse_input_size};
//! assert_eq!(parse_input_size("640x384").unwrap(), (640, 384));
//! assert!(parse_input_size("100x100").unwrap_err().to_string().contains("multiple of 32"));
//! // Test scale (1333, 800) → the landscape canvas 1344×800.
//! assert_eq!(default_input_size((1333, 800)), (1344, 800));
//! ```

use super::ExportError;

/// Width and height must be multiples of this.
pub const SIZE_DIVISOR: usize = 32;

/// Check `(w, h)`.
pub fn check_input_size(w: usize, h: usize) -> Result<(usize, usize), ExportError> {
    if w == 0 || h == 0 || w % SIZE_DIVISOR != 0 || h % SIZE_DIVISOR != 0 {
        let up = |x: usize| x.div_ceil(SIZE_DIVISOR).max(1) * SIZE_DIVISOR;
        return Err(ExportError::InputSize(format!(
            "{w}x{h} is not a multiple of {SIZE_DIVISOR} (the largest backbone stride, which the FPN upsamples from) in both sides; use e.g. {}x{}",
            up(w),
            up(h)
        )));
    }
    Ok((w, h))
}

/// Parse `WxH` (also `W,H`) and check it.
pub fn parse_input_size(s: &str) -> Result<(usize, usize), ExportError> {
    let bad = || {
        ExportError::InputSize(format!(
            "`{s}` is not a size: write WIDTHxHEIGHT, e.g. 640x384"
        ))
    };
    let (w, h) = s.split_once(['x', 'X', ',']).ok_or_else(bad)?;
    let w: usize = w.trim().parse().map_err(|_| bad())?;
    let h: usize = h.trim().parse().map_err(|_| bad())?;
    check_input_size(w, h)
}

/// Landscape `(w, h)` canvas of a `(long, short)` test scale, padded to [`SIZE_DIVISOR`].
pub fn default_input_size(scale: (usize, usize)) -> (usize, usize) {
    let (long, short) = (scale.0.max(scale.1), scale.0.min(scale.1));
    let pad = |x: usize| x.div_ceil(SIZE_DIVISOR).max(1) * SIZE_DIVISOR;
    (pad(long), pad(short))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_input_size("320x320").unwrap(), (320, 320));
        assert_eq!(parse_input_size(" 64 , 96 ").unwrap(), (64, 96));
        for bad in ["320", "axb", "0x64", "320x100", "-32x32"] {
            assert!(parse_input_size(bad).is_err(), "{bad}");
        }
        assert_eq!(default_input_size((320, 320)), (320, 320));
        assert_eq!(default_input_size((800, 1333)), (1344, 800));
    }
}
