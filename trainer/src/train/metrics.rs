//! The training run's metrics log: `<work_dir>/metrics.csv`.
//!
//! One row per logged iteration (and one per evaluation), columns
//!
//! ```text
//! epoch,iter,lr,time_s,loss,<component>...,AP,AP50,AP75,APs,APm,APl,AR1,AR10,AR100,ARs,ARm,ARl
//! ```
//!
//! `iter` is the global iteration, `time_s` the seconds since the run started
//! (carried over across resumes), `loss` the total loss and `<component>` one
//! column per loss component, named when the writer is created. Cells without a
//! value are empty: the 12 COCO stats on rows without evaluation, the losses on
//! evaluation-only rows. All cells are numbers, so no quoting is ever needed.
//!
//! [`MetricsWriter`] appends and flushes every row; [`read_metrics`] reads the
//! file back (for [`super::plots`]).

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// File name of the metrics log inside the work directory.
pub const METRICS_FILE: &str = "metrics.csv";

/// Leading columns, before the loss components.
pub const LEADING_COLUMNS: [&str; 5] = ["epoch", "iter", "lr", "time_s", "loss"];

/// The 12 COCO summary stats, in pycocotools' `COCOeval.stats` order: the
/// trailing columns.
pub const COCO_COLUMNS: [&str; 12] = [
    "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
];

/// Errors of the metrics log.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Reading, writing or renaming the file failed.
    #[error("metrics file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// An existing file was written by a run that logs other columns.
    #[error(
        "metrics file {} has header `{found}` but this run logs `{expected}`: \
         use a fresh work_dir or move the old file away",
        path.display()
    )]
    HeaderMismatch {
        /// The file.
        path: PathBuf,
        /// The header this writer would write.
        expected: String,
        /// The header found in the file.
        found: String,
    },
    /// A line of the file is not a valid metrics row (or header).
    #[error("metrics file {}, line {line}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A loss component name cannot be a column.
    #[error("invalid loss component name `{name}`: {reason}")]
    InvalidComponent {
        /// The name.
        name: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A logged row names a loss component the file has no column for, or
    /// lists the components in another order.
    #[error("loss component `{name}` does not match the metrics columns {expected:?}")]
    UnknownComponent {
        /// The offending name.
        name: String,
        /// The writer's component columns.
        expected: Vec<String>,
    },
}

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsRow {
    /// Epoch (as the trainer counts it).
    pub epoch: u64,
    /// Global iteration.
    pub iter: u64,
    /// Learning rate at this iteration.
    pub lr: f64,
    /// Seconds since the start of the run (across resumes).
    pub time_s: f64,
    /// Total loss; `None` on evaluation-only rows.
    pub loss: Option<f64>,
    /// `(name, value)` per loss component, in column order; a value is `None`
    /// where the row has no value for it.
    pub components: Vec<(String, Option<f64>)>,
    /// The 12 COCO stats ([`COCO_COLUMNS`] order; pycocotools writes -1 where a
    /// stat is undefined); `None` on rows without evaluation.
    pub coco: Option<[f64; 12]>,
}

impl MetricsRow {
    /// The value of the named loss component, if the row has one.
    pub fn component(&self, name: &str) -> Option<f64> {
        self.components
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| *v)
    }

    /// The named COCO stat (`"AP"`, `"AP50"`, ... see [`COCO_COLUMNS`]), if
    /// the row has an evaluation.
    pub fn coco_stat(&self, name: &str) -> Option<f64> {
        let i = COCO_COLUMNS.iter().position(|c| *c == name)?;
        self.coco.map(|s| s[i])
    }
}

