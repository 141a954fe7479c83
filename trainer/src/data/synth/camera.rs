//! The "camera": photometric effects applied to the rendered scene, and
//! quantisation to 8-bit RGB.
//!
//! In order: random contrast and brightness, mild Gaussian blur (optics), the
//! colour cast of the shifted domain, then sensor noise.

use super::rng::Rng;
use super::texture::Rgb;

/// Per-channel gain of the domain-shifted variant's colour cast (a warm,
/// tungsten/sodium-lamp look: red up, blue down). Jittered by ±0.03 per image.
pub const SHIFT_CAST_GAIN: [f32; 3] = [1.10, 0.98, 0.78];

/// Per-channel offset of the domain-shifted colour cast (lifts the shadows
/// towards orange), added after the gain.
pub const SHIFT_CAST_OFFSET: [f32; 3] = [0.04, 0.02, 0.0];

/// Photometric settings of one image.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Camera {
    contrast: f32,
    brightness: f32,
    /// Gaussian blur σ in pixels (0 = none).
    blur_sigma: f32,
    /// Sensor noise σ (fraction of full scale).
    noise_sigma: f32,
    /// `(gain, offset)` colour cast, shifted domain only.
    cast: Option<(Rgb, Rgb)>,
}

impl Camera {
    /// No effect at all (tests, hand-built scenes).
    #[cfg(test)]
    pub(crate) fn identity() -> Self {
        Self {
            contrast: 1.0,
            brightness: 0.0,
            blur_sigma: 0.0,
            noise_sigma: 0.0,
            cast: None,
        }
    }

    /// Random settings; `shift` adds the colour cast. `k` is the image-size
    /// scale (size / 320): blur grows with resolution so images look alike.
    pub(crate) fn sample(rng: &mut Rng, shift: bool, k: f32) -> Self {
        let blur_sigma = if rng.chance(0.6) {
            rng.range(0.3, 0.9) * k.max(0.5)
        } else {
            0.0
        };
        let cast = shift.then(|| {
            let mut gain = SHIFT_CAST_GAIN;
            for g in &mut gain {
                *g += rng.range(-0.03, 0.03);
            }
            (gain, SHIFT_CAST_OFFSET)
        });
        Self {
            contrast: rng.range(0.75, 1.25),
            brightness: rng.range(-0.1, 0.1),
            blur_sigma,
            noise_sigma: rng.range(0.003, 0.025),
            cast,
        }
    }

    /// Apply the effects to `buf` (row-major `width × height`) and quantise to
    /// interleaved 8-bit RGB. `rng` drives the sensor noise.
    pub(crate) fn develop(
        &self,
        width: u32,
        height: u32,
        buf: &mut [Rgb],
        rng: &mut Rng,
    ) -> Vec<u8> {
        for c in buf.iter_mut() {
            for v in c.iter_mut() {
                *v = (*v - 0.5) * self.contrast + 0.5 + self.brightness;
            }
        }
        if self.blur_sigma > 0.0 {
            blur(width as usize, height as usize, buf, self.blur_sigma);
        }
        let mut out = Vec::with_capacity(buf.len() * 3);
        for c in buf.iter() {
            let mut c = *c;
            if let Some((gain, offset)) = &self.cast {
                for i in 0..3 {
                    c[i] = c[i] * gain[i] + offset[i];
                }
            }
            for v in c {
                let n = if self.noise_sigma > 0.0 {
                    rng.normal() * self.noise_sigma
                } else {
                    0.0
                };
                out.push(((v + n).clamp(0.0, 1.0) * 255.0 + 0.5) as u8);
            }
        }
        out
    }
}

/// Separable Gaussian blur with clamp-to-edge borders.
fn blur(w: usize, h: usize, buf: &mut [Rgb], sigma: f32) {
    let r = (2.5 * sigma).ceil().max(1.0) as usize;
    let mut kernel: Vec<f32> = (0..=2 * r)
        .map(|i| {
            let d = i as f32 - r as f32;
            (-d * d / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let sum: f32 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= sum);
    let mut tmp = vec![[0.0f32; 3]; buf.len()];
    // Horizontal pass: buf → tmp.
    for y in 0..h {
        let row = &buf[y * w..(y + 1) * w];
        for x in 0..w {
            let mut acc = [0.0f32; 3];
            for (i, k) in kernel.iter().enumerate() {
                let sx = (x + i).saturating_sub(r).min(w - 1);
                let c = row[sx];
                acc[0] += k * c[0];
                acc[1] += k * c[1];
                acc[2] += k * c[2];
            }
            tmp[y * w + x] = acc;
        }
    }
    // Vertical pass: tmp → buf.
    for y in 0..h {
        for x in 0..w {
            let mut acc = [0.0f32; 3];
            for (i, k) in kernel.iter().enumerate() {
                let sy = (y + i).saturating_sub(r).min(h - 1);
                let c = tmp[sy * w + x];
                acc[0] += k * c[0];
                acc[1] += k * c[1];
                acc[2] += k * c[2];
            }
            buf[y * w + x] = acc;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_quantises_and_blur_preserves_flat_images() {
        let mut buf = vec![[0.5, 0.0, 1.0]; 6 * 4];
        let px = Camera::identity().develop(6, 4, &mut buf, &mut Rng::new(0));
        assert_eq!(px.len(), 6 * 4 * 3);
        assert_eq!(&px[..3], &[128, 0, 255]);
        let mut flat = vec![[0.25; 3]; 9 * 7];
        blur(9, 7, &mut flat, 0.8);
        assert!(flat.iter().flatten().all(|v| (v - 0.25).abs() < 1e-5));
    }
}
