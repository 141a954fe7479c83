//! Cross-checks against an independent numpy implementation.
//!
//! `reference_data.py` (next to this file, not part of the build) re-implements the
//! three assigners with whole-array numpy code, runs them on seeded random GTs over
//! the grids rebuilt below and writes the expected arrays to `reference_data.rs`:
//!
//! ```text
//! pip install numpy
//! python3 trainer/src/targets/reference_data.py > trainer/src/targets/reference_data.rs
//! ```
//!
//! The seeds are picked so that no IoU is within 1e-4 of a threshold and no FCOS
//! distance within 1e-3 of a range bound, so the comparison is exact (`==`) on
//! indices and labels.

use crate::boxes::BBox;

use super::anchor_targets::anchor_targets;
use super::assign_result::AssignResult;
use super::atss::AtssAssigner;
use super::fcos::{fcos_targets, FcosTargetConfig};
use super::max_iou::MaxIouAssigner;
use super::reference_data as data;

/// `(h, w, stride)` of the levels of the 100 x 76 batch image.
const LEVELS: [(usize, usize, usize); 3] = [(10, 13, 8), (5, 7, 16), (3, 4, 32)];
/// The image's own padded size, which decides the valid flags.
const OWN_W: usize = 64;
const OWN_H: usize = 64;

/// Parse a whitespace-separated list from `reference_data.rs`.
fn parse<T: std::str::FromStr>(s: &str) -> Vec<T>
where
    T::Err: std::fmt::Debug,
{
    s.split_whitespace().map(|v| v.parse().unwrap()).collect()
}

fn parse_boxes(s: &str) -> Vec<BBox> {
    parse::<f32>(s)
        .chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect()
}

fn level_sizes() -> Vec<usize> {
    LEVELS.iter().map(|&(h, w, _)| h * w).collect()
}

/// MMDet valid flags: cell (x, y) valid iff x < ceil(own_w / s) and y < ceil(own_h / s);
/// `per_cell` copies per location.
fn valid_flags(per_cell: usize) -> Vec<bool> {
    let mut out = Vec::new();
    for &(h, w, s) in &LEVELS {
        for y in 0..h {
            for x in 0..w {
                let v = x < OWN_W.div_ceil(s) && y < OWN_H.div_ceil(s);
                out.extend(std::iter::repeat_n(v, per_cell));
            }
        }
    }
    out
}

/// GFL/ATSS anchors: one square of side 8·stride centred at (x·stride, y·stride).
fn atss_anchors() -> Vec<BBox> {
    let mut out = Vec::new();
    for &(h, w, s) in &LEVELS {
        let half = (8 * s) as f32 / 2.0;
        for y in 0..h {
            for x in 0..w {
                let (cx, cy) = ((x * s) as f32, (y * s) as f32);
                out.push([cx - half, cy - half, cx + half, cy + half]);
            }
        }
    }
    out
}

/// RetinaNet anchors: 9 per location (ratio-major), half sizes from the reference.
fn retina_anchors() -> Vec<BBox> {
    let halves = [
        data::RETINA_HALF_SIZES_S8,
        data::RETINA_HALF_SIZES_S16,
        data::RETINA_HALF_SIZES_S32,
    ];
    let mut out = Vec::new();
    for (&(h, w, s), halves) in LEVELS.iter().zip(halves) {
        let halves = parse::<f32>(halves);
        for y in 0..h {
            for x in 0..w {
                let (cx, cy) = ((x * s) as f32, (y * s) as f32);
                for hw in halves.chunks_exact(2) {
                    out.push([cx - hw[0], cy - hw[1], cx + hw[0], cy + hw[1]]);
                }
            }
        }
    }
    out
}

/// FCOS points ((x + 0.5)·stride, (y + 0.5)·stride).
fn fcos_points() -> Vec<[f32; 2]> {
    let mut out = Vec::new();
    for &(h, w, s) in &LEVELS {
        for y in 0..h {
            for x in 0..w {
                out.push([(x as f32 + 0.5) * s as f32, (y as f32 + 0.5) * s as f32]);
            }
        }
    }
    out
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-6, "{what}[{i}]: {g} vs {w}");
    }
}

#[test]
fn atss_matches_numpy() {
    let anchors = atss_anchors();
    let gts = parse_boxes(data::ATSS_GTS);
    let r = AtssAssigner::default().assign(&anchors, &level_sizes(), &gts);
    assert_eq!(r.gt_inds, parse::<i32>(data::ATSS_GT_INDS));
    assert_close(
        &r.max_overlaps,
        &parse::<f32>(data::ATSS_MAX_OVERLAPS),
        "max_overlaps",
    );
    assert!(r.num_pos() >= 8);
}

