//! Object classes and clutter as 2-D shapes, rasterised with anti-aliasing.
//!
//! Every shape is a signed distance function (SDF) in its own local frame, in
//! pixels: negative inside, positive outside. A pixel's coverage is
//! `clamp(0.5 - sd(centre), 0, 1)`, which gives one pixel of anti-aliased edge.
//! [`Shape`] places a [`Geom`] in the image (centre + rotation) and knows its
//! exact axis-aligned bounding box — the amodal box that gets annotated.

use super::rng::Rng;

/// A 2-D point or vector.
pub(crate) type V2 = [f32; 2];

/// Names of the object classes, in category-id order (id = index + 1). The
/// first [`DEFAULT_CLASSES`] are the benchmark's default classes.
pub const CLASS_NAMES: [&str; MAX_CLASSES] = [
    "disc", "ring", "triangle", "square", "cross", "star", "diamond", "ellipse", "hexagon",
    "crescent", "arrow", "chevron",
];

/// The most classes the generator can draw.
pub const MAX_CLASSES: usize = 12;

/// Number of classes in the default benchmark.
pub const DEFAULT_CLASSES: usize = 8;

/// Shape geometry in a local frame centred on the origin (pixels once scaled).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Geom {
    /// Filled ellipse with half-axes `a` (x) and `b` (y).
    Ellipse { a: f32, b: f32 },
    /// Elliptic annulus; the hole has half-axes `inner * (a, b)`.
    Ring { a: f32, b: f32, inner: f32 },
    /// Axis-aligned rectangle with half-sizes `hx`, `hy`.
    Rect { hx: f32, hy: f32 },
    /// Plus sign: two `2*arm × 2*half` bars.
    Cross { arm: f32, half: f32 },
    /// Simple polygon (any orientation, may be concave).
    Polygon(Vec<V2>),
    /// Disc of radius `r` minus a disc of radius `r2` centred at `(offset, 0)`.
    Crescent { r: f32, offset: f32, r2: f32 },
    /// Thick open polyline (lines, scribbles).
    Polyline { pts: Vec<V2>, half_width: f32 },
    /// Wobbly disc: radius `r * (1 + Σ a_k sin(k θ + φ_k))`, k = 2, 3, 5.
    Blob { r: f32, harm: [(f32, f32); 3] },
    /// `inner` restricted to the half-plane `dot(p, normal) <= offset`.
    Clipped {
        inner: Box<Geom>,
        normal: V2,
        offset: f32,
    },
}

fn len(p: V2) -> f32 {
    (p[0] * p[0] + p[1] * p[1]).sqrt()
}

fn sd_ellipse(p: V2, a: f32, b: f32) -> f32 {
    // First-order approximation (exact on the boundary, good within a few
    // pixels of it, which is all the anti-aliasing needs).
    let k0 = len([p[0] / a, p[1] / b]);
    let k1 = len([p[0] / (a * a), p[1] / (b * b)]);
    if k1 < 1e-12 {
        return -a.min(b);
    }
    k0 * (k0 - 1.0) / k1
}

fn sd_box(p: V2, hx: f32, hy: f32) -> f32 {
    let dx = p[0].abs() - hx;
    let dy = p[1].abs() - hy;
    len([dx.max(0.0), dy.max(0.0)]) + dx.max(dy).min(0.0)
}

fn sd_segment(p: V2, a: V2, b: V2) -> f32 {
    let pa = [p[0] - a[0], p[1] - a[1]];
    let ba = [b[0] - a[0], b[1] - a[1]];
    let bb = ba[0] * ba[0] + ba[1] * ba[1];
    let h = if bb > 0.0 {
        ((pa[0] * ba[0] + pa[1] * ba[1]) / bb).clamp(0.0, 1.0)
    } else {
        0.0
    };
    len([pa[0] - ba[0] * h, pa[1] - ba[1] * h])
}