/// Appends rows to `<work_dir>/metrics.csv`, flushing after every row.
///
/// Each row goes to the file in one `write` call and is flushed at once, so a
/// crash of the process loses no logged row (a power loss may lose what the OS
/// had not written yet: call [`MetricsWriter::sync`], e.g. when saving a
/// checkpoint, for that).
///
/// ```
/// use crosskd_trainer::train::metrics::{read_metrics, MetricsWriter};
///
/// let work_dir = std::env::temp_dir().join(format!("metrics-doc-{}", std::process::id()));
/// let components = vec!["loss_cls".to_string(), "loss_bbox".to_string()];
/// let mut log = MetricsWriter::open(&work_dir, &components, None)?;
/// let losses = vec![("loss_cls".to_string(), 0.5f32), ("loss_bbox".to_string(), 0.25)];
/// log.log_step(1, 50, 0.01, &losses)?;
/// let mut coco = [0.0; 12];
/// coco[0] = 0.401;
/// log.log_eval(1, 50, 0.01, &coco)?;
///
/// let rows = read_metrics(log.path())?;
/// assert_eq!(rows.len(), 2);
/// assert_eq!(rows[0].loss, Some(0.75));
/// assert_eq!(rows[1].coco_stat("AP"), Some(0.401));
/// # std::fs::remove_dir_all(&work_dir).unwrap();
/// # Ok::<(), crosskd_trainer::train::metrics::MetricsError>(())
/// ```
#[derive(Debug)]
pub struct MetricsWriter {
    path: PathBuf,
    file: File,
    components: Vec<String>,
    /// `time_s` of the last row kept from an earlier run.
    time_offset_s: f64,
    start: Instant,
}

