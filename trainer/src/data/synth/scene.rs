//! Scene layout (what goes where) and rendering with a per-pixel owner mask.
//!
//! A [`Layout`] is a list of [`Item`]s in drawing order over a background.
//! Objects are sampled with COCO's size mix, placed so that boxes overlap only
//! partially, and interleaved with clutter. Rendering composites every item
//! (later items on top), records which group owns each pixel, and drops objects
//! whose visible fraction fell below `1 - max_occlusion`. Annotated boxes are
//! amodal: the full shape's box, also where it is partly hidden.

use super::camera::Camera;
use super::rng::Rng;
use super::shapes::{class_geom, coverage, distractor_geom, Shape};
use super::texture::{class_texture, lerp3, Background, Paint, Rgb};
use super::SynthConfig;

/// Image size at which the size mix matches COCO's absolute thresholds; object
/// sizes scale with `size / REFERENCE_SIZE`.
pub const REFERENCE_SIZE: f32 = 320.0;

/// COCO's "small" upper bound on area (pixels², at [`REFERENCE_SIZE`]).
pub const SMALL_AREA: f32 = 32.0 * 32.0;

/// COCO's "medium" upper bound on area (pixels², at [`REFERENCE_SIZE`]).
pub const MEDIUM_AREA: f32 = 96.0 * 96.0;

/// Target share of small / medium / large objects among the annotations
/// (COCO's train2017 mix is about 41 / 34 / 24 %).
pub const SIZE_MIX: [f32; 3] = [0.40, 0.35, 0.25];

/// Probabilities with which the bins are *sampled*: slightly more large objects
/// than [`SIZE_MIX`], because some large ones find no free place and are
/// skipped, so that the annotations end up at [`SIZE_MIX`].
const SAMPLE_MIX: [f32; 3] = [0.39, 0.34, 0.27];

/// Smallest object side at [`REFERENCE_SIZE`], pixels.
const MIN_SIDE: f32 = 8.0;

/// Largest object side as a fraction of the image's short side.
const MAX_SIDE_FRACTION: f32 = 0.7;

/// Two object boxes may share at most this fraction of the smaller box.
const MAX_BOX_OVERLAP: f32 = 0.55;

/// Owner-mask tag of clutter pixels.
const CLUTTER: u16 = u16::MAX;

/// An annotated unit: one object, or one crowd of same-class objects.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Group {
    /// Class index (category id - 1).
    pub(crate) class: usize,
    /// A crowd region (`iscrowd = 1`).
    pub(crate) crowd: bool,
}

/// One thing to draw.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Item {
    pub(crate) shape: Shape,
    pub(crate) paint: Paint,
    /// Index into [`Layout::groups`]; `None` for clutter.
    pub(crate) group: Option<usize>,
}

/// Everything needed to render one image.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layout {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) background: Background,
    pub(crate) camera: Camera,
    pub(crate) groups: Vec<Group>,
    /// Drawing order: later items cover earlier ones.
    pub(crate) items: Vec<Item>,
    /// Objects more occluded than this fraction are not annotated.
    pub(crate) max_occlusion: f32,
}

/// One annotation of a rendered image.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Annotation {
    pub(crate) class: usize,
    /// `[x, y, w, h]` in pixels, snapped to quarter pixels (so `w * h` is exact).
    pub(crate) bbox: [f64; 4],
    pub(crate) crowd: bool,
    /// Fraction of the object's pixels left visible.
    pub(crate) visible: f32,
}

/// A rendered image with its annotations.
#[derive(Debug, Clone)]
pub(crate) struct Rendered {
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// Interleaved 8-bit RGB, row-major.
    pub(crate) rgb: Vec<u8>,
    pub(crate) annotations: Vec<Annotation>,
    /// Objects dropped because they were hidden beyond `max_occlusion`.
    pub(crate) dropped: usize,
}