fn sd_polygon(p: V2, v: &[V2]) -> f32 {
    let n = v.len();
    let mut d = {
        let w = [p[0] - v[0][0], p[1] - v[0][1]];
        w[0] * w[0] + w[1] * w[1]
    };
    let mut s = 1.0f32;
    let mut j = n - 1;
    for i in 0..n {
        let e = [v[j][0] - v[i][0], v[j][1] - v[i][1]];
        let w = [p[0] - v[i][0], p[1] - v[i][1]];
        let t = ((w[0] * e[0] + w[1] * e[1]) / (e[0] * e[0] + e[1] * e[1])).clamp(0.0, 1.0);
        let b = [w[0] - e[0] * t, w[1] - e[1] * t];
        d = d.min(b[0] * b[0] + b[1] * b[1]);
        let c1 = p[1] >= v[i][1];
        let c2 = p[1] < v[j][1];
        let c3 = e[0] * w[1] > e[1] * w[0];
        if (c1 && c2 && c3) || (!c1 && !c2 && !c3) {
            s = -s;
        }
        j = i;
    }
    s * d.sqrt()
}

impl Geom {
    /// Signed distance (pixels) from local point `p` to the boundary.
    pub(crate) fn sd(&self, p: V2) -> f32 {
        match self {
            Geom::Ellipse { a, b } => sd_ellipse(p, *a, *b),
            Geom::Ring { a, b, inner } => {
                sd_ellipse(p, *a, *b).max(-sd_ellipse(p, a * inner, b * inner))
            }
            Geom::Rect { hx, hy } => sd_box(p, *hx, *hy),
            Geom::Cross { arm, half } => sd_box(p, *arm, *half).min(sd_box(p, *half, *arm)),
            Geom::Polygon(v) => sd_polygon(p, v),
            Geom::Crescent { r, offset, r2 } => {
                (len(p) - r).max(-(len([p[0] - offset, p[1]]) - r2))
            }
            Geom::Polyline { pts, half_width } => {
                let mut d = f32::INFINITY;
                for w in pts.windows(2) {
                    d = d.min(sd_segment(p, w[0], w[1]));
                }
                d - half_width
            }
            Geom::Blob { r, harm } => {
                let th = p[1].atan2(p[0]);
                let wobble = harm[0].0 * (2.0 * th + harm[0].1).sin()
                    + harm[1].0 * (3.0 * th + harm[1].1).sin()
                    + harm[2].0 * (5.0 * th + harm[2].1).sin();
                len(p) - r * (1.0 + wobble)
            }
            Geom::Clipped {
                inner,
                normal,
                offset,
            } => inner
                .sd(p)
                .max(p[0] * normal[0] + p[1] * normal[1] - offset),
        }
    }

    /// Multiply every length by `s`.
    pub(crate) fn scale(&mut self, s: f32) {
        match self {
            Geom::Ellipse { a, b } | Geom::Ring { a, b, .. } => {
                *a *= s;
                *b *= s;
            }
            Geom::Rect { hx, hy } => {
                *hx *= s;
                *hy *= s;
            }
            Geom::Cross { arm, half } => {
                *arm *= s;
                *half *= s;
            }
            Geom::Polygon(v) => v.iter_mut().for_each(|p| *p = [p[0] * s, p[1] * s]),
            Geom::Crescent { r, offset, r2 } => {
                *r *= s;
                *offset *= s;
                *r2 *= s;
            }
            Geom::Polyline { pts, half_width } => {
                pts.iter_mut().for_each(|p| *p = [p[0] * s, p[1] * s]);
                *half_width *= s;
            }
            Geom::Blob { r, .. } => *r *= s,
            Geom::Clipped { inner, offset, .. } => {
                inner.scale(s);
                *offset *= s;
            }
        }
    }