impl MetricsWriter {
    /// Opens (creating `work_dir` and the file if needed) the metrics log of a
    /// run that logs the loss `components`.
    ///
    /// An existing file must have exactly this run's header, else
    /// [`MetricsError::HeaderMismatch`]; new rows are appended to it. With
    /// `resume_from_iter: Some(k)` (a run restarting from a checkpoint taken at
    /// global iteration `k`) the rows of iterations after `k` are dropped
    /// first, so the log does not hold two histories of the same iterations.
    /// A torn last line (a crash in the middle of a write) is dropped too.
    ///
    /// `time_s` of new rows continues from the last kept row.
    pub fn open(
        work_dir: &Path,
        components: &[String],
        resume_from_iter: Option<u64>,
    ) -> Result<Self, MetricsError> {
        validate_components(components)?;
        let path = work_dir.join(METRICS_FILE);
        let io_err = |source| MetricsError::Io {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(work_dir).map_err(io_err)?;
        let header = header_line(components);

        let existing = match fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(e)),
        };
        let mut time_offset_s = 0.0;
        match existing.as_deref() {
            None | Some("") => {
                fs::write(&path, format!("{header}\n")).map_err(io_err)?;
            }
            Some(text) => {
                let found = text.lines().next().unwrap_or("");
                if found.trim_end_matches('\r') != header {
                    return Err(MetricsError::HeaderMismatch {
                        path,
                        expected: header,
                        found: found.to_string(),
                    });
                }
                // Whole lines only: a last line without '\n' is a torn write.
                let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
                let mut kept = String::with_capacity(complete.len());
                let mut dropped = complete.len() != text.len();
                for (i, line) in complete.lines().enumerate() {
                    if i == 0 {
                        kept.push_str(line);
                        kept.push('\n');
                        continue;
                    }
                    if line.trim().is_empty() {
                        dropped = true;
                        continue;
                    }
                    let row =
                        parse_row(line, components).map_err(|message| MetricsError::Parse {
                            path: path.clone(),
                            line: i + 1,
                            message,
                        })?;
                    if resume_from_iter.is_some_and(|k| row.iter > k) {
                        dropped = true;
                        continue;
                    }
                    time_offset_s = row.time_s;
                    kept.push_str(line);
                    kept.push('\n');
                }
                if dropped {
                    // Rewrite through a temporary file: a crash leaves the old or
                    // the new log, never half of one.
                    let tmp = path.with_extension("csv.tmp");
                    fs::write(&tmp, &kept).map_err(io_err)?;
                    fs::rename(&tmp, &path).map_err(io_err)?;
                }
            }
        }
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err)?;
        Ok(Self {
            path,
            file,
            components: components.to_vec(),
            time_offset_s,
            start: Instant::now(),
        })
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The loss component columns, in order.
    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// Seconds since the start of the run: the last kept row's `time_s` plus
    /// the time since [`MetricsWriter::open`].
    pub fn elapsed_s(&self) -> f64 {
        self.time_offset_s + self.start.elapsed().as_secs_f64()
    }

    /// Logs one training iteration: `losses` as `(component, value)` (e.g.
    /// [`super::StepOutput::losses`]), their sum as the total, and `time_s` =
    /// [`MetricsWriter::elapsed_s`]. Components absent from `losses` get empty
    /// cells; a name without a column is [`MetricsError::UnknownComponent`].
    pub fn log_step(
        &mut self,
        epoch: u64,
        iter: u64,
        lr: f64,
        losses: &[(String, f32)],
    ) -> Result<(), MetricsError> {
        let mut values = vec![None; self.components.len()];
        for (name, value) in losses {
            let Some(i) = self.components.iter().position(|c| c == name) else {
                return Err(self.unknown(name));
            };
            values[i] = Some(f32_as_f64(*value));
        }
        // Summed in f32 like `StepOutput::total`, so the two agree.
        let total: f32 = losses.iter().map(|(_, v)| v).sum();
        let row = MetricsRow {
            epoch,
            iter,
            lr,
            time_s: self.elapsed_s(),
            loss: Some(f32_as_f64(total)),
            components: self.components.iter().cloned().zip(values).collect(),
            coco: None,
        };
        self.write_row(&row)
    }

    /// Logs an evaluation at global iteration `iter`: the 12 COCO stats
    /// ([`COCO_COLUMNS`] order), empty loss cells.
    pub fn log_eval(
        &mut self,
        epoch: u64,
        iter: u64,
        lr: f64,
        coco: &[f64; 12],
    ) -> Result<(), MetricsError> {
        let row = MetricsRow {
            epoch,
            iter,
            lr,
            time_s: self.elapsed_s(),
            loss: None,
            components: self.components.iter().map(|c| (c.clone(), None)).collect(),
            coco: Some(*coco),
        };
        self.write_row(&row)
    }

    /// Appends `row` as given (its components must be this writer's, in
    /// order) and flushes.
    pub fn write_row(&mut self, row: &MetricsRow) -> Result<(), MetricsError> {
        if row.components.len() != self.components.len() {
            let name = row
                .components
                .iter()
                .map(|(n, _)| n.as_str())
                .find(|n| !self.components.iter().any(|c| c == n))
                .or_else(|| {
                    self.components
                        .iter()
                        .map(String::as_str)
                        .find(|c| !row.components.iter().any(|(n, _)| n == c))
                })
                .unwrap_or("")
                .to_string();
            return Err(self.unknown(&name));
        }
        if let Some((name, _)) = row
            .components
            .iter()
            .zip(&self.components)
            .find_map(|((n, v), c)| (n != c).then_some((n, v)))
        {
            return Err(self.unknown(name));
        }
        let mut line = String::with_capacity(128 + 24 * (self.components.len() + 12));
        // Writing to a String cannot fail.
        let _ = write!(
            line,
            "{},{},{},{},",
            row.epoch, row.iter, row.lr, row.time_s
        );
        push_opt(&mut line, row.loss);
        for (_, v) in &row.components {
            line.push(',');
            push_opt(&mut line, *v);
        }
        for i in 0..12 {
            line.push(',');
            push_opt(&mut line, row.coco.map(|s| s[i]));
        }
        line.push('\n');
        let io_err = |source| MetricsError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(line.as_bytes()).map_err(io_err)?;
        self.file.flush().map_err(io_err)
    }

    /// Forces the rows written so far to disk (`fsync`).
    pub fn sync(&self) -> Result<(), MetricsError> {
        self.file.sync_data().map_err(|source| MetricsError::Io {
            path: self.path.clone(),
            source,
        })
    }

    fn unknown(&self, name: &str) -> MetricsError {
        MetricsError::UnknownComponent {
            name: name.to_string(),
            expected: self.components.clone(),
        }
    }
}

