//! COCO bbox evaluation reproducing pycocotools' `COCOeval` (`iouType="bbox"`)
//! number for number.
//!
//! The semantics, as pycocotools implements them:
//!
//! * Evaluated images are the sorted, de-duplicated GT image ids; evaluated
//!   categories the sorted GT category ids. Detections on other images or
//!   categories are ignored.
//! * IoU thresholds `np.linspace(.5, .95, 10)` (so the ninth is
//!   `0.8999999999999999`), recall thresholds `np.linspace(0, 1, 101)`,
//!   `maxDets = [1, 10, 100]`, area ranges all `[0, 1e10]`, small `[0, 32²]`,
//!   medium `[32², 96²]`, large `[96², 1e10]`, bounds inclusive on both sides.
//!   GT use their `area` field, detections `w * h`.
//! * Per image and category: detections sorted by descending score (stable)
//!   and cut to 100; GT with crowd or out-of-range area are "ignored" and
//!   moved (stably) behind the others. IoU is `inter / union` on xywh boxes
//!   without `+1`, and `inter / det_area` against crowd GT.
//! * Greedy matching per IoU threshold, detections in score order: a detection
//!   takes the GT with the highest IoU `>= thr` (a later GT wins a tie) among
//!   GT not yet taken (crowd GT can be taken again), and once it holds a
//!   non-ignored GT it does not look at ignored ones. Detections matched to an
//!   ignored GT, and unmatched detections outside the area range, are ignored.
//! * Accumulation per category, area range and maxDets: detections of all
//!   images (each image cut to maxDets) concatenated in image order, stably
//!   sorted by descending score; cumulative TP/FP; precision
//!   `tp / (tp + fp + eps)` made non-increasing from the right and sampled at
//!   the first index whose recall reaches each recall threshold (0 past the
//!   end); recall `tp / #non-ignored GT`. Categories without non-ignored GT
//!   stay -1 and are left out of the means (numpy's pairwise-summed mean).
//! * One pycocotools quirk is kept on purpose: a detection matched to a GT
//!   whose annotation id is 0 is counted as unmatched (pycocotools stores the
//!   matched GT id and tests it for non-zero).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use rayon::prelude::*;

use crate::data::coco::{CocoDataset, CocoDetection};

/// Names of [`CocoStats::stats`], in pycocotools' `COCOeval.stats` order.
pub const STAT_NAMES: [&str; 12] = [
    "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
];

/// Number of IoU thresholds (.50:.05:.95).
pub const NUM_IOU_THRS: usize = 10;
/// Number of recall thresholds (0:.01:1).
pub const NUM_REC_THRS: usize = 101;
/// `maxDets` of pycocotools.
pub const MAX_DETS: [usize; 3] = [1, 10, 100];
/// Area ranges `(label, min, max)`, both bounds inclusive, in pixels².
pub const AREA_RANGES: [(&str, f64, f64); 4] = [
    ("all", 0.0, 1e10),
    ("small", 0.0, 1024.0),
    ("medium", 1024.0, 9216.0),
    ("large", 9216.0, 1e10),
];

const T: usize = NUM_IOU_THRS;
const R: usize = NUM_REC_THRS;
const A: usize = AREA_RANGES.len();
const M: usize = MAX_DETS.len();
const MAX_DET: usize = MAX_DETS[M - 1];

/// `np.linspace(start, stop, N)` exactly: `i * ((stop - start) / (N - 1)) + start`,
/// the last value set to `stop`.
fn linspace<const N: usize>(start: f64, stop: f64) -> [f64; N] {
    let step = (stop - start) / (N - 1) as f64;
    let mut out = [0.0; N];
    for (i, v) in out.iter_mut().enumerate() {
        *v = i as f64 * step + start;
    }
    out[N - 1] = stop;
    out
}

/// IoU thresholds, bit-identical to pycocotools' `np.linspace(.5, .95, 10)`.
pub fn iou_thresholds() -> [f64; NUM_IOU_THRS] {
    linspace(0.5, 0.95)
}

/// Recall thresholds, bit-identical to pycocotools' `np.linspace(0, 1, 101)`.
pub fn recall_thresholds() -> [f64; NUM_REC_THRS] {
    linspace(0.0, 1.0)
}

/// The 12 COCO summary numbers plus per-category AP.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoStats {
    /// AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl (see
    /// [`STAT_NAMES`]); -1 where undefined (no GT in that area range).
    pub stats: [f64; 12],
    /// `(category_id, name, AP@[.5:.95] area=all maxDets=100)` for every GT
    /// category in id order; AP is -1 for a category without (non-crowd) GT.
    pub per_class: Vec<(u64, String, f64)>,
}

impl CocoStats {
    /// The named stat (`"AP"`, `"AR100"`, ... see [`STAT_NAMES`]).
    pub fn get(&self, name: &str) -> Option<f64> {
        STAT_NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| self.stats[i])
    }

    /// The 12 stats as a JSON object with exactly the keys of [`STAT_NAMES`].
    pub fn to_json(&self) -> serde_json::Value {
        let map = STAT_NAMES
            .iter()
            .zip(self.stats)
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(v)))
            .collect::<serde_json::Map<_, _>>();
        serde_json::Value::Object(map)
    }

    /// [`Self::to_json`] as pretty-printed text with the keys in
    /// [`STAT_NAMES`] order (a `serde_json::Map` would sort them).
    pub fn to_json_string(&self) -> String {
        let body = STAT_NAMES
            .iter()
            .zip(self.stats)
            .map(|(k, v)| format!("  \"{k}\": {}", serde_json::Value::from(v)))
            .collect::<Vec<_>>()
            .join(",\n");
        format!("{{\n{body}\n}}")
    }
}