    /// Axis-aligned bounds `[x0, y0, x1, y1]` of the shape rotated by the angle
    /// with cosine `c` and sine `s`, relative to its centre. Exact for the object
    /// classes; conservative for clutter (only used to bound rasterisation).
    pub(crate) fn rotated_bounds(&self, c: f32, s: f32) -> [f32; 4] {
        let points_bounds = |pts: &mut dyn Iterator<Item = V2>, pad: f32| {
            let mut b = [
                f32::INFINITY,
                f32::INFINITY,
                f32::NEG_INFINITY,
                f32::NEG_INFINITY,
            ];
            for p in pts {
                let x = c * p[0] - s * p[1];
                let y = s * p[0] + c * p[1];
                b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
            }
            [b[0] - pad, b[1] - pad, b[2] + pad, b[3] + pad]
        };
        match self {
            Geom::Ellipse { a, b } | Geom::Ring { a, b, .. } => {
                let ex = ((a * c).powi(2) + (b * s).powi(2)).sqrt();
                let ey = ((a * s).powi(2) + (b * c).powi(2)).sqrt();
                [-ex, -ey, ex, ey]
            }
            Geom::Rect { hx, hy } => points_bounds(
                &mut [[*hx, *hy], [-hx, *hy], [*hx, -hy], [-hx, -hy]].into_iter(),
                0.0,
            ),
            Geom::Cross { arm, half } => points_bounds(
                &mut [
                    [*arm, *half],
                    [*arm, -half],
                    [-arm, *half],
                    [-arm, -half],
                    [*half, *arm],
                    [-half, *arm],
                    [*half, -arm],
                    [-half, -arm],
                ]
                .into_iter(),
                0.0,
            ),
            Geom::Polygon(v) => points_bounds(&mut v.iter().copied(), 0.0),
            Geom::Crescent { r, offset, r2 } => {
                // The outline's extreme points: outer-circle points outside the
                // bite, plus the two horns (where the circles intersect).
                let n = 1440;
                let mut pts: Vec<V2> = (0..n)
                    .map(|i| {
                        let t = i as f32 * std::f32::consts::TAU / n as f32;
                        [r * t.cos(), r * t.sin()]
                    })
                    .filter(|p| len([p[0] - offset, p[1]]) >= *r2)
                    .collect();
                let hx = (r * r - r2 * r2 + offset * offset) / (2.0 * offset);
                let hy = (r * r - hx * hx).max(0.0).sqrt();
                pts.push([hx, hy]);
                pts.push([hx, -hy]);
                points_bounds(&mut pts.into_iter(), 0.0)
            }
            Geom::Polyline { pts, half_width } => {
                points_bounds(&mut pts.iter().copied(), *half_width)
            }
            Geom::Blob { r, harm } => {
                let e = r * (1.0 + harm.iter().map(|h| h.0.abs()).sum::<f32>());
                [-e, -e, e, e]
            }
            Geom::Clipped { inner, .. } => inner.rotated_bounds(c, s),
        }
    }
}

/// A [`Geom`] placed in the image: centre `(cx, cy)` and rotation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Shape {
    pub(crate) geom: Geom,
    pub(crate) cx: f32,
    pub(crate) cy: f32,
    cos: f32,
    sin: f32,
}

impl Shape {
    /// Place `geom` at `(cx, cy)` rotated by `angle` radians.
    pub(crate) fn new(geom: Geom, cx: f32, cy: f32, angle: f32) -> Self {
        Self {
            geom,
            cx,
            cy,
            cos: angle.cos(),
            sin: angle.sin(),
        }
    }

    /// Bounds relative to the centre (see [`Geom::rotated_bounds`]).
    pub(crate) fn local_bounds(&self) -> [f32; 4] {
        self.geom.rotated_bounds(self.cos, self.sin)
    }

    /// Absolute bounds `[x0, y0, x1, y1]` in image pixels.
    pub(crate) fn bounds(&self) -> [f32; 4] {
        let b = self.local_bounds();
        [
            b[0] + self.cx,
            b[1] + self.cy,
            b[2] + self.cx,
            b[3] + self.cy,
        ]
    }

    /// Image point → local frame.
    #[inline]
    pub(crate) fn to_local(&self, x: f32, y: f32) -> V2 {
        let dx = x - self.cx;
        let dy = y - self.cy;
        [
            self.cos * dx + self.sin * dy,
            -self.sin * dx + self.cos * dy,
        ]
    }

    /// The integer pixel rectangle `(x0, y0, x1, y1)` (exclusive ends) that can
    /// have non-zero coverage, clipped to a `width × height` image.
    pub(crate) fn pixel_range(&self, width: u32, height: u32) -> (u32, u32, u32, u32) {
        let b = self.bounds();
        let clip = |v: f32, hi: u32| v.max(0.0).min(hi as f32) as u32;
        (
            clip((b[0] - 1.0).floor(), width),
            clip((b[1] - 1.0).floor(), height),
            clip((b[2] + 1.0).ceil(), width),
            clip((b[3] + 1.0).ceil(), height),
        )
    }
}

/// Anti-aliased coverage of a pixel from a signed distance.
#[inline]
pub(crate) fn coverage(sd: f32) -> f32 {
    (0.5 - sd).clamp(0.0, 1.0)
}

