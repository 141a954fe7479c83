//! PNG plots of a training run, drawn from its `metrics.csv`
//! ([`super::metrics`]).
//!
//! [`render_plots`] writes into the work directory
//! - `loss.png`: the total loss and every loss component against the global
//!   iteration; the logged values faint, a centred moving average bold; the
//!   y axis is logarithmic when all values are positive and span more than a
//!   factor of 10;
//! - `lr.png`: the learning rate against the iteration;
//! - `ap.png`: COCO AP, AP50 and AP75 (in %) against the epoch (or the
//!   iteration, when evaluations are not one per epoch), only where evaluated.
//!
//! Text is rendered with DejaVu Sans embedded in the binary (through plotters'
//! `ab_glyph` feature), so plots render on a headless machine without system
//! fonts or fontconfig.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use super::metrics::{read_metrics, MetricsError, MetricsRow, METRICS_FILE};

/// DejaVu Sans 2.37 (Bitstream Vera / Arev license, see
/// `assets/fonts/LICENSE-DejaVu.txt`).
static FONT_TTF: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Family name the embedded font is registered under; plotters' own default
/// text (axis tick labels) uses it too.
const FONT_FAMILY: &str = "sans-serif";

/// Size of every plot, pixels.
const SIZE: (u32, u32) = (1280, 720);

/// Series colours after the first (black, the total loss): matplotlib's tab10
/// without its grey.
const PALETTE: [RGBColor; 9] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Errors of [`render_plots`].
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// `metrics.csv` could not be read.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The embedded font could not be loaded (a corrupt build).
    #[error("the embedded plot font could not be loaded")]
    Font,
    /// plotters failed to draw a plot.
    #[error("drawing {}: {message}", path.display())]
    Draw {
        /// The plot being drawn.
        path: PathBuf,
        /// plotters' error.
        message: String,
    },
    /// Encoding or writing a PNG failed.
    #[error("writing {}: {message}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

/// Reads `<work_dir>/metrics.csv` and writes `loss.png`, `lr.png` and
/// `ap.png` next to it; returns the paths written.
///
/// A plot without data is skipped: `loss.png` and `lr.png` need a logged
/// training iteration, `ap.png` an evaluation (so early in a run only the
/// first two are returned). Each PNG is written to a temporary file and
/// renamed, so a viewer never sees half a file.
pub fn render_plots(work_dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    ensure_font()?;
    let rows = read_metrics(&work_dir.join(METRICS_FILE))?;
    let mut written = Vec::new();

    let loss_lines = loss_series(&rows);
    if !loss_lines.is_empty() {
        let path = work_dir.join("loss.png");
        render_png(&path, |root| draw_losses(root, &loss_lines))?;
        written.push(path);
    }

    let mut lr: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.loss.is_some() && r.lr.is_finite())
        .map(|r| (r.iter as f64, r.lr))
        .collect();
    lr.sort_by(|a, b| a.0.total_cmp(&b.0));
    if !lr.is_empty() {
        let path = work_dir.join("lr.png");
        render_png(&path, |root| draw_lr(root, &lr))?;
        written.push(path);
    }

    let evals: Vec<&MetricsRow> = rows.iter().filter(|r| r.coco.is_some()).collect();
    if !evals.is_empty() {
        let path = work_dir.join("ap.png");
        render_png(&path, |root| draw_ap(root, &evals))?;
        written.push(path);
    }
    Ok(written)
}

/// Registers the embedded font with plotters (once per process).
fn ensure_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    // Other styles (bold, ...) fall back to the normal face.
    let ok =
        *REGISTERED.get_or_init(|| register_font(FONT_FAMILY, FontStyle::Normal, FONT_TTF).is_ok());
    ok.then_some(()).ok_or(PlotError::Font)
}

type Root<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type DrawResult = Result<(), String>;

/// Draws into an RGB buffer and saves it as a PNG (via the `image` crate).
fn render_png(path: &Path, draw: impl FnOnce(&Root<'_>) -> DrawResult) -> Result<(), PlotError> {
    let (w, h) = SIZE;
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, SIZE).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| e.to_string())
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(|e| e.to_string()))
            .map_err(|message| PlotError::Draw {
                path: path.to_path_buf(),
                message,
            })?;
    }
    let write_err = |message: String| PlotError::Write {
        path: path.to_path_buf(),
        message,
    };
    let img = image::RgbImage::from_raw(w, h, buf)
        .ok_or_else(|| write_err("pixel buffer has the wrong size".to_string()))?;
    let tmp = path.with_extension("png.tmp");
    img.save_with_format(&tmp, image::ImageFormat::Png)
        .map_err(|e| write_err(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| write_err(e.to_string()))
}

