//! Procedural colour: noise functions, object textures ([`Paint`]) and
//! backgrounds ([`Background`]).
//!
//! Object textures are evaluated in the object's local frame, so they rotate and
//! scale with it; their period is tied to the object size (a few repeats across
//! the object), which makes texture a useful cue on large objects and nearly
//! invisible on small ones.

use super::rng::{hash2, hash2_unit, Rng};
use super::shapes::{MAX_CLASSES, V2};

/// Linear RGB-ish colour, each channel in `[0, 1]`.
pub(crate) type Rgb = [f32; 3];

/// HSV (all in `[0, 1]`) → RGB.
pub(crate) fn hsv(h: f32, s: f32, v: f32) -> Rgb {
    let h6 = (h - h.floor()) * 6.0;
    let i = h6.floor();
    let f = h6 - i;
    let p = v * (1.0 - s);
    let q = v * (1.0 - s * f);
    let t = v * (1.0 - s * (1.0 - f));
    match i as u32 % 6 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

#[inline]
pub(crate) fn lerp3(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

#[inline]
fn scale3(a: Rgb, s: f32) -> Rgb {
    [a[0] * s, a[1] * s, a[2] * s]
}

#[inline]
fn fract(x: f32) -> f32 {
    x - x.floor()
}

/// Smooth value noise in `[0, 1]` with unit lattice spacing.
pub(crate) fn value_noise(seed: u32, x: f32, y: f32) -> f32 {
    let x0 = x.floor();
    let y0 = y.floor();
    let (ix, iy) = (x0 as i32, y0 as i32);
    let fx = x - x0;
    let fy = y - y0;
    let sx = fx * fx * (3.0 - 2.0 * fx);
    let sy = fy * fy * (3.0 - 2.0 * fy);
    let a = hash2_unit(seed, ix, iy);
    let b = hash2_unit(seed, ix + 1, iy);
    let c = hash2_unit(seed, ix, iy + 1);
    let d = hash2_unit(seed, ix + 1, iy + 1);
    let top = a + (b - a) * sx;
    let bottom = c + (d - c) * sx;
    top + (bottom - top) * sy
}

/// Fractal sum of `octaves` value-noise octaves, normalised to `[0, 1]`.
pub(crate) fn fbm(seed: u32, x: f32, y: f32, octaves: u32) -> f32 {
    let mut sum = 0.0;
    let mut amp = 1.0;
    let mut norm = 0.0;
    let (mut x, mut y) = (x, y);
    for o in 0..octaves {
        sum += amp * value_noise(seed.wrapping_add(o.wrapping_mul(0x9E37_79B9)), x, y);
        norm += amp;
        amp *= 0.5;
        // Rotate a little between octaves to hide the lattice.
        let (nx, ny) = (1.6 * x + 1.2 * y, -1.2 * x + 1.6 * y);
        x = nx + 17.3;
        y = ny + 5.1;
    }
    sum / norm
}

/// Cellular (Worley) noise with unit cell size: distances to the nearest and
/// second-nearest feature point, and the nearest point's cell hash.
pub(crate) fn worley(seed: u32, x: f32, y: f32) -> (f32, f32, u32) {
    let (cx, cy) = (x.floor() as i32, y.floor() as i32);
    let mut f1 = f32::INFINITY;
    let mut f2 = f32::INFINITY;
    let mut id = 0;
    for dy in -1..=1 {
        for dx in -1..=1 {
            let (gx, gy) = (cx + dx, cy + dy);
            let h = hash2(seed, gx, gy);
            let px = gx as f32 + (h & 0xFFFF) as f32 / 65536.0;
            let py = gy as f32 + (h >> 16) as f32 / 65536.0;
            let d = ((px - x).powi(2) + (py - y).powi(2)).sqrt();
            if d < f1 {
                f2 = f1;
                f1 = d;
                id = h;
            } else if d < f2 {
                f2 = d;
            }
        }
    }
    (f1, f2, id)
}

/// A smooth scalar field sampled every `step` pixels and read back with
/// bilinear interpolation: smooth noise costs a fraction of evaluating it at
/// every pixel.
struct Field {
    cols: usize,
    step: f32,
    vals: Vec<f32>,
}

impl Field {
    fn new(width: u32, height: u32, step: u32, f: impl Fn(f32, f32) -> f32) -> Self {
        let cols = (width / step + 2) as usize;
        let rows = (height / step + 2) as usize;
        let mut vals = Vec::with_capacity(cols * rows);
        for gy in 0..rows {
            for gx in 0..cols {
                vals.push(f(
                    (gx as u32 * step) as f32 + 0.5,
                    (gy as u32 * step) as f32 + 0.5,
                ));
            }
        }
        Self {
            cols,
            step: step as f32,
            vals,
        }
    }

    #[inline]
    fn at(&self, x: u32, y: u32) -> f32 {
        let (gx, gy) = (x as f32 / self.step, y as f32 / self.step);
        let (ix, iy) = (gx as usize, gy as usize);
        let (fx, fy) = (gx - ix as f32, gy - iy as f32);
        let i = iy * self.cols + ix;
        let top = self.vals[i] + (self.vals[i + 1] - self.vals[i]) * fx;
        let bottom = self.vals[i + self.cols]
            + (self.vals[i + self.cols + 1] - self.vals[i + self.cols]) * fx;
        top + (bottom - top) * fy
    }
}

/// Surface pattern of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Texture {
    /// One colour (plus shading).
    Solid,
    /// Parallel bands.
    Stripes,
    /// Checkerboard.
    Checker,
    /// Polka dots.
    Dots,
    /// Linear or radial two-colour gradient.
    Gradient,
    /// Smooth two-colour noise.
    Noise,
}

const ALL_TEXTURES: [Texture; 6] = [
    Texture::Solid,
    Texture::Stripes,
    Texture::Checker,
    Texture::Dots,
    Texture::Gradient,
    Texture::Noise,
];

/// Each class's usual texture (used with probability [`CLASS_TEXTURE_PROB`],
/// otherwise a random one). Similar-looking classes share one on purpose:
/// disc/ellipse (gradient), square/diamond (checker).
pub(crate) const CLASS_TEXTURE: [Texture; MAX_CLASSES] = [
    Texture::Gradient, // disc
    Texture::Solid,    // ring
    Texture::Stripes,  // triangle
    Texture::Checker,  // square
    Texture::Noise,    // cross
    Texture::Dots,     // star
    Texture::Checker,  // diamond
    Texture::Gradient, // ellipse
    Texture::Noise,    // hexagon
    Texture::Solid,    // crescent
    Texture::Stripes,  // arrow
    Texture::Dots,     // chevron
];

/// Probability that an object wears its class's usual texture.
pub(crate) const CLASS_TEXTURE_PROB: f32 = 0.7;

/// Pick the texture of an object of class `class`.
pub(crate) fn class_texture(class: usize, rng: &mut Rng) -> Texture {
    if rng.chance(CLASS_TEXTURE_PROB) {
        CLASS_TEXTURE[class]
    } else {
        ALL_TEXTURES[rng.below(ALL_TEXTURES.len() as u32) as usize]
    }
}

/// A random, fairly saturated object colour (any hue: colour says nothing about
/// the class).
pub(crate) fn object_colour(rng: &mut Rng) -> Rgb {
    hsv(rng.f32(), rng.range(0.3, 1.0), rng.range(0.35, 1.0))
}

/// A second colour that contrasts with `c` in value and often in hue.
fn contrasting(rng: &mut Rng, c: Rgb) -> Rgb {
    let v = c[0].max(c[1]).max(c[2]);
    let v2 = if v > 0.6 {
        v - rng.range(0.3, 0.5)
    } else {
        v + rng.range(0.3, 0.5)
    };
    hsv(rng.f32(), rng.range(0.1, 0.9), v2.clamp(0.05, 1.0))
}

/// How an object is coloured: texture, colours and pattern geometry, all in
/// the object's local frame.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Paint {
    pub(crate) texture: Texture,
    pub(crate) c1: Rgb,
    pub(crate) c2: Rgb,
    /// Pattern period in pixels.
    period: f32,
    /// Pattern direction (unit vector).
    dir: V2,
    /// Object half-size in pixels (gradient span, shading normalisation).
    extent: f32,
    /// Radial instead of linear gradient.
    radial: bool,
    seed: u32,
    /// Shading: brightness changes by `dot(p, shade)` (pre-divided by extent).
    shade: V2,
}