/// COCO size bin of a box area at image-size scale `k`: 0 small, 1 medium, 2 large.
pub(crate) fn size_bin(area: f64, k: f32) -> usize {
    let k2 = f64::from(k * k);
    if area < f64::from(SMALL_AREA) * k2 {
        0
    } else if area < f64::from(MEDIUM_AREA) * k2 {
        1
    } else {
        2
    }
}

fn box_area(b: &[f32; 4]) -> f32 {
    (b[2] - b[0]).max(0.0) * (b[3] - b[1]).max(0.0)
}

fn overlap_ok(b: &[f32; 4], placed: &[[f32; 4]]) -> bool {
    placed.iter().all(|p| {
        let iw = (b[2].min(p[2]) - b[0].max(p[0])).max(0.0);
        let ih = (b[3].min(p[3]) - b[1].max(p[1])).max(0.0);
        iw * ih <= MAX_BOX_OVERLAP * box_area(b).min(box_area(p))
    })
}

/// A centre for a shape with local bounds `lb` that keeps it inside the image,
/// or `None` if it does not fit.
fn centre_inside(rng: &mut Rng, lb: &[f32; 4], w: f32, h: f32) -> Option<(f32, f32)> {
    let (lo_x, hi_x) = (1.0 - lb[0], w - 1.0 - lb[2]);
    let (lo_y, hi_y) = (1.0 - lb[1], h - 1.0 - lb[3]);
    (lo_x <= hi_x && lo_y <= hi_y).then(|| (rng.range(lo_x, hi_x), rng.range(lo_y, hi_y)))
}

/// Sample a scene for one `width × height` image.
pub(crate) fn sample_layout(cfg: &SynthConfig, rng: &mut Rng, width: u32, height: u32) -> Layout {
    let k = cfg.size as f32 / REFERENCE_SIZE;
    let (w, h) = (width as f32, height as f32);
    let background = Background::sample(rng, cfg.shift, k);
    let camera = Camera::sample(rng, cfg.shift, k);
    let mut groups = Vec::new();
    let mut items = Vec::new();
    let mut placed: Vec<[f32; 4]> = Vec::new();

    let max_side = MAX_SIDE_FRACTION * w.min(h);
    // Objects scale with the image and, on top, with `object_scale`.
    let ko = k * cfg.object_scale;
    let min_side = (MIN_SIDE * ko).max(4.0);
    // Area ranges of the three bins, in pixels² of this image.
    let k2 = ko * ko;
    let bins = [
        (min_side * min_side, SMALL_AREA * k2),
        (SMALL_AREA * k2, MEDIUM_AREA * k2),
        (
            MEDIUM_AREA * k2,
            (max_side * max_side).max(MEDIUM_AREA * k2 * 1.2),
        ),
    ];

    if cfg.crowd_prob > 0.0 && rng.chance(cfg.crowd_prob) {
        place_crowd(cfg, rng, k, w, h, &mut groups, &mut items, &mut placed);
    }

    let n = rng.int_in(cfg.min_objects, cfg.max_objects);
    for _ in 0..n {
        let class = rng.below(cfg.classes as u32) as usize;
        let u = rng.f32();
        let bin = if u < SAMPLE_MIX[0] {
            0
        } else if u < SAMPLE_MIX[0] + SAMPLE_MIX[1] {
            1
        } else {
            2
        };
        let (lo, hi) = bins[bin];
        let mut found = None;
        'attempts: for _ in 0..3 {
            let mut geom = class_geom(class, rng);
            let angle = rng.angle();
            let (c, s) = (angle.cos(), angle.sin());
            let nb = geom.rotated_bounds(c, s);
            let (nw, nh) = (nb[2] - nb[0], nb[3] - nb[1]);
            let area = rng.log_range(lo, hi);
            let scale = (area / (nw * nh))
                .sqrt()
                .min((w - 2.0) / nw)
                .min((h - 2.0) / nh);
            geom.scale(scale);
            let lb = geom.rotated_bounds(c, s);
            for _ in 0..10 {
                let Some((cx, cy)) = centre_inside(rng, &lb, w, h) else {
                    continue 'attempts;
                };
                let b = [lb[0] + cx, lb[1] + cy, lb[2] + cx, lb[3] + cy];
                if overlap_ok(&b, &placed) {
                    found = Some((Shape::new(geom, cx, cy, angle), b));
                    break 'attempts;
                }
            }
        }
        let Some((shape, b)) = found else { continue };
        let extent = 0.5 * ((b[2] - b[0]) * (b[3] - b[1])).sqrt();
        let texture = class_texture(class, rng);
        let paint = Paint::sample(rng, texture, extent);
        groups.push(Group {
            class,
            crowd: false,
        });
        items.push(Item {
            shape,
            paint,
            group: Some(groups.len() - 1),
        });
        placed.push(b);
    }

    // Clutter: anywhere (may leave the image), drawn between the objects.
    let m = rng.int_in(cfg.min_clutter, cfg.max_clutter);
    for _ in 0..m {
        let geom = distractor_geom(rng, k);
        let shape = Shape::new(geom, rng.range(0.0, w), rng.range(0.0, h), rng.angle());
        let b = shape.bounds();
        let extent = 0.5 * ((b[2] - b[0]) * (b[3] - b[1])).sqrt();
        let texture = class_texture(rng.below(cfg.classes as u32) as usize, rng);
        let paint = Paint::sample(rng, texture, extent);
        let at = rng.below(items.len() as u32 + 1) as usize;
        items.insert(
            at,
            Item {
                shape,
                paint,
                group: None,
            },
        );
    }

    Layout {
        width,
        height,
        background,
        camera,
        groups,
        items,
        max_occlusion: cfg.max_occlusion,
    }
}