fn regular(n: usize, start: f32, radius: impl Fn(usize) -> f32) -> Vec<V2> {
    (0..n)
        .map(|i| {
            let t = start + i as f32 * std::f32::consts::TAU / n as f32;
            [radius(i) * t.cos(), radius(i) * t.sin()]
        })
        .collect()
}

/// A random instance of object class `class` (index into [`CLASS_NAMES`]) at a
/// nominal radius of about 1; the caller scales it to the sampled size.
pub(crate) fn class_geom(class: usize, rng: &mut Rng) -> Geom {
    use std::f32::consts::FRAC_PI_2;
    match class {
        // disc: nearly circular.
        0 => Geom::Ellipse {
            a: 1.0,
            b: rng.range(0.92, 1.0),
        },
        // ring: a disc with a hole (looks like a disc when tiny).
        1 => Geom::Ring {
            a: 1.0,
            b: rng.range(0.92, 1.0),
            inner: rng.range(0.45, 0.68),
        },
        // triangle: roughly equilateral.
        2 => {
            let jitter: Vec<(f32, f32)> = (0..3)
                .map(|_| (rng.range(-0.14, 0.14), rng.range(0.9, 1.1)))
                .collect();
            Geom::Polygon(
                (0..3)
                    .map(|i| {
                        let t = FRAC_PI_2 + i as f32 * std::f32::consts::TAU / 3.0 + jitter[i].0;
                        [jitter[i].1 * t.cos(), jitter[i].1 * t.sin()]
                    })
                    .collect(),
            )
        }
        // square: aspect close to 1 (a diamond is the elongated cousin).
        3 => Geom::Rect {
            hx: 1.0,
            hy: rng.range(0.9, 1.0),
        },
        // cross: plus sign of varying bar thickness.
        4 => Geom::Cross {
            arm: 1.0,
            half: rng.range(0.2, 0.36),
        },
        // star: five points.
        5 => {
            let inner = rng.range(0.38, 0.55);
            Geom::Polygon(regular(
                10,
                FRAC_PI_2,
                |i| if i % 2 == 0 { 1.0 } else { inner },
            ))
        }
        // diamond: rhombus with unequal diagonals.
        6 => {
            let k = rng.range(0.5, 0.72);
            Geom::Polygon(vec![[1.0, 0.0], [0.0, k], [-1.0, 0.0], [0.0, -k]])
        }
        // ellipse: clearly elongated.
        7 => Geom::Ellipse {
            a: 1.0,
            b: rng.range(0.45, 0.72),
        },
        // hexagon.
        8 => Geom::Polygon(regular(6, 0.0, |_| 1.0)),
        // crescent.
        9 => Geom::Crescent {
            r: 1.0,
            offset: rng.range(0.35, 0.55),
            r2: rng.range(0.8, 0.95),
        },
        // arrow: shaft + head.
        10 => {
            let t = rng.range(0.14, 0.24);
            let hw = rng.range(0.45, 0.62);
            let neck = rng.range(0.1, 0.3);
            Geom::Polygon(vec![
                [-1.0, -t],
                [neck, -t],
                [neck, -hw],
                [1.0, 0.0],
                [neck, hw],
                [neck, t],
                [-1.0, t],
            ])
        }
        // chevron: a thick "V".
        _ => {
            let w = rng.range(0.45, 0.65);
            Geom::Polygon(vec![
                [-0.6, -1.0],
                [0.6, 0.0],
                [-0.6, 1.0],
                [-0.6 - w, 1.0],
                [0.6 - w, 0.0],
                [-0.6 - w, -1.0],
            ])
        }
    }
}