impl Paint {
    /// A flat colour without shading (tests, hand-built scenes).
    #[cfg(test)]
    pub(crate) fn solid(c: Rgb) -> Self {
        Self {
            texture: Texture::Solid,
            c1: c,
            c2: c,
            period: 1.0,
            dir: [1.0, 0.0],
            extent: 1.0,
            radial: false,
            seed: 0,
            shade: [0.0, 0.0],
        }
    }

    /// Random paint of `texture` for an object of half-size `extent` pixels.
    pub(crate) fn sample(rng: &mut Rng, texture: Texture, extent: f32) -> Self {
        let c1 = object_colour(rng);
        let c2 = contrasting(rng, c1);
        let extent = extent.max(1.0);
        let repeats = rng.range(2.0, 4.5);
        let period = (2.0 * extent / repeats).max(3.0);
        let t = rng.angle();
        let light = rng.angle();
        let amount = rng.range(0.0, 0.3);
        Self {
            texture,
            c1,
            c2,
            period,
            dir: [t.cos(), t.sin()],
            extent,
            radial: rng.chance(0.5),
            seed: rng.seed32(),
            shade: [amount * light.cos() / extent, amount * light.sin() / extent],
        }
    }

    /// The same paint with another pair of colours (crowd members).
    pub(crate) fn recoloured(&self, rng: &mut Rng) -> Self {
        let mut p = self.clone();
        p.c1 = lerp3(p.c1, object_colour(rng), 0.3);
        p
    }