/// One loss curve: logged points and their moving average.
struct LossLine {
    name: String,
    raw: Vec<(f64, f64)>,
    smooth: Vec<(f64, f64)>,
    window: usize,
}

/// The total and each component with at least one finite value, points
/// sorted by iteration.
fn loss_series(rows: &[MetricsRow]) -> Vec<LossLine> {
    let mut train: Vec<&MetricsRow> = rows.iter().filter(|r| r.loss.is_some()).collect();
    train.sort_by_key(|r| r.iter);
    let Some(first) = train.first() else {
        return Vec::new();
    };
    let mut named: Vec<(String, Vec<(f64, f64)>)> = vec![(
        "loss (total)".to_string(),
        train
            .iter()
            .filter_map(|r| r.loss.map(|v| (r.iter as f64, v)))
            .collect(),
    )];
    for (j, (name, _)) in first.components.iter().enumerate() {
        let pts = train
            .iter()
            .filter_map(|r| {
                let v = r.components.get(j)?.1?;
                Some((r.iter as f64, v))
            })
            .collect();
        named.push((name.clone(), pts));
    }
    named
        .into_iter()
        .map(|(name, pts)| {
            let raw: Vec<(f64, f64)> = pts.into_iter().filter(|p| p.1.is_finite()).collect();
            let window = (raw.len() / 40).clamp(1, 500);
            let smooth = moving_average(&raw, window);
            LossLine {
                name,
                raw,
                smooth,
                window,
            }
        })
        .filter(|l| !l.raw.is_empty())
        .collect()
}

/// Centred moving average over `window` points (shrinking at the ends).
fn moving_average(pts: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    if window <= 1 {
        return pts.to_vec();
    }
    let mut prefix = Vec::with_capacity(pts.len() + 1);
    prefix.push(0.0);
    for p in pts {
        prefix.push(prefix.last().unwrap() + p.1);
    }
    let half = window / 2;
    (0..pts.len())
        .map(|i| {
            let lo = i.saturating_sub(half);
            let hi = (i + window - half).min(pts.len());
            (pts[i].0, (prefix[hi] - prefix[lo]) / (hi - lo) as f64)
        })
        .collect()
}

/// Above this many logged points a loss is drawn as an envelope, not a line.
const MAX_RAW_POINTS: usize = 2_000;
/// Columns of the envelope (about one per pixel of the plot area).
const ENVELOPE_BINS: usize = 1_000;

/// The polygon around `pts` (sorted by x): the max of each of `bins` equal x
/// intervals left to right, then the min right to left. Empty bins are skipped.
fn envelope(pts: &[(f64, f64)], bins: usize) -> Vec<(f64, f64)> {
    let (x0, x1) = (pts[0].0, pts[pts.len() - 1].0);
    let width = (x1 - x0).max(f64::MIN_POSITIVE);
    let mut lo = vec![f64::INFINITY; bins];
    let mut hi = vec![f64::NEG_INFINITY; bins];
    for &(x, y) in pts {
        let b = (((x - x0) / width * bins as f64) as usize).min(bins - 1);
        lo[b] = lo[b].min(y);
        hi[b] = hi[b].max(y);
    }
    let mid = |b: usize| x0 + (b as f64 + 0.5) * width / bins as f64;
    let filled: Vec<usize> = (0..bins).filter(|&b| lo[b] <= hi[b]).collect();
    let upper = filled.iter().map(|&b| (mid(b), hi[b]));
    let lower = filled.iter().rev().map(|&b| (mid(b), lo[b]));
    upper.chain(lower).collect()
}