/// A dense cluster of small objects of one class, annotated as one crowd box.
#[allow(clippy::too_many_arguments)]
fn place_crowd(
    cfg: &SynthConfig,
    rng: &mut Rng,
    k: f32,
    w: f32,
    h: f32,
    groups: &mut Vec<Group>,
    items: &mut Vec<Item>,
    placed: &mut Vec<[f32; 4]>,
) {
    let class = rng.below(cfg.classes as u32) as usize;
    let region = (rng.range(40.0, 90.0) * k).min(0.5 * w.min(h));
    let (rx0, ry0) = (
        rng.range(1.0, w - 1.0 - region),
        rng.range(1.0, h - 1.0 - region),
    );
    let count = rng.int_in(8, 20);
    let side = (6.0 * k).max(4.0);
    let texture = class_texture(class, rng);
    let base = Paint::sample(rng, texture, side);
    let g = groups.len();
    let mut bounds = [
        f32::INFINITY,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NEG_INFINITY,
    ];
    let mut members = Vec::new();
    for _ in 0..count {
        let mut geom = class_geom(class, rng);
        let angle = rng.angle();
        let (c, s) = (angle.cos(), angle.sin());
        let nb = geom.rotated_bounds(c, s);
        let area = rng.log_range((5.0 * k).max(4.0).powi(2), (12.0 * k).max(5.0).powi(2));
        geom.scale((area / ((nb[2] - nb[0]) * (nb[3] - nb[1]))).sqrt());
        let lb = geom.rotated_bounds(c, s);
        let cx = (rx0 + rng.range(0.0, region)).clamp(1.0 - lb[0], w - 1.0 - lb[2]);
        let cy = (ry0 + rng.range(0.0, region)).clamp(1.0 - lb[1], h - 1.0 - lb[3]);
        let shape = Shape::new(geom, cx, cy, angle);
        let b = shape.bounds();
        bounds = [
            bounds[0].min(b[0]),
            bounds[1].min(b[1]),
            bounds[2].max(b[2]),
            bounds[3].max(b[3]),
        ];
        members.push(Item {
            shape,
            paint: base.recoloured(rng),
            group: Some(g),
        });
    }
    groups.push(Group { class, crowd: true });
    items.extend(members);
    placed.push(bounds);
}