impl fmt::Display for CocoStats {
    /// pycocotools' `summarize()` lines, then a per-category AP table.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // (is AP, IoU label, area label, maxDets) for each stat.
        const LINES: [(bool, &str, &str, usize); 12] = [
            (true, "0.50:0.95", "all", 100),
            (true, "0.50", "all", 100),
            (true, "0.75", "all", 100),
            (true, "0.50:0.95", "small", 100),
            (true, "0.50:0.95", "medium", 100),
            (true, "0.50:0.95", "large", 100),
            (false, "0.50:0.95", "all", 1),
            (false, "0.50:0.95", "all", 10),
            (false, "0.50:0.95", "all", 100),
            (false, "0.50:0.95", "small", 100),
            (false, "0.50:0.95", "medium", 100),
            (false, "0.50:0.95", "large", 100),
        ];
        for ((ap, iou, area, max_dets), v) in LINES.iter().zip(self.stats) {
            let (title, kind) = if *ap {
                ("Average Precision", "(AP)")
            } else {
                ("Average Recall", "(AR)")
            };
            writeln!(
                f,
                " {title:<18} {kind} @[ IoU={iou:<9} | area={area:>6} | maxDets={max_dets:>3} ] = {v:.3}"
            )?;
        }
        if !self.per_class.is_empty() {
            let w = self
                .per_class
                .iter()
                .map(|(_, n, _)| n.chars().count())
                .max()
                .unwrap_or(0)
                .max(8);
            writeln!(f)?;
            writeln!(f, " {:>11}  {:<w$}  {:>6}", "category_id", "name", "AP")?;
            for (id, name, ap) in &self.per_class {
                if *ap < 0.0 {
                    writeln!(f, " {id:>11}  {name:<w$}  {:>6}", "no GT")?;
                } else {
                    writeln!(f, " {id:>11}  {name:<w$}  {ap:>6.3}")?;
                }
            }
        }
        Ok(())
    }
}

/// Evaluate `dets` against `gt` like pycocotools `COCOeval(gt, dt, "bbox")`
/// followed by `evaluate(); accumulate(); summarize()`.
///
/// Shorthand for `CocoEvaluator::new(gt).evaluate(dets)`; build a
/// [`CocoEvaluator`] once to evaluate several result sets against one GT.
///
/// ```
/// use crosskd_trainer::data::coco::{CocoAnnotation, CocoCategory, CocoDataset, CocoDetection, CocoImage};
/// use crosskd_trainer::eval::evaluate;
///
/// let gt = CocoDataset {
///     images: vec![CocoImage { id: 1, file_name: "a.jpg".into(), width: 640, height: 480 }],
///     annotations: vec![CocoAnnotation {
///         id: 1, image_id: 1, category_id: 1, bbox: [10.0, 10.0, 50.0, 40.0], area: 2000.0, iscrowd: 0,
///     }],
///     categories: vec![CocoCategory { id: 1, name: "car".into() }],
/// };
/// let dets = [CocoDetection { image_id: 1, category_id: 1, bbox: [10.0, 10.0, 50.0, 40.0], score: 0.9 }];
/// let stats = evaluate(&gt, &dets);
/// // A single TP: precision tp / (tp + fp + eps) = 1 / (1 + 2^-52), as in pycocotools.
/// assert!((stats.get("AP").unwrap() - 1.0).abs() < 1e-15);
/// assert_eq!(stats.get("APs"), Some(-1.0)); // no small GT
/// println!("{stats}");
/// ```
pub fn evaluate(gt: &CocoDataset, dets: &[CocoDetection]) -> CocoStats {
    CocoEvaluator::new(gt).evaluate(dets)
}

#[derive(Debug, Clone, Copy)]
struct GtBox {
    bbox: [f64; 4],
    area: f64,
    crowd: bool,
    id: u64,
}

#[derive(Debug, Clone, Copy)]
struct DtBox {
    bbox: [f64; 4],
    area: f64,
    score: f64,
}

/// Per category, the runs `(image index, range)` of a flat box array grouped
/// by (category, image), images ascending, original order inside a run.
type Groups = Vec<Vec<(usize, Range<usize>)>>;

/// Stable grouping of `(category index, image index, item)` triples.
fn group<B: Copy>(mut items: Vec<(usize, usize, B)>, num_cats: usize) -> (Vec<B>, Groups) {
    items.sort_by_key(|&(k, i, _)| (k, i)); // stable: keeps file order within a group
    let mut groups: Groups = vec![Vec::new(); num_cats];
    let mut start = 0;
    while start < items.len() {
        let (k, i, _) = items[start];
        let mut end = start + 1;
        while end < items.len() && items[end].0 == k && items[end].1 == i {
            end += 1;
        }
        groups[k].push((i, start..end));
        start = end;
    }
    (items.into_iter().map(|(_, _, b)| b).collect(), groups)
}

/// pycocotools' COCOeval (bbox) bound to one ground truth; see the
/// [module docs](self) for the exact semantics.
#[derive(Debug, Clone)]
pub struct CocoEvaluator {
    img_index: HashMap<u64, usize>,
    categories: Vec<(u64, String)>,
    cat_index: HashMap<u64, usize>,
    gts: Vec<GtBox>,
    gt_groups: Groups,
}

impl CocoEvaluator {
    /// Index the ground truth. Annotations on undeclared images or categories
    /// are skipped (as pycocotools does); [`CocoDataset::validate`] rejects
    /// them at load time.
    pub fn new(gt: &CocoDataset) -> Self {
        let mut img_ids: Vec<u64> = gt.images.iter().map(|i| i.id).collect();
        img_ids.sort_unstable();
        img_ids.dedup();
        let img_index = img_ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();

        let mut categories: Vec<(u64, String)> = gt
            .categories
            .iter()
            .map(|c| (c.id, c.name.clone()))
            .collect();
        categories.sort_by_key(|c| c.0);
        categories.dedup_by_key(|c| c.0);
        let cat_index: HashMap<u64, usize> = categories
            .iter()
            .enumerate()
            .map(|(k, c)| (c.0, k))
            .collect();

        let mut this = Self {
            img_index,
            categories,
            cat_index,
            gts: Vec::new(),
            gt_groups: Vec::new(),
        };
        let items = gt
            .annotations
            .iter()
            .filter_map(|a| {
                let (k, i) = this.indices(a.image_id, a.category_id)?;
                let b = GtBox {
                    bbox: a.bbox,
                    area: a.area,
                    crowd: a.iscrowd != 0,
                    id: a.id,
                };
                Some((k, i, b))
            })
            .collect();
        (this.gts, this.gt_groups) = group(items, this.categories.len());
        this
    }

    /// `(category index, image index)` of an evaluated pair.
    fn indices(&self, image_id: u64, category_id: u64) -> Option<(usize, usize)> {
        Some((
            *self.cat_index.get(&category_id)?,
            *self.img_index.get(&image_id)?,
        ))
    }

    /// Number of detections that the evaluation ignores because their image
    /// or category is not in the ground truth.
    pub fn count_unevaluated(&self, dets: &[CocoDetection]) -> usize {
        dets.iter()
            .filter(|d| self.indices(d.image_id, d.category_id).is_none())
            .count()
    }