fn draw_losses(root: &Root<'_>, lines: &[LossLine]) -> DrawResult {
    let xs = span(lines.iter().flat_map(|l| l.raw.iter().map(|p| p.0)));
    let (lo, hi) = span_raw(lines.iter().flat_map(|l| l.raw.iter().map(|p| p.1)));
    let window = lines.iter().map(|l| l.window).max().unwrap_or(1);
    let caption = if window > 1 {
        format!("Training loss (bold: moving average over {window} logged iterations)")
    } else {
        "Training loss".to_string()
    };
    // The legend sits in the upper right: raise the top of the y axis until
    // the curves there pass below it (losses fall, so this rarely costs much).
    let right = xs.end - (xs.end - xs.start) * 0.3;
    let (_, hi_right) = span_raw(
        lines
            .iter()
            .flat_map(|l| l.raw.iter().filter(|p| p.0 >= right).map(|p| p.1)),
    );
    let legend_frac = ((lines.len() as f64 * 22.0 + 30.0) / 600.0).min(0.6);
    if lo > 0.0 && hi / lo > 10.0 {
        let bottom = lo / 1.2;
        let clear = bottom * (hi_right / bottom).powf(1.0 / (1.0 - legend_frac));
        let ys = bottom..(hi * 1.2).max(clear);
        loss_chart(
            root,
            &caption,
            xs,
            ys.log_scale(),
            "loss (log scale)",
            lines,
        )
    } else {
        let pad = ((hi - lo) * 0.05).max(1e-9);
        let bottom = lo.min(0.0) - if lo < 0.0 { pad } else { 0.0 };
        let clear = bottom + (hi_right + pad - bottom) / (1.0 - legend_frac);
        let ys = bottom..(hi + pad).max(clear);
        loss_chart(root, &caption, xs, ys, "loss", lines)
    }
}

fn loss_chart<Y>(
    root: &Root<'_>,
    caption: &str,
    xs: Range<f64>,
    ys: Y,
    y_desc: &str,
    lines: &[LossLine],
) -> DrawResult
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .caption(caption, (FONT_FAMILY, 26))
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(84)
        .build_cartesian_2d(xs, ys)
        .map_err(|e| e.to_string())?;
    configure_mesh(&mut chart, "iteration", y_desc)?;
    for (i, line) in lines.iter().enumerate() {
        let color = series_color(i);
        if line.raw.len() > MAX_RAW_POINTS {
            // More points than pixels: a faint line would overdraw itself into
            // a solid band; draw the per-column min..max envelope once instead.
            chart
                .draw_series(std::iter::once(Polygon::new(
                    envelope(&line.raw, ENVELOPE_BINS),
                    color.mix(0.2).filled(),
                )))
                .map_err(|e| e.to_string())?;
        } else if line.window > 1 {
            chart
                .draw_series(LineSeries::new(
                    line.raw.iter().copied(),
                    color.mix(0.25).stroke_width(1),
                ))
                .map_err(|e| e.to_string())?;
        }
    }
    for (i, line) in lines.iter().enumerate() {
        let color = series_color(i);
        let last = line.smooth.last().map_or(f64::NAN, |p| p.1);
        chart
            .draw_series(LineSeries::new(
                line.smooth.iter().copied(),
                color.stroke_width(if i == 0 { 3 } else { 2 }),
            ))
            .map_err(|e| e.to_string())?
            .label(format!("{}  ({})", line.name, fmt_value(last)))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], color.stroke_width(3)));
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
}