/// Union of the bounds of a group's items, clipped to the image and snapped to
/// quarter pixels, as COCO `[x, y, w, h]`.
fn group_box(items: &[Item], g: usize, width: u32, height: u32) -> [f64; 4] {
    let mut b = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    for it in items.iter().filter(|it| it.group == Some(g)) {
        let s = it.shape.bounds().map(f64::from);
        b = [
            b[0].min(s[0]),
            b[1].min(s[1]),
            b[2].max(s[2]),
            b[3].max(s[3]),
        ];
    }
    let snap = |v: f64, hi: u32| ((v.clamp(0.0, f64::from(hi))) * 4.0).round() / 4.0;
    let x0 = snap(b[0], width);
    let y0 = snap(b[1], height);
    let x1 = snap(b[2], width).max(x0 + 0.25).min(f64::from(width));
    let y1 = snap(b[3], height).max(y0 + 0.25).min(f64::from(height));
    [x0, y0, x1 - x0, y1 - y0]
}

/// Draw `layout`: background, items in order, owner mask, visibility filter,
/// camera effects. `rng` drives the sensor noise only.
pub(crate) fn render(layout: &Layout, rng: &mut Rng) -> Rendered {
    let (width, height) = (layout.width, layout.height);
    let n = (width * height) as usize;
    let mut buf: Vec<Rgb> = vec![[0.0; 3]; n];
    layout.background.render(width, height, &mut buf);

    let ng = layout.groups.len();
    assert!(ng < CLUTTER as usize, "too many objects in one image");
    // 0 = background, CLUTTER = clutter, g + 1 = group g.
    let mut owner = vec![0u16; n];
    let mut own = vec![0u32; ng];
    // Crowd members overlap each other: count each pixel once per crowd.
    let mut crowd_claim = if layout.groups.iter().any(|g| g.crowd) {
        vec![0u16; n]
    } else {
        Vec::new()
    };

    for item in &layout.items {
        let (x0, y0, x1, y1) = item.shape.pixel_range(width, height);
        let tag = item.group.map_or(CLUTTER, |g| g as u16 + 1);
        let crowd = item.group.is_some_and(|g| layout.groups[g].crowd);
        for y in y0..y1 {
            let row = (y * width) as usize;
            for x in x0..x1 {
                let p = item.shape.to_local(x as f32 + 0.5, y as f32 + 0.5);
                let cov = coverage(item.shape.geom.sd(p));
                if cov <= 0.0 {
                    continue;
                }
                let i = row + x as usize;
                buf[i] = lerp3(buf[i], item.paint.colour(p), cov);
                if cov >= 0.5 {
                    owner[i] = tag;
                    if let Some(g) = item.group {
                        if !crowd || crowd_claim[i] != tag {
                            own[g] += 1;
                        }
                        if crowd {
                            crowd_claim[i] = tag;
                        }
                    }
                }
            }
        }
    }

    let mut visible = vec![0u32; ng];
    for &o in &owner {
        if o != 0 && o != CLUTTER {
            visible[o as usize - 1] += 1;
        }
    }
    let mut annotations = Vec::new();
    let mut dropped = 0;
    for (g, group) in layout.groups.iter().enumerate() {
        let frac = if own[g] == 0 {
            0.0
        } else {
            visible[g] as f32 / own[g] as f32
        };
        if own[g] == 0 || 1.0 - frac > layout.max_occlusion {
            dropped += 1;
            continue;
        }
        annotations.push(Annotation {
            class: group.class,
            bbox: group_box(&layout.items, g, width, height),
            crowd: group.crowd,
            visible: frac,
        });
    }
    let rgb = layout.camera.develop(width, height, &mut buf, rng);
    Rendered {
        width,
        height,
        rgb,
        annotations,
        dropped,
    }
}

#[cfg(test)]
mod tests {
    use super::super::shapes::Geom;
    use super::*;