    /// Evaluate one set of detections (pycocotools' `evaluate`, `accumulate`
    /// and `summarize`).
    pub fn evaluate(&self, dets: &[CocoDetection]) -> CocoStats {
        let k_count = self.categories.len();
        let items = dets
            .iter()
            .filter_map(|d| {
                let (k, i) = self.indices(d.image_id, d.category_id)?;
                let b = DtBox {
                    bbox: d.bbox,
                    area: d.bbox[2] * d.bbox[3],
                    score: d.score,
                };
                Some((k, i, b))
            })
            .collect();
        let (dts, dt_groups) = group(items, k_count);

        // One job per (category, image) with GT or detections; pycocotools'
        // evaluateImg returns None for the others and accumulate skips them.
        let mut jobs: Vec<(Range<usize>, Range<usize>)> = Vec::new();
        let mut cat_jobs: Vec<Range<usize>> = Vec::with_capacity(k_count);
        for (g, d) in self.gt_groups.iter().zip(&dt_groups) {
            let first = jobs.len();
            let (mut gi, mut di) = (0, 0);
            while gi < g.len() || di < d.len() {
                let gimg = g.get(gi).map_or(usize::MAX, |x| x.0);
                let dimg = d.get(di).map_or(usize::MAX, |x| x.0);
                let img = gimg.min(dimg);
                let gr = if gimg == img {
                    gi += 1;
                    g[gi - 1].1.clone()
                } else {
                    0..0
                };
                let dr = if dimg == img {
                    di += 1;
                    d[di - 1].1.clone()
                } else {
                    0..0
                };
                jobs.push((gr, dr));
            }
            cat_jobs.push(first..jobs.len());
        }

        let thrs = iou_thresholds();
        let evals: Vec<ImgEval> = jobs
            .par_iter()
            .map(|(gr, dr)| evaluate_img(&self.gts[gr.clone()], &dts[dr.clone()], &thrs))
            .collect();

        let rec_thrs = recall_thresholds();
        let per_cat: Vec<CatAccum> = cat_jobs
            .par_iter()
            .map(|r| accumulate(&evals[r.clone()], &rec_thrs))
            .collect();

        // precision[t][r][k][a][m] and recall[t][k][a][m], numpy's C order.
        let mut precision = vec![-1.0; T * R * k_count * A * M];
        let mut recall = vec![-1.0; T * k_count * A * M];
        for (k, c) in per_cat.iter().enumerate() {
            for t in 0..T {
                for a in 0..A {
                    for m in 0..M {
                        recall[((t * k_count + k) * A + a) * M + m] = c.recall[(t * A + a) * M + m];
                        for r in 0..R {
                            precision[(((t * R + r) * k_count + k) * A + a) * M + m] =
                                c.precision[((t * R + r) * A + a) * M + m];
                        }
                    }
                }
            }
        }

        let ap = |t: Option<usize>, a: usize, m: usize| {
            let ts = t.map_or(0..T, |t| t..t + 1);
            let vals = ts.flat_map(|t| {
                let precision = &precision;
                (0..R).flat_map(move |r| {
                    (0..k_count)
                        .map(move |k| precision[(((t * R + r) * k_count + k) * A + a) * M + m])
                })
            });
            mean_of_defined(vals)
        };
        let ar = |a: usize, m: usize| {
            let recall = &recall;
            let vals = (0..T).flat_map(|t| {
                (0..k_count).map(move |k| recall[((t * k_count + k) * A + a) * M + m])
            });
            mean_of_defined(vals)
        };
        // IoU .50 and .75 are thresholds 0 and 5; maxDets 1, 10, 100 are 0, 1, 2.
        let stats = [
            ap(None, 0, 2),
            ap(Some(0), 0, 2),
            ap(Some(5), 0, 2),
            ap(None, 1, 2),
            ap(None, 2, 2),
            ap(None, 3, 2),
            ar(0, 0),
            ar(0, 1),
            ar(0, 2),
            ar(1, 2),
            ar(2, 2),
            ar(3, 2),
        ];
        let per_class = self
            .categories
            .iter()
            .zip(&per_cat)
            .map(|((id, name), c)| {
                let vals = (0..T)
                    .flat_map(|t| (0..R).map(move |r| c.precision[((t * R + r) * A) * M + 2]));
                (*id, name.clone(), mean_of_defined(vals))
            })
            .collect();
        CocoStats { stats, per_class }
    }
}

/// Outcome of one detection at one IoU threshold.
const FP: u8 = 0;
const TP: u8 = 1;
const IGNORED: u8 = 2;

/// pycocotools' `evaluateImg` for one (image, category): scores of the kept
/// detections in score order, and per area range the number of non-ignored GT
/// and each detection's outcome per threshold.
struct ImgEval {
    scores: Vec<f64>,
    areas: [AreaEval; A],
}

struct AreaEval {
    /// Non-ignored GT.
    npig: usize,
    /// `flags[d][t]`: [`TP`], [`FP`] or [`IGNORED`] (detection-major, so
    /// accumulation reads one detection's thresholds together).
    flags: Vec<[u8; T]>,
}

/// Descending score, ties kept in order, NaN last (numpy's
/// `argsort(-score, kind="mergesort")`); use with a stable sort.
fn score_desc(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (false, false) => b.partial_cmp(&a).unwrap_or(Ordering::Equal),
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
    }
}