fn draw_lr(root: &Root<'_>, pts: &[(f64, f64)]) -> DrawResult {
    let xs = span(pts.iter().map(|p| p.0));
    let (lo, hi) = span_raw(pts.iter().map(|p| p.1));
    let pad = ((hi - lo) * 0.05).max(hi.abs() * 0.05).max(1e-12);
    let ys = (lo.min(0.0))..(hi + pad);
    let mut chart = ChartBuilder::on(root)
        .caption("Learning rate", (FONT_FAMILY, 26))
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(84)
        .build_cartesian_2d(xs, ys)
        .map_err(|e| e.to_string())?;
    configure_mesh(&mut chart, "iteration", "learning rate")?;
    chart
        .draw_series(LineSeries::new(
            pts.iter().copied(),
            series_color(0).stroke_width(2),
        ))
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn draw_ap(root: &Root<'_>, evals: &[&MetricsRow]) -> DrawResult {
    // One evaluation per epoch: plot against the epoch, else the iteration.
    let by_epoch = evals.windows(2).all(|w| w[0].epoch < w[1].epoch);
    let x_of = |r: &MetricsRow| {
        if by_epoch {
            r.epoch as f64
        } else {
            r.iter as f64
        }
    };
    let series: Vec<(&str, Vec<(f64, f64)>)> = ["AP", "AP50", "AP75"]
        .into_iter()
        .map(|name| {
            let mut pts: Vec<(f64, f64)> = evals
                .iter()
                .filter_map(|r| {
                    let v = r.coco_stat(name)?;
                    // pycocotools' -1: undefined (no ground truth).
                    (v >= 0.0 && v.is_finite()).then_some((x_of(r), v * 100.0))
                })
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            (name, pts)
        })
        .collect();
    let xs = {
        let r = span(series.iter().flat_map(|s| s.1.iter().map(|p| p.0)));
        let pad = ((r.end - r.start) * 0.03).max(0.5);
        (r.start - pad)..(r.end + pad)
    };
    let hi = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let ys = 0.0..(hi * 1.1).clamp(1.0, 100.0);
    let mut chart = ChartBuilder::on(root)
        .caption("COCO bbox AP", (FONT_FAMILY, 26))
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(84)
        .build_cartesian_2d(xs, ys)
        .map_err(|e| e.to_string())?;
    let x_fmt = |v: &f64| {
        // Epochs are whole numbers: no ticks between them.
        if by_epoch && v.fract() != 0.0 {
            String::new()
        } else {
            fmt_value(*v)
        }
    };
    chart
        .configure_mesh()
        .x_desc(if by_epoch { "epoch" } else { "iteration" })
        .y_desc("AP (%)")
        .axis_desc_style((FONT_FAMILY, 20))
        .label_style((FONT_FAMILY, 16))
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&|v| fmt_value(*v))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = series_color(i);
        let last = pts.last().map_or(f64::NAN, |p| p.1);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)).point_size(4))
            .map_err(|e| e.to_string())?
            .label(format!("{name}  (last {last:.1})"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], color.stroke_width(3)));
    }
    // AP rises over training: the lower right stays clear.
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight)
}

fn configure_mesh<Y>(
    chart: &mut ChartContext<'_, BitMapBackend<'_>, Cartesian2d<RangedCoordf64, Y>>,
    x_desc: &str,
    y_desc: &str,
) -> DrawResult
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .axis_desc_style((FONT_FAMILY, 20))
        .label_style((FONT_FAMILY, 16))
        .x_label_formatter(&|v| fmt_value(*v))
        .y_label_formatter(&|v| fmt_value(*v))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| e.to_string())
}

fn draw_legend<'a, Y>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
    position: SeriesLabelPosition,
) -> DrawResult
where
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT_FAMILY, 17))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(160, 160, 160))
        .draw()
        .map_err(|e| e.to_string())
}

fn series_color(i: usize) -> RGBColor {
    if i == 0 {
        BLACK
    } else {
        PALETTE[(i - 1) % PALETTE.len()]
    }
}

/// `(min, max)` of the finite values (`(0, 1)` when there are none).
fn span_raw(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        (0.0, 1.0)
    } else {
        (lo, hi)
    }
}

/// A non-empty axis range covering the values.
fn span(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = span_raw(values);
    if hi > lo {
        lo..hi
    } else {
        (lo - 1.0)..(hi + 1.0)
    }
}