    fn hand_built(items: Vec<(Geom, f32, f32, Option<usize>)>, classes: &[usize]) -> Layout {
        Layout {
            width: 64,
            height: 64,
            background: Background::flat(0.5),
            camera: Camera::identity(),
            groups: classes
                .iter()
                .map(|&class| Group {
                    class,
                    crowd: false,
                })
                .collect(),
            items: items
                .into_iter()
                .enumerate()
                .map(|(i, (geom, cx, cy, group))| Item {
                    shape: Shape::new(geom, cx, cy, 0.0),
                    paint: Paint::solid([0.1 * i as f32, 0.9, 0.2]),
                    group,
                })
                .collect(),
            max_occlusion: 0.7,
        }
    }

    #[test]
    fn fully_covered_object_is_dropped() {
        // A small disc (class 0) under a big square (class 3) drawn later.
        let layout = hand_built(
            vec![
                (Geom::Ellipse { a: 6.0, b: 6.0 }, 32.0, 32.0, Some(0)),
                (Geom::Rect { hx: 20.0, hy: 20.0 }, 32.0, 32.0, Some(1)),
            ],
            &[0, 3],
        );
        let r = render(&layout, &mut Rng::new(0));
        assert_eq!(r.dropped, 1);
        assert_eq!(r.annotations.len(), 1);
        let a = &r.annotations[0];
        assert_eq!(a.class, 3);
        assert_eq!(a.bbox, [12.0, 12.0, 40.0, 40.0]);
        assert_eq!(a.visible, 1.0);
    }

    #[test]
    fn partly_covered_object_keeps_its_amodal_box_and_clutter_counts_as_occluder() {
        // Square covered on its right half by a later square: ~50% visible, kept,
        // with the full (amodal) box.
        let layout = hand_built(
            vec![
                (Geom::Rect { hx: 10.0, hy: 10.0 }, 20.0, 32.0, Some(0)),
                (Geom::Rect { hx: 10.0, hy: 10.0 }, 30.0, 32.0, Some(1)),
            ],
            &[3, 3],
        );
        let r = render(&layout, &mut Rng::new(0));
        assert_eq!(r.dropped, 0);
        assert_eq!(r.annotations[0].bbox, [10.0, 22.0, 20.0, 20.0]);
        assert!((r.annotations[0].visible - 0.5).abs() < 0.01);

        // The same disc hidden by clutter (not an object) is dropped as well.
        let layout = hand_built(
            vec![
                (Geom::Ellipse { a: 5.0, b: 5.0 }, 32.0, 32.0, Some(0)),
                (Geom::Ellipse { a: 12.0, b: 12.0 }, 32.0, 32.0, None),
            ],
            &[0],
        );
        let r = render(&layout, &mut Rng::new(0));
        assert_eq!((r.dropped, r.annotations.len()), (1, 0));
    }

    #[test]
    fn drawing_order_decides_colour() {
        let layout = hand_built(
            vec![
                (Geom::Rect { hx: 10.0, hy: 10.0 }, 32.0, 32.0, Some(0)),
                (Geom::Rect { hx: 4.0, hy: 4.0 }, 32.0, 32.0, Some(1)),
            ],
            &[3, 3],
        );
        let r = render(&layout, &mut Rng::new(0));
        let px = |x: usize, y: usize| {
            let p = &r.rgb[(y * 64 + x) * 3..(y * 64 + x) * 3 + 3];
            [p[0] as f32, p[1] as f32, p[2] as f32]
        };
        let close =
            |a: [f32; 3], b: [f32; 3]| a.iter().zip(b).all(|(x, y)| (x - y * 255.0).abs() <= 1.0);
        assert!(close(px(32, 32), [0.1, 0.9, 0.2])); // top square
        assert!(close(px(24, 32), [0.0, 0.9, 0.2])); // bottom square
        assert!(close(px(2, 2), [0.5, 0.5, 0.5])); // background
    }
}