/// IoU of xywh boxes the way pycocotools' `maskUtils.iou` computes it for
/// boxes (same operations in the same order); against a crowd GT the union is
/// the detection's area.
fn box_iou(d: &[f64; 4], g: &[f64; 4], crowd: bool) -> f64 {
    let w = (d[2] + d[0]).min(g[2] + g[0]) - d[0].max(g[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (d[3] + d[1]).min(g[3] + g[1]) - d[1].max(g[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let inter = w * h;
    let da = d[2] * d[3];
    let union = if crowd { da } else { da + g[2] * g[3] - inter };
    inter / union
}

fn evaluate_img(gt: &[GtBox], dt_all: &[DtBox], thrs: &[f64; T]) -> ImgEval {
    let mut order: Vec<usize> = (0..dt_all.len()).collect();
    order.sort_by(|&a, &b| score_desc(dt_all[a].score, dt_all[b].score));
    order.truncate(MAX_DET);
    let dt: Vec<DtBox> = order.iter().map(|&i| dt_all[i]).collect();
    let (nd, ng) = (dt.len(), gt.len());

    let mut ious = vec![0.0; nd * ng];
    for (d, db) in dt.iter().enumerate() {
        for (g, gb) in gt.iter().enumerate() {
            ious[d * ng + g] = box_iou(&db.bbox, &gb.bbox, gb.crowd);
        }
    }

    let areas = AREA_RANGES.map(|(_, lo, hi)| {
        let ignored: Vec<bool> = gt
            .iter()
            .map(|g| g.crowd || g.area < lo || g.area > hi)
            .collect();
        // GT in matching order: non-ignored first, each part in file order.
        let gorder: Vec<usize> = (0..ng)
            .filter(|&g| !ignored[g])
            .chain((0..ng).filter(|&g| ignored[g]))
            .collect();
        let npig = ignored.iter().filter(|&&i| !i).count();
        let mut flags = vec![[FP; T]; nd];
        let mut taken = vec![false; ng]; // by position in gorder
        for (t, &thr) in thrs.iter().enumerate() {
            taken.fill(false);
            for (d, db) in dt.iter().enumerate() {
                let mut best = thr.min(1.0 - 1e-10);
                let mut m: Option<usize> = None;
                for (pos, &g) in gorder.iter().enumerate() {
                    if taken[pos] && !gt[g].crowd {
                        continue;
                    }
                    if let Some(mp) = m {
                        if !ignored[gorder[mp]] && ignored[g] {
                            break;
                        }
                    }
                    let iou = ious[d * ng + g];
                    if iou < best {
                        continue;
                    }
                    best = iou;
                    m = Some(pos);
                }
                let out_of_range = db.area < lo || db.area > hi;
                flags[d][t] = match m {
                    Some(pos) => {
                        taken[pos] = true;
                        let g = gorder[pos];
                        // pycocotools records the matched GT's id; id 0 then
                        // reads as "unmatched" (kept for exactness).
                        let matched = gt[g].id != 0;
                        if ignored[g] || (!matched && out_of_range) {
                            IGNORED
                        } else if matched {
                            TP
                        } else {
                            FP
                        }
                    }
                    None if out_of_range => IGNORED,
                    None => FP,
                };
            }
        }
        AreaEval { npig, flags }
    });
    ImgEval {
        scores: dt.iter().map(|d| d.score).collect(),
        areas,
    }
}

/// One category's slice of pycocotools' `precision` (`[t][r][a][m]`) and
/// `recall` (`[t][a][m]`).
struct CatAccum {
    precision: Vec<f64>,
    recall: Vec<f64>,
}

/// pycocotools' `accumulate` for one category over its images (image order).
fn accumulate(evals: &[ImgEval], rec_thrs: &[f64; R]) -> CatAccum {
    let mut out = CatAccum {
        precision: vec![-1.0; T * R * A * M],
        recall: vec![-1.0; T * A * M],
    };
    if evals.is_empty() {
        return out;
    }
    let mut rc = Vec::new();
    let mut pr = Vec::new();
    for (m, &max_det) in MAX_DETS.iter().enumerate() {
        // (score, image, detection), images concatenated in order, then a
        // stable sort by descending score.
        let mut entries: Vec<(f64, u32, u32)> = evals
            .iter()
            .enumerate()
            .flat_map(|(e, ev)| {
                let n = ev.scores.len().min(max_det);
                ev.scores[..n]
                    .iter()
                    .enumerate()
                    .map(move |(d, &s)| (s, e as u32, d as u32))
            })
            .collect();
        entries.sort_by(|x, y| score_desc(x.0, y.0));
        let nd = entries.len();
        let mut seq: Vec<[u8; T]> = Vec::with_capacity(nd);
        for a in 0..A {
            let npig: usize = evals.iter().map(|e| e.areas[a].npig).sum();
            if npig == 0 {
                continue;
            }
            seq.clear();
            seq.extend(
                entries
                    .iter()
                    .map(|&(_, e, d)| evals[e as usize].areas[a].flags[d as usize]),
            );
            for t in 0..T {
                rc.clear();
                pr.clear();
                let (mut tp, mut fp) = (0.0f64, 0.0f64);
                for flags in &seq {
                    match flags[t] {
                        TP => tp += 1.0,
                        FP => fp += 1.0,
                        _ => {}
                    }
                    rc.push(tp / npig as f64);
                    pr.push(tp / (fp + tp + f64::EPSILON));
                }
                out.recall[(t * A + a) * M + m] = rc.last().copied().unwrap_or(0.0);
                for i in (1..nd).rev() {
                    if pr[i] > pr[i - 1] {
                        pr[i - 1] = pr[i];
                    }
                }
                for (r, &thr) in rec_thrs.iter().enumerate() {
                    // np.searchsorted(rc, thr, side="left"); past the end the
                    // precision stays 0.
                    let i = rc.partition_point(|&x| x < thr);
                    out.precision[((t * R + r) * A + a) * M + m] =
                        pr.get(i).copied().unwrap_or(0.0);
                }
            }
        }
    }
    out
}

/// `np.mean(v[v > -1])`, or -1 when nothing is defined. numpy sums a
/// contiguous float64 array pairwise (blocks of 128 with 8 accumulators), so
/// this does the same to give bit-identical means.
fn mean_of_defined(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.filter(|&x| x > -1.0).collect();
    if v.is_empty() {
        -1.0
    } else {
        numpy_pairwise_sum(&v) / v.len() as f64
    }
}

fn numpy_pairwise_sum(v: &[f64]) -> f64 {
    let n = v.len();
    if n < 8 {
        let mut s = 0.0;
        for &x in v {
            s += x;
        }
        s
    } else if n <= 128 {
        let mut r = [0.0; 8];
        r.copy_from_slice(&v[..8]);
        let full = n - n % 8;
        let mut i = 8;
        while i < full {
            for (j, acc) in r.iter_mut().enumerate() {
                *acc += v[i + j];
            }
            i += 8;
        }
        let mut s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &v[full..] {
            s += x;
        }
        s
    } else {
        let mut half = n / 2;
        half -= half % 8;
        numpy_pairwise_sum(&v[..half]) + numpy_pairwise_sum(&v[half..])
    }
}

#[cfg(test)]
mod tests {
    //! Hand-built cases: expected values are derived by hand in the comments,
    //! following pycocotools' algorithm step by step. `ONE` is what
    //! pycocotools reports for a precision of "1" reached by the very first
    //! detection: `1 / (1 + np.spacing(1))` = 0.9999999999999998 (with two or
    //! more TP, `n + eps` rounds back to `n` and the value is exactly 1).
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::data::coco::{
        load_dets, load_gt, CocoAnnotation, CocoCategory, CocoDataset, CocoImage,
    };

    const ONE: f64 = 1.0 / (1.0 + f64::EPSILON);

    /// `(annotation id, image id, category id, bbox, iscrowd)`; area = w*h.
    type Ann = (u64, u64, u64, [f64; 4], u8);

    fn dataset(images: &[u64], cats: &[u64], anns: &[Ann]) -> CocoDataset {
        CocoDataset {
            images: images
                .iter()
                .map(|&id| CocoImage {
                    id,
                    file_name: format!("{id}.jpg"),
                    width: 1000,
                    height: 1000,
                })
                .collect(),
            annotations: anns
                .iter()
                .map(
                    |&(id, image_id, category_id, bbox, iscrowd)| CocoAnnotation {
                        id,
                        image_id,
                        category_id,
                        bbox,
                        area: bbox[2] * bbox[3],
                        iscrowd,
                    },
                )
                .collect(),
            categories: cats
                .iter()
                .map(|&id| CocoCategory {
                    id,
                    name: format!("c{id}"),
                })
                .collect(),
        }
    }

    fn det(image_id: u64, category_id: u64, bbox: [f64; 4], score: f64) -> CocoDetection {
        CocoDetection {
            image_id,
            category_id,
            bbox,
            score,
        }
    }

    fn assert_close(got: f64, want: f64, what: &str) {
        assert!(
            (got - want).abs() <= 1e-12,
            "{what}: got {got:.17}, want {want:.17}"
        );
    }

    fn assert_stats(s: &CocoStats, want: [f64; 12]) {
        for (i, (g, w)) in s.stats.iter().zip(want).enumerate() {
            assert_close(*g, w, STAT_NAMES[i]);
        }
    }

    #[test]
    fn thresholds_match_numpy_linspace() {
        // Printed by numpy 2.4: [repr(float(x)) for x in np.linspace(.5, .95, 10)].
        let t = iou_thresholds();
        assert_eq!(
            t,
            [
                0.5,
                0.55,
                0.6,
                0.65,
                0.7,
                0.75,
                0.8,
                0.85,
                0.8999999999999999,
                0.95
            ]
        );
        let r = recall_thresholds();
        assert_eq!((r[0], r[1], r[50], r[100]), (0.0, 0.01, 0.5, 1.0));
        assert_eq!(r[7], 0.07); // 7 * 0.01 == 0.07 in f64
    }

    #[test]
    fn box_iou_like_mask_api() {
        let a = [0.0, 0.0, 10.0, 10.0];
        // Overlap 5x10 = 50; union 100 + 100 - 50 = 150.
        assert_eq!(box_iou(&[5.0, 0.0, 10.0, 10.0], &a, false), 50.0 / 150.0);
        // Touching edges: w == 0 -> 0, no +1 convention.
        assert_eq!(box_iou(&[10.0, 0.0, 10.0, 10.0], &a, false), 0.0);
        // Crowd GT: inter / det area = 50 / 100, whatever the GT size.
        assert_eq!(box_iou(&[5.0, 0.0, 10.0, 10.0], &a, true), 0.5);
        // Det fully inside a crowd region: 1.
        assert_eq!(
            box_iou(&[2.0, 2.0, 3.0, 3.0], &[0.0, 0.0, 100.0, 100.0], true),
            1.0
        );
    }

    #[test]
    fn perfect_detections_score_one() {
        // One category, two images, two GT each of all sizes: every det is a
        // TP, precision n/(n+eps) is exactly 1 from the 2nd TP on and the
        // right-to-left max makes the first one 1 too -> all stats exactly 1
        // (each (image, category) has a single top det per GT... AR1 needs
        // one GT per image-category, so each image gets a different category).
        let anns = [
            (1, 1, 1, [0.0, 0.0, 10.0, 10.0], 0),      // small, area 100
            (2, 1, 1, [100.0, 100.0, 50.0, 50.0], 0),  // medium, 2500
            (3, 2, 1, [0.0, 0.0, 200.0, 100.0], 0),    // large, 20000
            (4, 2, 1, [300.0, 300.0, 5.0, 8.0], 0),    // small
            (5, 2, 1, [500.0, 500.0, 60.0, 40.0], 0),  // medium
            (6, 1, 1, [700.0, 700.0, 120.0, 90.0], 0), // large
        ];
        let gt = dataset(&[1, 2], &[1], &anns);
        let dets: Vec<_> = anns
            .iter()
            .map(|a| det(a.1, a.2, a.3, 0.5 + a.0 as f64 / 100.0))
            .collect();
        let s = evaluate(&gt, &dets);
        // AR1: one det per image can cover only 1 of the 3 GT of that image:
        // recall 2 / 6 at every threshold.
        let mut want = [1.0; 12];
        want[6] = 2.0 / 6.0;
        assert_stats(&s, want);
        assert_eq!(s.stats[0], 1.0);
        assert_eq!(s.per_class, vec![(1, "c1".to_string(), 1.0)]);
    }

    #[test]
    fn single_true_positive_is_one_minus_eps() {
        // tp = [1], fp = [0]: precision 1 / (1 + eps) at every recall
        // threshold and IoU threshold; the mean of 1010 copies of that value.
        let gt = dataset(&[1], &[1], &[(1, 1, 1, [0.0, 0.0, 50.0, 50.0], 0)]);
        let s = evaluate(&gt, &[det(1, 1, [0.0, 0.0, 50.0, 50.0], 0.3)]);
        assert_eq!(s.stats[1], numpy_pairwise_sum(&[ONE; 101]) / 101.0);
        assert_close(s.stats[0], ONE, "AP");
        assert!(s.stats[0] < 1.0);
        assert_eq!(s.stats[8], 1.0); // recall 1/1
    }

    #[test]
    fn all_wrong_scores_zero() {
        // No det overlaps a GT: every det is an FP, tp stays 0, so precision
        // and recall are 0 wherever GT exist; no large GT -> APl = ARl = -1.
        let gt = dataset(
            &[1, 2],
            &[1, 2],
            &[
                (1, 1, 1, [0.0, 0.0, 20.0, 20.0], 0),
                (2, 2, 2, [0.0, 0.0, 50.0, 50.0], 0),
            ],
        );
        let dets = [
            det(1, 1, [100.0, 100.0, 20.0, 20.0], 0.9),
            det(1, 2, [0.0, 0.0, 20.0, 20.0], 0.8), // right place, wrong class
            det(2, 2, [60.0, 0.0, 50.0, 50.0], 0.7),
        ];
        let s = evaluate(&gt, &dets);
        assert_stats(
            &s,
            [0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0],
        );
    }

    #[test]
    fn score_ties_across_images_follow_image_id_order() {
        // Category 1, GT on images 1 and 2. Equal scores: the TP is on image
        // 1, the FP (misses its GT) on image 2, the FP listed first in the
        // results. pycocotools concatenates per image in sorted image-id order
        // and mergesorts (stable) -> [TP, FP]: rc = [.5, .5],
        // pr = [ONE, .5] -> precision ONE at the 51 thresholds 0..=.50, 0 at
        // the other 50: AP@t = 51 * ONE / 101 for every t. (File order would
        // give [FP, TP]: pr = [.5, .5] -> 51 * .5 / 101.)
        let gt = dataset(
            &[2, 1],
            &[1],
            &[
                (1, 2, 1, [0.0, 0.0, 50.0, 50.0], 0),
                (2, 1, 1, [0.0, 0.0, 50.0, 50.0], 0),
            ],
        );
        let dets = [
            det(2, 1, [500.0, 500.0, 50.0, 50.0], 0.5),
            det(1, 1, [0.0, 0.0, 50.0, 50.0], 0.5),
        ];
        let s = evaluate(&gt, &dets);
        assert_close(s.stats[1], 51.0 * ONE / 101.0, "AP50");
        assert_close(s.stats[0], 51.0 * ONE / 101.0, "AP");
    }

    #[test]
    fn score_ties_within_an_image_follow_file_order() {
        // One GT; two dets with equal score, the FP first in the file.
        // Stable sort keeps [FP, TP]: rc = [0, 1], pr = [0, .5] -> max from
        // the right [.5, .5] -> every sample .5 -> AP = .5 exactly. With the
        // TP first it would be ONE.
        let gt = dataset(&[1], &[1], &[(1, 1, 1, [0.0, 0.0, 50.0, 50.0], 0)]);
        let dets = [
            det(1, 1, [500.0, 500.0, 50.0, 50.0], 0.5),
            det(1, 1, [0.0, 0.0, 50.0, 50.0], 0.5),
        ];
        let s = evaluate(&gt, &dets);
        assert_eq!(s.stats[0], 0.5);
        // AR1 keeps only the first det of the image (the FP): recall 0.
        assert_eq!(s.stats[6], 0.0);
        let swapped = [dets[1].clone(), dets[0].clone()];
        assert_close(evaluate(&gt, &swapped).stats[0], ONE, "AP swapped");
    }

    #[test]
    fn detections_on_crowd_regions_are_ignored() {
        // GT: a normal box and a crowd region. Two dets inside the crowd
        // region score higher than the TP. Against a crowd GT the IoU is
        // inter / det area = 1, so both match it (a crowd GT can be matched
        // repeatedly) and are ignored: tp = [0, 0, 1], fp = [0, 0, 0],
        // rc = [0, 0, 1], pr = [0, 0, ONE] -> max from the right gives ONE at
        // every threshold -> AP = ONE. Counted as FPs they would give 1/3.
        let gt = dataset(
            &[1],
            &[1],
            &[
                (1, 1, 1, [0.0, 0.0, 40.0, 40.0], 0),
                (2, 1, 1, [200.0, 200.0, 300.0, 300.0], 1),
            ],
        );
        let dets = [
            det(1, 1, [210.0, 210.0, 20.0, 20.0], 0.95),
            det(1, 1, [300.0, 300.0, 30.0, 30.0], 0.9),
            det(1, 1, [0.0, 0.0, 40.0, 40.0], 0.8),
        ];
        let s = evaluate(&gt, &dets);
        assert_close(s.stats[0], ONE, "AP");
        assert_eq!(s.stats[8], 1.0);
        // The crowd region alone is no GT: large range has none -> -1.
        assert_eq!(s.stats[5], -1.0);
        assert_eq!(s.stats[11], -1.0);
    }

    #[test]
    fn area_bounds_are_inclusive() {
        // GT area exactly 32² = 1024 is small AND medium. An unmatched 96x96
        // det (area 9216 = 96², inside medium's inclusive bound) outscores the
        // TP.
        //  small : the FP's area 9216 > 1024, unmatched -> ignored;
        //          [ign, TP] -> AP ONE.
        //  medium: [FP, TP] -> rc [0, 1], pr [0, .5] -> .5. `all` likewise.
        //  large : the only GT is out of range -> no GT -> -1.
        //  AR1: the top det of the image is the FP -> 0.
        let gt = dataset(&[1], &[1], &[(1, 1, 1, [0.0, 0.0, 32.0, 32.0], 0)]);
        let dets = [
            det(1, 1, [500.0, 500.0, 96.0, 96.0], 0.95),
            det(1, 1, [0.0, 0.0, 32.0, 32.0], 0.9),
        ];
        let s = evaluate(&gt, &dets);
        assert_stats(
            &s,
            [0.5, 0.5, 0.5, ONE, 0.5, -1.0, 0.0, 1.0, 1.0, 1.0, 1.0, -1.0],
        );
    }

    #[test]
    fn non_ignored_match_is_not_given_up_for_an_ignored_gt() {
        // A = 32x31 (area 992, small), B = 32x33 (area 1056, ignored in the
        // small range). The det equals B: IoU(det, A) = 992/1056 = .939...,
        // IoU(det, B) = 1.
        //  small range, GT order [A, B(ignored)]: for the 9 thresholds <= .9
        //  the det takes A and then stops before the ignored B -> TP (recall
        //  1, precision ONE); at .95 A fails and it takes B -> ignored
        //  (recall 0, precision 0). APs = 9 * ONE / 10, ARs = .9.
        //  all range: both count, the det takes B (higher IoU): 1 TP of 2 GT,
        //  AP = 51 * ONE / 101, AR100 = .5.
        let gt = dataset(
            &[1],
            &[1],
            &[
                (1, 1, 1, [0.0, 0.0, 32.0, 31.0], 0),
                (2, 1, 1, [0.0, 0.0, 32.0, 33.0], 0),
            ],
        );
        let s = evaluate(&gt, &[det(1, 1, [0.0, 0.0, 32.0, 33.0], 0.9)]);
        assert_close(s.stats[3], 0.9 * ONE, "APs");
        assert_close(s.stats[9], 0.9, "ARs");
        assert_close(s.stats[0], 51.0 * ONE / 101.0, "AP");
        assert_eq!(s.stats[8], 0.5);
    }

    #[test]
    fn equal_iou_goes_to_the_later_gt() {
        // A = [0,0,10,10], B = [2,0,10,10]; det1 = [1,0,10,10] overlaps both
        // by 9x10 = 90 with union 110: IoU .818 with each. pycocotools keeps
        // the later GT on a tie (`if iou < best: continue`), so det1 takes B.
        // det2 = [-3,0,10,10]: IoU with A 70/130 = .538, with B 50/150 =
        // .333. At IoU .50 det2 then takes A: [TP, TP] -> AP50 exactly 1.
        // (Had det1 taken A, det2 would be an FP: AP50 = 51 * ONE / 101.)
        let gt = dataset(
            &[1],
            &[1],
            &[
                (1, 1, 1, [0.0, 0.0, 10.0, 10.0], 0),
                (2, 1, 1, [2.0, 0.0, 10.0, 10.0], 0),
            ],
        );
        let dets = [
            det(1, 1, [1.0, 0.0, 10.0, 10.0], 0.9),
            det(1, 1, [-3.0, 0.0, 10.0, 10.0], 0.8),
        ];
        assert_eq!(evaluate(&gt, &dets).stats[1], 1.0);
    }

    #[test]
    fn images_without_gt_count_and_unknown_images_do_not() {
        // Image 2 is declared but has no GT: its det (score .9) is an FP
        // ahead of the TP: [FP, TP] -> AP .5. A det on undeclared image 99 is
        // ignored (pycocotools would refuse it): AP stays ONE without image 2.
        let gt = dataset(&[1, 2], &[1], &[(1, 1, 1, [0.0, 0.0, 50.0, 50.0], 0)]);
        let tp = det(1, 1, [0.0, 0.0, 50.0, 50.0], 0.5);
        let s = evaluate(&gt, &[tp.clone(), det(2, 1, [0.0, 0.0, 50.0, 50.0], 0.9)]);
        assert_eq!(s.stats[0], 0.5);
        let s = evaluate(&gt, &[tp.clone(), det(99, 1, [0.0, 0.0, 50.0, 50.0], 0.9)]);
        assert_close(s.stats[0], ONE, "AP");
        // Unknown category 7 is ignored too.
        let unknown = det(1, 7, [500.0, 0.0, 5.0, 5.0], 0.99);
        let ev = CocoEvaluator::new(&gt);
        assert_eq!(ev.count_unevaluated(&[unknown.clone(), tp.clone()]), 1);
        assert_close(ev.evaluate(&[unknown, tp]).stats[0], ONE, "AP");
    }

    #[test]
    fn classes_without_detections_or_gt() {
        // Category 1: two GT, two exact dets -> AP exactly 1 (second TP makes
        // pr exactly 1). Category 2: GT but no dets -> precision and recall 0,
        // AP 0, still averaged. Category 3: declared, no GT, has a det -> -1,
        // left out of the mean. AP = (1 + 0) / 2; per-class [1, 0, -1].
        let gt = dataset(
            &[1, 2],
            &[3, 1, 2],
            &[
                (1, 1, 1, [0.0, 0.0, 50.0, 50.0], 0),
                (2, 2, 1, [0.0, 0.0, 60.0, 50.0], 0),
                (3, 2, 2, [100.0, 100.0, 50.0, 50.0], 0),
            ],
        );
        let dets = [
            det(1, 1, [0.0, 0.0, 50.0, 50.0], 0.9),
            det(2, 1, [0.0, 0.0, 60.0, 50.0], 0.8),
            det(2, 3, [100.0, 100.0, 50.0, 50.0], 0.8),
        ];
        let s = evaluate(&gt, &dets);
        assert_eq!(s.stats[0], 0.5);
        assert_eq!(s.stats[8], 0.5);
        assert_eq!(
            s.per_class,
            vec![
                (1, "c1".to_string(), 1.0),
                (2, "c2".to_string(), 0.0),
                (3, "c3".to_string(), -1.0),
            ]
        );
    }

    #[test]
    fn more_than_100_detections_per_image_are_truncated() {
        // One GT; 99 higher-scoring FPs then the exact TP (the 100th det): kept.
        // tp = 1 at position 100: rc reaches 1 only there, precision
        // 1 / (99 + 1 + eps) = .01 at every threshold -> AP .01, AR100 1,
        // AR10 0. A 100th FP ahead of it pushes the TP to 101st: cut -> 0.
        let gt = dataset(&[1], &[1], &[(1, 1, 1, [0.0, 0.0, 50.0, 50.0], 0)]);
        let fp = |i: usize| {
            det(
                1,
                1,
                [100.0 + i as f64, 500.0, 20.0, 20.0],
                0.9 - i as f64 * 1e-3,
            )
        };
        let tp = det(1, 1, [0.0, 0.0, 50.0, 50.0], 0.1);
        let mut dets: Vec<_> = (0..99).map(fp).collect();
        dets.push(tp.clone());
        let s = evaluate(&gt, &dets);
        assert_close(s.stats[0], 0.01, "AP");
        assert_eq!((s.stats[7], s.stats[8]), (0.0, 1.0));
        dets.push(fp(99));
        let s = evaluate(&gt, &dets);
        assert_eq!((s.stats[0], s.stats[8]), (0.0, 0.0));
        // The cut is per image: 60 FPs on each of two other images don't
        // push this image's TP out, they only dilute precision.
        let gt = dataset(&[1, 2, 3], &[1], &[(1, 1, 1, [0.0, 0.0, 50.0, 50.0], 0)]);
        let mut dets: Vec<_> = (0..120)
            .map(|i| {
                let mut d = fp(i % 60);
                d.image_id = 2 + (i / 60) as u64;
                d
            })
            .collect();
        dets.push(tp);
        assert_eq!(evaluate(&gt, &dets).stats[8], 1.0);
    }

    #[test]
    fn annotation_id_zero_reads_as_unmatched() {
        // pycocotools stores the matched GT id and tests it for non-zero, so
        // a det matched to annotation id 0 is neither TP nor matched: an FP
        // (area in range) -> AP 0, recall 0.
        let gt = dataset(&[1], &[1], &[(0, 1, 1, [0.0, 0.0, 50.0, 50.0], 0)]);
        let s = evaluate(&gt, &[det(1, 1, [0.0, 0.0, 50.0, 50.0], 0.9)]);
        assert_eq!((s.stats[0], s.stats[8]), (0.0, 0.0));
    }

    #[test]
    fn empty_inputs() {
        let gt = dataset(&[1], &[1], &[(1, 1, 1, [0.0, 0.0, 50.0, 50.0], 0)]);
        // GT but no detections: 0 (not -1) where GT exist.
        let s = evaluate(&gt, &[]);
        assert_stats(
            &s,
            [
                0.0, 0.0, 0.0, -1.0, 0.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0, -1.0,
            ],
        );
        // No GT at all: everything undefined.
        let s = evaluate(&CocoDataset::default(), &[det(1, 1, [0.0; 4], 1.0)]);
        assert_eq!(s.stats, [-1.0; 12]);
    }

    #[test]
    fn json_and_display() {
        let gt = dataset(&[1], &[1], &[(1, 1, 1, [0.0, 0.0, 50.0, 50.0], 0)]);
        let s = evaluate(&gt, &[det(1, 1, [0.0, 0.0, 50.0, 50.0], 0.9)]);
        let v = s.to_json();
        let obj = v.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        let mut want = STAT_NAMES.to_vec();
        keys.sort_unstable();
        want.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(obj["APs"], serde_json::json!(-1.0));
        // (serde_json's default float parser may be 1 ulp off on 17-digit
        // numbers, so compare the reparsed values loosely.)
        let text: serde_json::Value = serde_json::from_str(&s.to_json_string()).unwrap();
        for (k, x) in obj {
            assert_close(text[k].as_f64().unwrap(), x.as_f64().unwrap(), k);
        }
        assert!(s.to_json_string().find("\"AP50\"") < s.to_json_string().find("\"APs\""));
        let shown = s.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(
            lines[0],
            " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000"
        );
        assert_eq!(
            lines[1],
            " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 1.000"
        );
        assert_eq!(
            lines[3],
            " Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = -1.000"
        );
        assert_eq!(
            lines[6],
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 1.000"
        );
        assert!(shown.contains("c1"), "{shown}");
    }

    #[test]
    fn numpy_pairwise_sum_blocks() {
        // Below 8 elements: plain left-to-right sum.
        assert_eq!(numpy_pairwise_sum(&[1e16, 1.0, 1.0]), 1e16); // (1e16+1)+1 rounds twice
                                                                 // 8..=128: eight interleaved accumulators: r0 = 1e16 + 1 + 1 rounds
                                                                 // back to 1e16 but the 1s in r1 survive: r1 = 2, total 1e16 + 2.
        let mut v = vec![0.0; 16];
        v[0] = 1e16;
        v[1] = 1.0;
        v[8] = 1.0;
        v[9] = 1.0;
        assert_eq!(numpy_pairwise_sum(&v), 1e16 + 2.0);
    }

    /// Compare one generated case (gt.json, dets.json, expected.json written
    /// by `tests/pycocotools_check/gen_cases.py`) and return the largest
    /// absolute difference over the 12 stats and the per-class APs.
    fn check_case(dir: &Path) -> f64 {
        let gt = load_gt(dir.join("gt.json")).unwrap();
        let dets = load_dets(dir.join("dets.json")).unwrap();
        let t0 = std::time::Instant::now();
        let s = evaluate(&gt, &dets);
        let elapsed = t0.elapsed();
        let exp: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
        let bits = |v: &serde_json::Value| f64::from_bits(v.as_u64().unwrap());
        let mut max_diff = 0.0f64;
        let mut exact = 0;
        for (i, b) in exp["stats_bits"].as_array().unwrap().iter().enumerate() {
            let want = bits(b);
            let d = (s.stats[i] - want).abs();
            max_diff = max_diff.max(d);
            exact += usize::from(s.stats[i].to_bits() == want.to_bits());
            assert!(
                d <= 1e-9,
                "{}: {} = {} but pycocotools says {want}",
                dir.display(),
                STAT_NAMES[i],
                s.stats[i]
            );
        }
        let per_class = exp["per_class"].as_array().unwrap();
        assert_eq!(per_class.len(), s.per_class.len());
        for (e, (id, _, ap)) in per_class.iter().zip(&s.per_class) {
            assert_eq!(e[0].as_u64().unwrap(), *id);
            let want = bits(&e[2]);
            max_diff = max_diff.max((ap - want).abs());
            exact += usize::from(ap.to_bits() == want.to_bits());
            assert!((ap - want).abs() <= 1e-9, "{}: class {id}", dir.display());
        }
        println!(
            "{}: {} images, {} dets, evaluate {:.1} ms, {exact}/{} bit-exact, max |diff| {max_diff:e}",
            dir.display(),
            gt.images.len(),
            dets.len(),
            elapsed.as_secs_f64() * 1e3,
            12 + per_class.len()
        );
        max_diff
    }

    fn case_dirs(root: &Path) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("expected.json").is_file())
            .collect();
        dirs.sort();
        dirs
    }

    #[test]
    fn matches_pycocotools_fixtures() {
        // Random cases generated and scored by real pycocotools 2.0.11
        // (numpy 2.4) with tests/pycocotools_check/gen_cases.py --fixture.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/coco_eval");
        let dirs = case_dirs(&root);
        assert!(dirs.len() >= 2, "fixtures missing under {}", root.display());
        for d in dirs {
            assert_eq!(check_case(&d), 0.0, "{} not bit-exact", d.display());
        }
    }

    /// By hand: `COCO_EVAL_CASES=/dir cargo test -p crosskd-trainer --lib
    /// pycocotools_random_cases -- --ignored --nocapture` over cases made by
    /// `gen_cases.py --out /dir --num 50`.
    #[test]
    #[ignore = "needs COCO_EVAL_CASES=<dir of gen_cases.py output>"]
    fn pycocotools_random_cases() {
        let root = PathBuf::from(std::env::var("COCO_EVAL_CASES").expect("set COCO_EVAL_CASES"));
        let dirs = case_dirs(&root);
        assert!(!dirs.is_empty());
        let max = dirs.iter().map(|d| check_case(d)).fold(0.0, f64::max);
        println!("{} cases, max |diff| vs pycocotools: {max:e}", dirs.len());
    }
}