/// Reads a metrics log written by [`MetricsWriter`]; the loss component
/// columns are taken from its header. A torn last line (no trailing newline
/// and not a valid row, as while the trainer is writing it) is skipped.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricsRow>, MetricsError> {
    let text = fs::read_to_string(path).map_err(|source| MetricsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let parse_err = |line: usize, message: String| MetricsError::Parse {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut lines = text.lines().enumerate();
    let header = match lines.next() {
        Some((_, h)) => h.trim_end_matches('\r'),
        None => return Err(parse_err(1, "empty file: no header".to_string())),
    };
    let components = parse_header(header).map_err(|m| parse_err(1, m))?;
    let ends_with_newline = text.ends_with('\n');
    let n_lines = text.lines().count();
    let mut rows = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        match parse_row(line, &components) {
            Ok(row) => rows.push(row),
            Err(_) if i + 1 == n_lines && !ends_with_newline => {}
            Err(m) => return Err(parse_err(i + 1, m)),
        }
    }
    Ok(rows)
}

/// The header line (without newline) for these loss components.
fn header_line(components: &[String]) -> String {
    LEADING_COLUMNS
        .iter()
        .copied()
        .chain(components.iter().map(String::as_str))
        .chain(COCO_COLUMNS.iter().copied())
        .collect::<Vec<_>>()
        .join(",")
}

/// The loss component names of a header line.
fn parse_header(header: &str) -> Result<Vec<String>, String> {
    let cols: Vec<&str> = header.split(',').collect();
    let (n_lead, n_coco) = (LEADING_COLUMNS.len(), COCO_COLUMNS.len());
    if cols.len() < n_lead + n_coco
        || cols[..n_lead] != LEADING_COLUMNS
        || cols[cols.len() - n_coco..] != COCO_COLUMNS
    {
        return Err(format!(
            "header `{header}` is not `{},<loss components>,{}`",
            LEADING_COLUMNS.join(","),
            COCO_COLUMNS.join(",")
        ));
    }
    Ok(cols[n_lead..cols.len() - n_coco]
        .iter()
        .map(|c| c.to_string())
        .collect())
}

fn validate_components(components: &[String]) -> Result<(), MetricsError> {
    for (i, name) in components.iter().enumerate() {
        let reason = if name.is_empty() {
            Some("empty")
        } else if name
            .chars()
            .any(|c| c == ',' || c == '"' || c.is_whitespace() || c.is_control())
        {
            Some("contains a comma, quote, whitespace or control character")
        } else if LEADING_COLUMNS.contains(&name.as_str()) || COCO_COLUMNS.contains(&name.as_str())
        {
            Some("clashes with a fixed column")
        } else if components[..i].contains(name) {
            Some("listed twice")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(MetricsError::InvalidComponent {
                name: name.clone(),
                reason,
            });
        }
    }
    Ok(())
}

