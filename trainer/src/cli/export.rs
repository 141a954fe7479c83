//! `crosskd export --checkpoint CKPT [--config CFG] --out student.onnx [--input-size WxH] [--opset N]`:
//! the fp32 ONNX model (BN folded, raw head outputs per level, SDK metadata),
//! checked by running it once in tract.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use crosskd_sdk::ModelMeta;

use crate::export::input_size::parse_input_size;
use crate::export::runner::{write_model, OnnxRunner};
use crate::export::source::ExportSource;
use crate::export::{export_detector, DEFAULT_OPSET};

/// `crosskd export` arguments.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Checkpoint written by `crosskd train` / `distill`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The config the checkpoint was trained with (default: the copy stored in the checkpoint);
    /// its `[data.val_pipeline]` gives the input size and normalisation, `[test_cfg]` the thresholds.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output ONNX file.
    #[arg(long)]
    pub out: PathBuf,
    /// Network input WIDTHxHEIGHT, multiples of 32 (default: the test scale, padded).
    #[arg(long, value_name = "WxH")]
    pub input_size: Option<String>,
    /// ONNX opset (13..=21).
    #[arg(long, default_value_t = DEFAULT_OPSET)]
    pub opset: i64,
    /// Skip the check run in tract after writing.
    #[arg(long)]
    pub no_check: bool,
}

/// What [`export_checkpoint`] wrote.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// The ONNX file.
    pub path: PathBuf,
    /// Its metadata (decode spec, classes, input size).
    pub meta: ModelMeta,
    /// File size in bytes.
    pub bytes: u64,
}

/// Export `checkpoint` (checked against `config` when given) to the fp32 ONNX
/// file `out`; `input_size` (W, H) defaults to the test scale, padded. With
/// `check`, the file is run once in tract.
pub fn export_checkpoint(
    checkpoint: &Path,
    config: Option<&Path>,
    out: &Path,
    input_size: Option<(usize, usize)>,
    opset: i64,
    check: bool,
) -> anyhow::Result<ExportReport> {
    crate::export::check_opset(opset)?;
    let src = ExportSource::load(checkpoint, config)?;
    let size = input_size.unwrap_or_else(|| src.default_input_size());
    let meta = src.meta(size);
    let model = export_detector(&src.detector, &meta, &src.header.category_ids, opset)?;
    write_model(out, &model)?;
    let bytes = std::fs::metadata(out)
        .with_context(|| format!("reading back {}", out.display()))?
        .len();
    if check {
        let runner = OnnxRunner::from_path(out)?;
        runner.run(&vec![0.0; 3 * size.0 * size.1])?;
    }
    Ok(ExportReport {
        path: out.to_path_buf(),
        meta,
        bytes,
    })
}

/// Run `crosskd export`.
pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let size = args
        .input_size
        .as_deref()
        .map(parse_input_size)
        .transpose()?;
    let r = export_checkpoint(
        &args.checkpoint,
        args.config.as_deref(),
        &args.out,
        size,
        args.opset,
        !args.no_check,
    )?;
    let meta = &r.meta;
    println!(
        "{}: {} detector, {} classes, input [1, 3, {}, {}], opset {}, {:.2} MB",
        args.out.display(),
        meta.decode.kind,
        meta.decode.num_classes,
        meta.input_size.1,
        meta.input_size.0,
        args.opset,
        r.bytes as f64 / 1e6
    );
    if !args.no_check {
        println!("checked in tract");
    }
    Ok(())
}