    /// Colour at local point `p`.
    #[inline]
    pub(crate) fn colour(&self, p: V2) -> Rgb {
        let base = match self.texture {
            Texture::Solid => self.c1,
            Texture::Stripes => {
                let u = (p[0] * self.dir[0] + p[1] * self.dir[1]) / self.period;
                // Distance (px) from the edge of a half-duty band.
                let tri = (fract(u) - 0.5).abs() - 0.25;
                let t = (0.5 - tri * self.period).clamp(0.0, 1.0);
                lerp3(self.c1, self.c2, t)
            }
            Texture::Checker => {
                let u = (p[0] * self.dir[0] + p[1] * self.dir[1]) / self.period;
                let v = (-p[0] * self.dir[1] + p[1] * self.dir[0]) / self.period;
                let parity = (u.floor() as i64 + v.floor() as i64) & 1;
                let edge =
                    ((fract(u) - 0.5).abs().max((fract(v) - 0.5).abs()) - 0.5).abs() * self.period;
                let t = 0.5 + (edge.min(0.5)) * if parity == 0 { 1.0 } else { -1.0 };
                lerp3(self.c1, self.c2, t)
            }
            Texture::Dots => {
                let u = (p[0] * self.dir[0] + p[1] * self.dir[1]) / self.period;
                let v = (-p[0] * self.dir[1] + p[1] * self.dir[0]) / self.period;
                let du = fract(u) - 0.5;
                let dv = fract(v) - 0.5;
                let d = (du * du + dv * dv).sqrt() * self.period;
                let t = (0.3 * self.period - d + 0.5).clamp(0.0, 1.0);
                lerp3(self.c1, self.c2, t)
            }
            Texture::Gradient => {
                let t = if self.radial {
                    let q = [p[0] + 0.3 * self.extent * self.dir[0], p[1]];
                    ((q[0] * q[0] + q[1] * q[1]).sqrt() / (1.3 * self.extent)).min(1.0)
                } else {
                    (0.5 + 0.5 * (p[0] * self.dir[0] + p[1] * self.dir[1]) / self.extent)
                        .clamp(0.0, 1.0)
                };
                lerp3(self.c1, self.c2, t)
            }
            Texture::Noise => {
                let n = fbm(self.seed, p[0] / self.period, p[1] / self.period, 2);
                lerp3(self.c1, self.c2, ((n - 0.5) * 2.5 + 0.5).clamp(0.0, 1.0))
            }
        };
        let s = (1.0 + p[0] * self.shade[0] + p[1] * self.shade[1]).max(0.0);
        scale3(base, s)
    }
}

/// Background families. The first four are the benchmark's; `Cells` and
/// `Marble` appear only in the domain-shifted variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BackgroundKind {
    /// Smooth fractal noise through a three-colour ramp.
    Noise,
    /// Linear or radial gradient with a little noise.
    Gradient,
    /// Random-width coloured bands at a random angle.
    Stripes,
    /// Tiles with grout lines, slightly rotated.
    Tiles,
    /// (shifted) Voronoi cells with dark borders, like cobblestones.
    Cells,
    /// (shifted) Turbulent sine veins, like marble or wood.
    Marble,
}

