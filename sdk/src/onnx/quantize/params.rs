//! Quantization parameters: 8-bit asymmetric activations, symmetric per-channel
//! int8 weights and int32 biases (ONNX `QuantizeLinear` semantics:
//! `q = saturate(round_half_even(x / scale) + zero_point)`).
//!
//! Activations are **int8** (zero point anywhere in `-128..=127`), not uint8:
//! onnxruntime's AVX2 u8-activation × full-range-i8-weight kernel overflows
//! (see `shared/notes/dependencies.md`), and tract's i8 kernel is the faster one.
//!
//! ```
//! use crosskd_sdk::onnx::quantize::params::QParams;
//! // A post-ReLU range [0, 2.55]: zero maps to -128, 2.55 to 127.
//! let p = QParams::from_range(0.0, 2.55);
//! assert_eq!(p.zero_point, -128);
//! assert_eq!(p.quantize(0.0), -128);
//! assert_eq!(p.quantize(2.55), 127);
//! assert!((p.dequantize(p.quantize(1.0)) - 1.0).abs() <= p.scale / 2.0);
//! ```

/// Scale and zero point of an int8 tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QParams {
    /// Real value of one step.
    pub scale: f32,
    /// The int8 code of 0.0.
    pub zero_point: i8,
}

/// Smallest scale used for degenerate (all-zero) ranges.
const MIN_SCALE: f32 = 1e-8;

/// Round half to even, as ONNX QuantizeLinear does.
pub fn round_half_even(x: f32) -> f32 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    }
}

impl QParams {
    /// Asymmetric int8 parameters covering `[lo, hi]` (extended to contain 0, so
    /// zero — padding, ReLU floor — is exact).
    pub fn from_range(lo: f32, hi: f32) -> Self {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let scale = ((hi - lo) / 255.0).max(MIN_SCALE);
        let zp = (-128.0 - lo / scale).round().clamp(-128.0, 127.0);
        Self {
            scale,
            zero_point: zp as i8,
        }
    }

    /// `x` → int8.
    pub fn quantize(&self, x: f32) -> i8 {
        (round_half_even(x / self.scale) + self.zero_point as f32).clamp(-128.0, 127.0) as i8
    }

    /// int8 → real.
    pub fn dequantize(&self, q: i8) -> f32 {
        (q as i32 - self.zero_point as i32) as f32 * self.scale
    }
}

/// A weight quantized per output channel, symmetric (zero point 0), in `-127..=127`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantWeight {
    /// int8 values, same layout as the float weight.
    pub values: Vec<i8>,
    /// One scale per output channel.
    pub scales: Vec<f32>,
}

/// Quantize an `[out, …]` weight per output channel.
pub fn quantize_weight(w: &[f32], out_channels: usize) -> QuantWeight {
    let per = w.len() / out_channels.max(1);
    let mut values = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(out_channels);
    for row in w.chunks_exact(per.max(1)) {
        let m = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let s = if m > 0.0 { m / 127.0 } else { 1.0 };
        values.extend(
            row.iter()
                .map(|v| round_half_even(v / s).clamp(-127.0, 127.0) as i8),
        );
        scales.push(s);
    }
    QuantWeight { values, scales }
}

/// int32 bias for input scale `x_scale` and per-channel weight scales.
pub fn quantize_bias(b: &[f32], x_scale: f32, w_scales: &[f32]) -> Vec<i32> {
    b.iter()
        .zip(w_scales)
        .map(|(b, ws)| {
            let s = (x_scale as f64) * (*ws as f64);
            (*b as f64 / s)
                .round()
                .clamp(i32::MIN as f64, i32::MAX as f64) as i32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_contain_zero_and_round_trip() {
        let p = QParams::from_range(-1.0, 3.0);
        assert_eq!(p.dequantize(p.quantize(0.0)), 0.0);
        for x in [-1.0f32, -0.3, 0.7, 2.9, 3.0] {
            assert!(
                (p.dequantize(p.quantize(x)) - x).abs() <= p.scale * 0.5 + 1e-6,
                "{x}"
            );
        }
        // Saturation.
        assert_eq!(p.quantize(100.0), 127);
        assert_eq!(p.quantize(-100.0), -128);
        // Positive-only range still holds zero exactly.
        let p = QParams::from_range(0.5, 1.0);
        assert_eq!(p.dequantize(p.quantize(0.0)), 0.0);
        // Degenerate range.
        let p = QParams::from_range(0.0, 0.0);
        assert!(p.scale > 0.0);
    }

    #[test]
    fn weights_per_channel() {
        let w = [0.5, -1.0, 0.25, 2.0, 0.0, -0.0];
        let q = quantize_weight(&w, 3);
        assert_eq!(q.scales, vec![1.0 / 127.0, 2.0 / 127.0, 1.0]);
        assert_eq!(&q.values[..2], &[64, -127]);
        assert_eq!(&q.values[2..4], &[16, 127]);
        assert_eq!(quantize_bias(&[1.0], 0.5, &[0.25]), vec![8]);
        assert_eq!(round_half_even(2.5), 2.0);
        assert_eq!(round_half_even(-2.5), -2.0);
        assert_eq!(round_half_even(3.5), 4.0);
    }
}