fn parse_row(line: &str, components: &[String]) -> Result<MetricsRow, String> {
    let cells: Vec<&str> = line.trim_end_matches('\r').split(',').collect();
    let n_lead = LEADING_COLUMNS.len();
    let expected = n_lead + components.len() + COCO_COLUMNS.len();
    if cells.len() != expected {
        return Err(format!(
            "{} cells, the header has {expected} columns",
            cells.len()
        ));
    }
    let int = |i: usize| {
        cells[i]
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("{} `{}` is not an integer", LEADING_COLUMNS[i], cells[i]))
    };
    let opt = |i: usize, name: &str| -> Result<Option<f64>, String> {
        let c = cells[i].trim();
        if c.is_empty() {
            Ok(None)
        } else {
            c.parse::<f64>()
                .map(Some)
                .map_err(|_| format!("{name} `{c}` is not a number"))
        }
    };
    let req = |i: usize| {
        opt(i, LEADING_COLUMNS[i])?.ok_or_else(|| format!("{} is empty", LEADING_COLUMNS[i]))
    };
    let epoch = int(0)?;
    let iter = int(1)?;
    let lr = req(2)?;
    let time_s = req(3)?;
    let loss = opt(4, "loss")?;
    let components = components
        .iter()
        .enumerate()
        .map(|(j, name)| Ok((name.clone(), opt(n_lead + j, name)?)))
        .collect::<Result<Vec<_>, String>>()?;
    let base = n_lead + components.len();
    let mut coco = [0.0; 12];
    let mut present = 0;
    for (j, name) in COCO_COLUMNS.iter().enumerate() {
        if let Some(v) = opt(base + j, name)? {
            coco[j] = v;
            present += 1;
        }
    }
    let coco = match present {
        0 => None,
        12 => Some(coco),
        _ => return Err("some but not all of the 12 COCO stats are set".to_string()),
    };
    Ok(MetricsRow {
        epoch,
        iter,
        lr,
        time_s,
        loss,
        components,
        coco,
    })
}

fn push_opt(line: &mut String, v: Option<f64>) {
    if let Some(v) = v {
        // `Display` of f64 is the shortest text that parses back to the same value.
        let _ = write!(line, "{v}");
    }
}