#[test]
fn atss_with_valid_flags_matches_numpy() {
    let anchors = atss_anchors();
    let gts = parse_boxes(data::ATSS_GTS);
    let valid = valid_flags(1);
    let r = AtssAssigner::default().assign_valid(&anchors, &level_sizes(), &valid, &gts);
    let want = parse::<i32>(data::ATSS_VALID_GT_INDS);
    assert_eq!(r.gt_inds, want);
    assert_close(
        &r.max_overlaps,
        &parse::<f32>(data::ATSS_VALID_MAX_OVERLAPS),
        "max_overlaps",
    );
    // Padding changes the outcome of some *valid* anchors too (top-k over fewer anchors).
    let plain = parse::<i32>(data::ATSS_GT_INDS);
    assert!((0..anchors.len()).any(|i| valid[i] && want[i] != plain[i]));
    assert!(valid
        .iter()
        .zip(&r.gt_inds)
        .all(|(&v, &g)| v || g == AssignResult::IGNORE));
}

#[test]
fn max_iou_matches_numpy() {
    let anchors = retina_anchors();
    let gts = parse_boxes(data::MAXIOU_GTS);
    let a = MaxIouAssigner::default();
    let r = a.assign(&anchors, &gts);
    assert_eq!(r.gt_inds, parse::<i32>(data::MAXIOU_GT_INDS));
    let mo = parse::<f32>(data::MAXIOU_MAX_OVERLAPS);
    assert_close(&r.max_overlaps, &mo, "max_overlaps");
    // The case exercises all three outcomes and low-quality positives below 0.5.
    assert!(r.gt_inds.contains(&AssignResult::IGNORE));
    assert!(r.pos_inds().iter().any(|&p| r.max_overlaps[p] < 0.5));

    let valid = valid_flags(9);
    let r = a.assign_valid(&anchors, &valid, &gts);
    assert_eq!(r.gt_inds, parse::<i32>(data::MAXIOU_VALID_GT_INDS));
    let masked: Vec<f32> = mo
        .iter()
        .zip(&valid)
        .map(|(&m, &v)| if v { m } else { 0.0 })
        .collect();
    assert_close(&r.max_overlaps, &masked, "valid max_overlaps");

    // And through the target builder: ignored anchors get label_weight 0.
    let labels: Vec<usize> = (0..gts.len()).collect();
    let t = anchor_targets(&r, &gts, &labels, 80);
    for i in 0..anchors.len() {
        assert_eq!(
            t.label_weights[i] == 0.0,
            r.gt_inds[i] == AssignResult::IGNORE
        );
    }
}

fn check_fcos(cfg: &FcosTargetConfig, gts: &str, gt_labels: &str, labels: &str, targets: &str) {
    let points = fcos_points();
    let gts = parse_boxes(gts);
    let t = fcos_targets(
        cfg,
        &points,
        &level_sizes(),
        &gts,
        &parse::<usize>(gt_labels),
    );
    assert_eq!(t.labels, parse::<usize>(labels));
    let got: Vec<f32> = t.bbox_targets.iter().flatten().copied().collect();
    assert_close(&got, &parse::<f32>(targets), "bbox_targets");
    assert!(t.num_pos() >= 10);
}

/// Ranges shrunk to (-1,16], [16,32], [32,1e8] so every level gets positives on the
/// small image.
fn fcos_cfg() -> FcosTargetConfig {
    FcosTargetConfig {
        strides: vec![8.0, 16.0, 32.0],
        regress_ranges: vec![(-1.0, 16.0), (16.0, 32.0), (32.0, 1e8)],
        ..Default::default()
    }
}

#[test]
fn fcos_matches_numpy() {
    check_fcos(
        &fcos_cfg(),
        data::FCOS_PLAIN_GTS,
        data::FCOS_PLAIN_GT_LABELS,
        data::FCOS_PLAIN_LABELS,
        data::FCOS_PLAIN_BBOX_TARGETS,
    );
}

#[test]
fn fcos_centre_sampling_and_norm_match_numpy() {
    let cfg = FcosTargetConfig {
        center_sampling: true,
        norm_on_bbox: true,
        ..fcos_cfg()
    };
    check_fcos(
        &cfg,
        data::FCOS_CS_NORM_GTS,
        data::FCOS_CS_NORM_GT_LABELS,
        data::FCOS_CS_NORM_LABELS,
        data::FCOS_CS_NORM_BBOX_TARGETS,
    );
}