/// A background: family, palette and geometry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Background {
    pub(crate) kind: BackgroundKind,
    palette: [Rgb; 3],
    /// Feature size in pixels.
    scale: f32,
    dir: V2,
    seed: u32,
    radial: bool,
    /// Amplitude of the low-frequency illumination variation.
    light: f32,
}

/// A muted background colour.
fn background_colour(rng: &mut Rng) -> Rgb {
    hsv(rng.f32(), rng.range(0.0, 0.45), rng.range(0.2, 0.85))
}

impl Background {
    /// A flat grey background (tests, hand-built scenes).
    #[cfg(test)]
    pub(crate) fn flat(v: f32) -> Self {
        Self {
            kind: BackgroundKind::Gradient,
            palette: [[v; 3]; 3],
            scale: 1.0,
            dir: [1.0, 0.0],
            seed: 0,
            radial: false,
            light: 0.0,
        }
    }

    /// A random background; `shift` selects the shifted families. `k` is the
    /// image-size scale (size / 320).
    pub(crate) fn sample(rng: &mut Rng, shift: bool, k: f32) -> Self {
        let kind = if shift {
            [BackgroundKind::Cells, BackgroundKind::Marble][rng.below(2) as usize]
        } else {
            [
                BackgroundKind::Noise,
                BackgroundKind::Gradient,
                BackgroundKind::Stripes,
                BackgroundKind::Tiles,
            ][rng.below(4) as usize]
        };
        let palette = [
            background_colour(rng),
            background_colour(rng),
            background_colour(rng),
        ];
        let scale = k * match kind {
            BackgroundKind::Noise => rng.log_range(30.0, 160.0),
            BackgroundKind::Gradient => 1.0,
            BackgroundKind::Stripes => rng.log_range(8.0, 60.0),
            BackgroundKind::Tiles => rng.log_range(14.0, 60.0),
            BackgroundKind::Cells => rng.log_range(14.0, 50.0),
            BackgroundKind::Marble => rng.log_range(20.0, 80.0),
        };
        let t = match kind {
            BackgroundKind::Tiles => rng.range(-0.3, 0.3),
            _ => rng.angle(),
        };
        Self {
            kind,
            palette,
            scale: scale.max(2.0),
            dir: [t.cos(), t.sin()],
            seed: rng.seed32(),
            radial: rng.chance(0.4),
            light: rng.range(0.0, 0.25),
        }
    }