/// `v` as the f64 of its shortest decimal text, so an f32 loss of 0.1 is logged
/// as `0.1` rather than `0.10000000149011612`.
fn f32_as_f64(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(v as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "crosskd-metrics-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn kd_components() -> Vec<String> {
        names(&[
            "loss_cls",
            "loss_bbox",
            "loss_dfl",
            "loss_cls_kd",
            "loss_reg_kd",
            "loss_feat_kd",
        ])
    }

    fn step_losses(components: &[String], iter: u64) -> Vec<(String, f32)> {
        components
            .iter()
            .enumerate()
            .map(|(j, c)| (c.clone(), 1.0 / (iter as f32 + 1.0) + j as f32 * 0.1))
            .collect()
    }

    #[test]
    fn round_trip_preserves_every_cell() {
        let dir = tmp_dir("roundtrip");
        let comps = kd_components();
        let mut w = MetricsWriter::open(&dir, &comps, None).unwrap();
        let header = fs::read_to_string(w.path()).unwrap();
        assert_eq!(
            header,
            "epoch,iter,lr,time_s,loss,loss_cls,loss_bbox,loss_dfl,loss_cls_kd,\
             loss_reg_kd,loss_feat_kd,AP,AP50,AP75,APs,APm,APl,AR1,AR10,AR100,ARs,ARm,ARl\n"
        );
        let mut expected = Vec::new();
        for it in 1..=20u64 {
            let row = MetricsRow {
                epoch: (it - 1) / 10 + 1,
                iter: it,
                lr: 0.01 * (it as f64 / 20.0),
                time_s: it as f64 * 0.37,
                loss: Some(1.0 / 3.0 + it as f64),
                components: comps
                    .iter()
                    .enumerate()
                    .map(|(j, c)| (c.clone(), (j != 2).then_some(j as f64 / 7.0 + 1e-9)))
                    .collect(),
                coco: (it % 10 == 0).then(|| {
                    let mut s = [0.0; 12];
                    for (k, v) in s.iter_mut().enumerate() {
                        *v = k as f64 / 13.0;
                    }
                    s[3] = -1.0;
                    s
                }),
            };
            w.write_row(&row).unwrap();
            expected.push(row);
        }
        // Rows are on disk before the writer is dropped (flushed per write).
        let rows = read_metrics(w.path()).unwrap();
        assert_eq!(rows, expected);
        assert_eq!(rows[9].coco_stat("AP75"), Some(2.0 / 13.0));
        assert_eq!(rows[9].coco_stat("APs"), Some(-1.0));
        assert_eq!(rows[0].coco_stat("AP"), None);
        assert_eq!(rows[0].component("loss_dfl"), None);
        assert_eq!(rows[0].component("loss_bbox"), Some(1.0 / 7.0 + 1e-9));

        // Evaluation-free rows have exactly 12 empty trailing cells.
        let text = fs::read_to_string(w.path()).unwrap();
        let line2 = text.lines().nth(1).unwrap();
        assert!(line2.ends_with(&",".repeat(12)), "{line2}");
        assert_eq!(line2.split(',').count(), 5 + comps.len() + 12);
        drop(w);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn log_step_and_eval() {
        let dir = tmp_dir("logstep");
        let comps = names(&["loss_cls", "loss_bbox"]);
        let mut w = MetricsWriter::open(&dir, &comps, None).unwrap();
        // Components in any order; 0.1f32 is logged as 0.1.
        let losses = vec![
            ("loss_bbox".to_string(), 0.1f32),
            ("loss_cls".to_string(), 0.5f32),
        ];
        w.log_step(0, 1, 0.02, &losses).unwrap();
        // A missing component is an empty cell.
        w.log_step(0, 2, 0.02, &losses[1..]).unwrap();
        w.log_eval(0, 2, 0.02, &[0.5; 12]).unwrap();
        let err = w
            .log_step(0, 3, 0.02, &[("loss_dfl".to_string(), 1.0)])
            .unwrap_err();
        assert!(
            matches!(&err, MetricsError::UnknownComponent { name, .. } if name == "loss_dfl"),
            "{err}"
        );
        let rows = read_metrics(w.path()).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].component("loss_bbox"), Some(0.1));
        assert_eq!(rows[0].component("loss_cls"), Some(0.5));
        assert_eq!(rows[0].loss, Some(f32_as_f64(0.1f32 + 0.5f32)));
        assert_eq!(rows[1].component("loss_bbox"), None);
        assert_eq!(rows[2].loss, None);
        assert_eq!(rows[2].coco, Some([0.5; 12]));
        assert!(rows.windows(2).all(|p| p[0].time_s <= p[1].time_s));
        let text = fs::read_to_string(w.path()).unwrap();
        assert!(text.lines().nth(1).unwrap().contains(",0.1,"), "{text}");
        drop(w);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn resume_truncates_rows_after_checkpoint_iteration() {
        let dir = tmp_dir("resume");
        let comps = kd_components();
        let mut w = MetricsWriter::open(&dir, &comps, None).unwrap();
        for it in 1..=10 {
            let row = MetricsRow {
                epoch: 0,
                iter: it,
                lr: 0.01,
                time_s: it as f64 * 10.0,
                loss: Some(1.0),
                components: comps.iter().map(|c| (c.clone(), Some(0.5))).collect(),
                coco: (it == 5).then_some([0.25; 12]),
            };
            w.write_row(&row).unwrap();
        }
        drop(w);

        // Restart from the checkpoint of iteration 5: rows 6..=10 go.
        let mut w = MetricsWriter::open(&dir, &comps, Some(5)).unwrap();
        let rows = read_metrics(w.path()).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.iter).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(rows[4].coco, Some([0.25; 12]));
        // Time continues from the last kept row.
        assert!(w.elapsed_s() >= 50.0 && w.elapsed_s() < 60.0);
        w.log_step(0, 6, 0.01, &step_losses(&comps, 6)).unwrap();
        drop(w);
        let rows = read_metrics(&dir.join(METRICS_FILE)).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.iter).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5, 6]
        );
        assert!(rows[5].time_s >= 50.0);

        // Without a resume iteration the file is appended to as it is.
        let mut w = MetricsWriter::open(&dir, &comps, None).unwrap();
        w.log_step(0, 7, 0.01, &step_losses(&comps, 7)).unwrap();
        assert_eq!(read_metrics(w.path()).unwrap().len(), 7);
        // Resuming past the last row keeps everything.
        drop(w);
        let w = MetricsWriter::open(&dir, &comps, Some(100)).unwrap();
        assert_eq!(read_metrics(w.path()).unwrap().len(), 7);
        // Resuming from 0 keeps only the header.
        drop(w);
        let w = MetricsWriter::open(&dir, &comps, Some(0)).unwrap();
        assert!(read_metrics(w.path()).unwrap().is_empty());
        assert!(!dir.join("metrics.csv.tmp").exists());
        drop(w);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn torn_last_line_is_dropped() {
        let dir = tmp_dir("torn");
        let comps = names(&["loss_cls"]);
        let mut w = MetricsWriter::open(&dir, &comps, None).unwrap();
        w.log_step(0, 1, 0.01, &[("loss_cls".to_string(), 2.0)])
            .unwrap();
        drop(w);
        let path = dir.join(METRICS_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"0,2,0.01,3.").unwrap();
        drop(f);
        // The reader skips it, the writer cuts it off before appending.
        assert_eq!(read_metrics(&path).unwrap().len(), 1);
        let mut w = MetricsWriter::open(&dir, &comps, None).unwrap();
        w.log_step(0, 2, 0.01, &[("loss_cls".to_string(), 1.0)])
            .unwrap();
        let rows = read_metrics(&path).unwrap();
        assert_eq!(rows.iter().map(|r| r.iter).collect::<Vec<_>>(), [1, 2]);
        drop(w);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn header_mismatch_is_an_error_naming_the_file() {
        let dir = tmp_dir("mismatch");
        let w = MetricsWriter::open(&dir, &names(&["loss_cls", "loss_bbox"]), None).unwrap();
        let before = fs::read_to_string(w.path()).unwrap();
        drop(w);
        let err = MetricsWriter::open(
            &dir,
            &names(&["loss_cls", "loss_bbox", "loss_cls_kd"]),
            None,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, MetricsError::HeaderMismatch { .. }), "{msg}");
        assert!(
            msg.contains(&dir.join(METRICS_FILE).display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("loss_cls_kd"), "{msg}");
        // Same error when resuming; the file is left untouched.
        assert!(matches!(
            MetricsWriter::open(&dir, &names(&["loss_bbox", "loss_cls"]), Some(3)),
            Err(MetricsError::HeaderMismatch { .. })
        ));
        assert_eq!(fs::read_to_string(dir.join(METRICS_FILE)).unwrap(), before);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_component_names_and_rows_are_rejected() {
        let dir = tmp_dir("badnames");
        for bad in [
            vec!["loss_cls", "loss_cls"],
            vec!["loss,cls"],
            vec![""],
            vec!["AP"],
            vec!["loss"],
        ] {
            let err = MetricsWriter::open(&dir, &names(&bad), None).unwrap_err();
            assert!(
                matches!(err, MetricsError::InvalidComponent { .. }),
                "{bad:?}: {err}"
            );
        }
        let comps = names(&["loss_cls", "loss_bbox"]);
        let mut w = MetricsWriter::open(&dir, &comps, None).unwrap();
        let mut row = MetricsRow {
            epoch: 0,
            iter: 1,
            lr: 0.1,
            time_s: 0.0,
            loss: None,
            components: vec![("loss_bbox".into(), None), ("loss_cls".into(), None)],
            coco: None,
        };
        assert!(w.write_row(&row).is_err());
        row.components.pop();
        assert!(w.write_row(&row).is_err());

        // A corrupt row in the middle of the file is a parse error with its line.
        let path = w.path().to_path_buf();
        drop(w);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        let empty = ",".repeat(15);
        write!(f, "0,x,0.1,0{empty}\n0,2,0.1,0{empty}\n").unwrap();
        drop(f);
        let err = read_metrics(&path).unwrap_err();
        assert!(matches!(err, MetricsError::Parse { line: 2, .. }), "{err}");
        assert!(err.to_string().contains("iter `x`"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
