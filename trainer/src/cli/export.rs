//! `crosskd export --checkpoint CKPT [--config CFG] --out student.onnx [--input-size WxH] [--opset N]`:
//! the fp32 ONNX model (BN folded, raw head outputs per level, SDK metadata),
//! checked by running it once in tract.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

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

/// Run `crosskd export`.
pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    crate::export::check_opset(args.opset)?;
    let size = args
        .input_size
        .as_deref()
        .map(parse_input_size)
        .transpose()?;
    let src = ExportSource::load(&args.checkpoint, args.config.as_deref())?;
    let size = size.unwrap_or_else(|| src.default_input_size());
    let meta = src.meta(size);
    let model = export_detector(&src.detector, &meta, &src.header.category_ids, args.opset)?;
    write_model(&args.out, &model)?;
    let bytes = std::fs::metadata(&args.out)
        .with_context(|| format!("reading back {}", args.out.display()))?
        .len();
    println!(
        "{}: {} detector, {} classes, input [1, 3, {}, {}], opset {}, {:.2} MB",
        args.out.display(),
        meta.decode.kind,
        meta.decode.num_classes,
        size.1,
        size.0,
        args.opset,
        bytes as f64 / 1e6
    );
    if !args.no_check {
        let runner = OnnxRunner::from_path(&args.out)?;
        let outs = runner.run(&vec![0.0; 3 * size.0 * size.1])?;
        println!(
            "checked in tract: {} outputs ({} …)",
            outs.len(),
            outs[0].name
        );
    }
    Ok(())
}