/// Tick and legend numbers: integers as such, small or large values in
/// scientific notation, others with 4 significant digits.
fn fmt_value(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        "-".to_string()
    } else if v == v.round() && a < 1e7 {
        format!("{v:.0}")
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.2e}")
    } else {
        let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::metrics::MetricsWriter;

    fn tmp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "crosskd-plots-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// A deterministic noisy run: 3 epochs of 200 iterations, warm-up + step
    /// lr, decaying losses, an evaluation after every epoch.
    fn synthetic_run(dir: &Path) {
        let comps: Vec<String> = [
            "loss_cls",
            "loss_bbox",
            "loss_dfl",
            "loss_cls_kd",
            "loss_reg_kd",
            "loss_feat_kd",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut w = MetricsWriter::open(dir, &comps, None).unwrap();
        let mut seed = 12345u64;
        let mut noise = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as f64 / (1u64 << 31) as f64 - 0.5
        };
        for it in 1..=600u64 {
            let epoch = (it - 1) / 200 + 1;
            let lr = if it < 100 {
                0.01 * (0.001 + 0.999 * it as f64 / 100.0)
            } else if it < 500 {
                0.01
            } else {
                0.001
            };
            let losses: Vec<(String, f32)> = comps
                .iter()
                .enumerate()
                .map(|(j, c)| {
                    let base = [1.2, 0.8, 0.4, 0.6, 0.3, 0.05][j];
                    let v = base * (0.25 + (-(it as f64) / 150.0).exp()) * (1.0 + 0.6 * noise());
                    (c.clone(), v as f32)
                })
                .collect();
            w.log_step(epoch, it, lr, &losses).unwrap();
            if it % 200 == 0 {
                let ap = [0.18, 0.31, 0.37][epoch as usize - 1];
                let mut s = [0.0; 12];
                for (k, v) in s.iter_mut().enumerate() {
                    *v = ap * (1.0 + 0.1 * k as f64);
                }
                s[1] = ap * 1.6;
                s[2] = ap * 1.05;
                s[3] = -1.0;
                w.log_eval(epoch, it, lr, &s).unwrap();
            }
        }
    }

    fn assert_valid_png(path: &Path) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(
            &bytes[..8],
            b"\x89PNG\r\n\x1a\n",
            "{} is not a PNG",
            path.display()
        );
        let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
            .unwrap()
            .to_rgb8();
        assert_eq!(img.dimensions(), SIZE);
        let colors: std::collections::HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
        assert!(
            colors.len() > 2,
            "{} has {} colours",
            path.display(),
            colors.len()
        );
        // Not a blank canvas: a fair share of pixels is drawn on.
        let drawn = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
        assert!(
            drawn > 5_000,
            "{}: {drawn} non-white pixels",
            path.display()
        );
    }

    #[test]
    fn render_plots_writes_three_valid_pngs() {
        let dir = tmp_dir("three");
        synthetic_run(&dir);
        let written = render_plots(&dir).unwrap();
        let names: Vec<_> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["loss.png", "lr.png", "ap.png"]);
        for p in &written {
            assert_eq!(p.parent().unwrap(), dir);
            assert_valid_png(p);
        }
        assert!(!dir.join("loss.png.tmp").exists());
        // Keep the plots for a look when asked to.
        if let Ok(keep) = std::env::var("CROSSKD_KEEP_PLOTS") {
            let keep = PathBuf::from(keep);
            std::fs::create_dir_all(&keep).unwrap();
            for p in &written {
                std::fs::copy(p, keep.join(p.file_name().unwrap())).unwrap();
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn render_plots_skips_ap_without_evaluation_and_renders_tiny_runs() {
        let dir = tmp_dir("noeval");
        let comps = vec!["loss_cls".to_string(), "loss_zero".to_string()];
        let mut w = MetricsWriter::open(&dir, &comps, None).unwrap();
        // A single row, a zero component: no log scale, degenerate ranges.
        w.log_step(
            0,
            1,
            0.02,
            &[
                ("loss_cls".to_string(), 1.5),
                ("loss_zero".to_string(), 0.0),
            ],
        )
        .unwrap();
        let written = render_plots(&dir).unwrap();
        assert_eq!(written, [dir.join("loss.png"), dir.join("lr.png")]);
        written.iter().for_each(|p| assert_valid_png(p));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn render_plots_without_metrics_is_an_error() {
        let dir = tmp_dir("missing");
        std::fs::create_dir_all(&dir).unwrap();
        let err = render_plots(&dir).unwrap_err();
        assert!(err.to_string().contains("metrics.csv"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn moving_average_envelope_and_number_format() {
        let pts: Vec<(f64, f64)> = (0..5).map(|i| (i as f64, i as f64)).collect();
        assert_eq!(moving_average(&pts, 1), pts);
        let ma = moving_average(&pts, 3);
        assert_eq!(
            ma.iter().map(|p| p.1).collect::<Vec<_>>(),
            [0.5, 1.0, 2.0, 3.0, 3.5]
        );
        let noisy: Vec<(f64, f64)> = (0..100).map(|i| (i as f64, (i % 2) as f64)).collect();
        let env = envelope(&noisy, 10);
        assert_eq!(env.len(), 20);
        assert!(env[..10].iter().all(|p| p.1 == 1.0));
        assert!(env[10..].iter().all(|p| p.1 == 0.0));
        assert_eq!((env[0].0, env[19].0), (4.95, 4.95));
        assert_eq!(fmt_value(12000.0), "12000");
        assert_eq!(fmt_value(0.01), "0.01");
        assert_eq!(fmt_value(0.012345), "0.01235");
        assert_eq!(fmt_value(1.5), "1.5");
        assert_eq!(fmt_value(0.0002), "2.00e-4");
    }
}