    /// Fill a `width × height` row-major buffer.
    pub(crate) fn render(&self, width: u32, height: u32, out: &mut [Rgb]) {
        let (w, h) = (width as f32, height as f32);
        let diag = (w * w + h * h).sqrt().max(1.0);
        let [p0, p1, p2] = self.palette;
        let ramp = |t: f32| {
            if t < 0.5 {
                lerp3(p0, p1, t * 2.0)
            } else {
                lerp3(p1, p2, t * 2.0 - 1.0)
            }
        };
        let tile_colour = |id: u32| {
            let base = self.palette[(id % 3) as usize];
            scale3(base, 0.8 + 0.4 * ((id >> 8) & 0xFF) as f32 / 255.0)
        };
        let light_scale = diag * 0.4;
        let light = Field::new(width, height, 8, |fx, fy| {
            value_noise(self.seed ^ 0xA5A5_A5A5, fx / light_scale, fy / light_scale)
        });
        // Smooth noise on a 2-px grid (the finest octave's period is >= 3.5 px).
        let smooth = match self.kind {
            BackgroundKind::Noise => Some(Field::new(width, height, 2, |fx, fy| {
                fbm(self.seed, fx / self.scale, fy / self.scale, 4)
            })),
            BackgroundKind::Marble => Some(Field::new(width, height, 2, |fx, fy| {
                fbm(
                    self.seed,
                    fx / (2.0 * self.scale),
                    fy / (2.0 * self.scale),
                    3,
                )
            })),
            _ => None,
        };
        let smooth_at = |x: u32, y: u32| smooth.as_ref().map_or(0.0, |f| f.at(x, y));
        for y in 0..height {
            for x in 0..width {
                let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
                let u = fx * self.dir[0] + fy * self.dir[1];
                let v = -fx * self.dir[1] + fy * self.dir[0];
                let c = match self.kind {
                    BackgroundKind::Noise => {
                        let n = smooth_at(x, y);
                        ramp(((n - 0.5) * 1.8 + 0.5).clamp(0.0, 1.0))
                    }
                    BackgroundKind::Gradient => {
                        let t = if self.radial {
                            let (cx, cy) = (w * (0.5 + 0.3 * self.dir[0]), h * 0.5);
                            ((fx - cx).hypot(fy - cy) / (0.7 * diag)).min(1.0)
                        } else {
                            (u / diag + 0.5).clamp(0.0, 1.0)
                        };
                        lerp3(p0, p1, t)
                    }
                    BackgroundKind::Stripes => {
                        let s = u / self.scale;
                        let band = s.floor() as i32;
                        let f = s - s.floor();
                        let id = hash2(self.seed, band, 0);
                        let c = tile_colour(id);
                        // Anti-alias against the neighbouring band.
                        let edge_px = f.min(1.0 - f) * self.scale;
                        if edge_px < 0.5 {
                            let other = if f < 0.5 { band - 1 } else { band + 1 };
                            let oc = tile_colour(hash2(self.seed, other, 0));
                            lerp3(oc, c, 0.5 + edge_px)
                        } else {
                            c
                        }
                    }
                    BackgroundKind::Tiles => {
                        let (tu, tv) = (u / self.scale, v / self.scale);
                        let id = hash2(self.seed, tu.floor() as i32, tv.floor() as i32);
                        let (eu, ev) = (fract(tu), fract(tv));
                        let edge_px = eu.min(1.0 - eu).min(ev.min(1.0 - ev)) * self.scale;
                        let grout = scale3(p2, 0.35);
                        let t = (edge_px - 1.0).clamp(0.0, 1.0);
                        lerp3(grout, tile_colour(id), t)
                    }
                    BackgroundKind::Cells => {
                        let (f1, f2, id) = worley(self.seed, fx / self.scale, fy / self.scale);
                        let edge_px = (f2 - f1) * self.scale * 0.5;
                        let t = (edge_px - 0.8).clamp(0.0, 1.0);
                        let shade = 0.75 + 0.25 * (1.0 - f1).max(0.0);
                        lerp3(scale3(p2, 0.25), scale3(tile_colour(id), shade), t)
                    }
                    BackgroundKind::Marble => {
                        let turb = smooth_at(x, y);
                        let s = (std::f32::consts::TAU * (u / self.scale + 2.5 * turb)).sin();
                        ramp(0.5 + 0.5 * s)
                    }
                };
                let c = if self.light > 0.0 {
                    let l = light.at(x, y);
                    scale3(c, 1.0 + self.light * (l - 0.5) * 2.0)
                } else {
                    c
                };
                out[(y * width + x) as usize] = c;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_bounded_and_deterministic() {
        for i in 0..1000 {
            let (x, y) = (i as f32 * 0.37 - 50.0, i as f32 * 0.11 - 20.0);
            let n = fbm(9, x, y, 4);
            assert!((0.0..=1.0).contains(&n));
            assert_eq!(n, fbm(9, x, y, 4));
            let (f1, f2, _) = worley(3, x, y);
            assert!(f1 <= f2);
        }
        let c = hsv(0.0, 1.0, 1.0);
        assert_eq!(c, [1.0, 0.0, 0.0]);
    }

    #[test]
    fn every_texture_and_background_stays_in_range() {
        let mut rng = Rng::new(5);
        for t in ALL_TEXTURES {
            let paint = Paint::sample(&mut rng, t, 20.0);
            for i in 0..400 {
                let p = [(i % 20) as f32 * 2.0 - 20.0, (i / 20) as f32 * 2.0 - 20.0];
                let c = paint.colour(p);
                assert!(
                    c.iter().all(|v| v.is_finite() && (0.0..=1.4).contains(v)),
                    "{t:?} {c:?}"
                );
            }
        }
        for shift in [false, true] {
            for _ in 0..8 {
                let bg = Background::sample(&mut rng, shift, 0.2);
                let mut buf = vec![[0.0; 3]; 64 * 48];
                bg.render(64, 48, &mut buf);
                assert!(buf
                    .iter()
                    .flatten()
                    .all(|v| v.is_finite() && (0.0..=1.4).contains(v)));
                let shifted = matches!(bg.kind, BackgroundKind::Cells | BackgroundKind::Marble);
                assert_eq!(shifted, shift);
            }
        }
    }
}