/// A random clutter shape that is no object class, at an absolute size (pixels)
/// scaled by `k` (image size / 320): a straight line, a scribble, a blob, or a
/// partial shape (a disc, ring, star, cross or hexagon cut roughly in half).
pub(crate) fn distractor_geom(rng: &mut Rng, k: f32) -> Geom {
    let u = rng.f32();
    let thick = || 1.0f32.max(k.sqrt());
    if u < 0.25 {
        let l = rng.log_range(15.0, 120.0) * k;
        Geom::Polyline {
            pts: vec![[-l / 2.0, 0.0], [l / 2.0, 0.0]],
            half_width: rng.range(0.6, 2.2) * thick(),
        }
    } else if u < 0.55 {
        let n = rng.int_in(5, 16) as usize;
        let mut heading = rng.angle();
        let mut p = [0.0f32, 0.0];
        let mut pts = Vec::with_capacity(n);
        for _ in 0..n {
            pts.push(p);
            let step = rng.range(4.0, 12.0) * k;
            heading += rng.normal() * 0.8;
            p = [p[0] + step * heading.cos(), p[1] + step * heading.sin()];
        }
        let m = pts
            .iter()
            .fold([0.0, 0.0], |a, p| [a[0] + p[0], a[1] + p[1]]);
        let m = [m[0] / n as f32, m[1] / n as f32];
        Geom::Polyline {
            pts: pts.iter().map(|p| [p[0] - m[0], p[1] - m[1]]).collect(),
            half_width: rng.range(0.6, 2.0) * thick(),
        }
    } else if u < 0.8 {
        Geom::Blob {
            r: rng.log_range(4.0, 30.0) * k,
            harm: [
                (rng.range(0.0, 0.22), rng.angle()),
                (rng.range(0.0, 0.18), rng.angle()),
                (rng.range(0.0, 0.1), rng.angle()),
            ],
        }
    } else {
        // Only classes whose halves are not themselves a class.
        let class = [0usize, 1, 5, 4, 8][rng.below(5) as usize];
        let mut g = class_geom(class, rng);
        let r = rng.log_range(6.0, 40.0) * k;
        g.scale(r);
        let t = rng.angle();
        Geom::Clipped {
            inner: Box::new(g),
            normal: [t.cos(), t.sin()],
            offset: rng.range(-0.35, 0.05) * r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bounds derived from the rasterised coverage (threshold 0.5).
    fn raster_bounds(shape: &Shape, w: u32, h: u32) -> [f32; 4] {
        let mut b = [
            f32::INFINITY,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
        ];
        for y in 0..h {
            for x in 0..w {
                let p = shape.to_local(x as f32 + 0.5, y as f32 + 0.5);
                if shape.geom.sd(p) <= 0.0 {
                    b = [
                        b[0].min(x as f32),
                        b[1].min(y as f32),
                        b[2].max(x as f32 + 1.0),
                        b[3].max(y as f32 + 1.0),
                    ];
                }
            }
        }
        b
    }

    #[test]
    fn class_boxes_are_tight_around_the_drawn_pixels() {
        let mut rng = Rng::new(3);
        for (class, name) in CLASS_NAMES.iter().enumerate() {
            for _ in 0..4 {
                let mut g = class_geom(class, &mut rng);
                g.scale(30.0);
                let shape = Shape::new(g, 50.0, 50.0, rng.angle());
                let exact = shape.bounds();
                let drawn = raster_bounds(&shape, 100, 100);
                // Pixel quantisation (1 px) plus star tips thinner than a pixel.
                let tol = if *name == "star" { 2.0 } else { 1.01 };
                for (e, d) in exact.iter().zip(drawn) {
                    assert!(
                        (e - d).abs() <= tol,
                        "{name}: exact {exact:?} drawn {drawn:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn sdf_signs_inside_and_outside() {
        let ring = Geom::Ring {
            a: 10.0,
            b: 10.0,
            inner: 0.5,
        };
        assert!(ring.sd([0.0, 0.0]) > 0.0, "hole is outside");
        assert!(ring.sd([7.5, 0.0]) < 0.0);
        assert!(ring.sd([12.0, 0.0]) > 0.0);
        let star = class_geom(5, &mut Rng::new(1));
        assert!(star.sd([0.0, 0.0]) < 0.0);
        assert!(star.sd([0.0, 1.2]) > 0.0);
        let cross = Geom::Cross {
            arm: 10.0,
            half: 2.0,
        };
        assert!(cross.sd([8.0, 0.0]) < 0.0);
        assert!(cross.sd([8.0, 8.0]) > 0.0);
        let half = Geom::Clipped {
            inner: Box::new(Geom::Ellipse { a: 10.0, b: 10.0 }),
            normal: [1.0, 0.0],
            offset: 0.0,
        };
        assert!(half.sd([-5.0, 0.0]) < 0.0);
        assert!(half.sd([5.0, 0.0]) > 0.0);
        assert_eq!(coverage(-3.0), 1.0);
        assert_eq!(coverage(3.0), 0.0);
    }
}
