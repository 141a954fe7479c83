//! `crosskd quantize --model student.onnx --calib DIR|GT.json --out student.int8.onnx`:
//! static post-training int8 quantization calibrated in tract.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::export::metadata::read_meta;
use crate::export::quantize::calib_data::CalibSet;
use crate::export::quantize::{
    quantize, CalibMethod, QuantFormat, QuantizeOptions, QuantizeSummary,
};
use crate::export::runner::{read_model, write_model, OnnxRunner};

/// `crosskd quantize` arguments.
#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// fp32 model written by `crosskd export`.
    #[arg(long)]
    pub model: PathBuf,
    /// Calibration images: a folder, or a COCO annotation file.
    #[arg(long, value_name = "DIR|GT.json")]
    pub calib: PathBuf,
    /// Folder of the images of `--calib GT.json` (default: `<json dir>/<json stem>/`).
    #[arg(long)]
    pub image_dir: Option<PathBuf>,
    /// Calibration images used, spread evenly over the set.
    #[arg(long, default_value_t = 100)]
    pub num_images: usize,
    /// Range estimation: minmax, percentile (99.99), percentile=P, entropy.
    #[arg(long, default_value = "minmax")]
    pub method: CalibMethod,
    /// qoperator (QLinearConv; real int8 in tract) or qdq (TensorRT / onnxruntime).
    #[arg(long, default_value = "qoperator")]
    pub format: QuantFormat,
    /// Keep the head's final predictor convs in float (less AP loss, slightly slower).
    #[arg(long)]
    pub keep_float_outputs: bool,
    /// Output ONNX file.
    #[arg(long)]
    pub out: PathBuf,
}

/// Quantize the fp32 model `model` into `out`, calibrated on at most
/// `num_images` images of `calib` (a folder, or a COCO JSON whose images are in
/// `image_dir`); the written file is run once in tract. A progress bar shows
/// the calibration runs when `progress`.
pub fn quantize_file(
    model: &Path,
    calib: &Path,
    image_dir: Option<&Path>,
    num_images: usize,
    opts: &QuantizeOptions,
    out: &Path,
    progress: bool,
) -> anyhow::Result<QuantizeSummary> {
    let fp32 = read_model(model)?;
    let meta = read_meta(&fp32).with_context(|| model.display().to_string())?;
    let mut calib = CalibSet::from_path(calib, image_dir, num_images, &meta)?;
    let bar = if progress {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "calib [{elapsed_precise}] {wide_bar} {pos}/{len} runs ETA {eta}",
        )
        .expect("valid template"),
    );
    let n = calib.len();
    let (int8, summary) = quantize(
        &fp32,
        n,
        &mut |i| calib.input(i),
        opts,
        &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    write_model(out, &int8)?;
    // Prove the file runs where it will be deployed.
    let runner = OnnxRunner::from_path(out)?;
    let [_, _, h, w] = runner.input_shape();
    runner.run(&vec![0.0; 3 * h * w])?;
    Ok(summary)
}

/// Run `crosskd quantize`.
pub fn run(args: QuantizeArgs) -> anyhow::Result<()> {
    let opts = QuantizeOptions {
        method: args.method,
        format: args.format,
        keep_float_outputs: args.keep_float_outputs,
    };
    let summary = quantize_file(
        &args.model,
        &args.calib,
        args.image_dir.as_deref(),
        args.num_images,
        &opts,
        &args.out,
        true,
    )?;
    let size = |p: &PathBuf| {
        std::fs::metadata(p)
            .map(|m| m.len() as f64 / 1e6)
            .unwrap_or(0.0)
    };
    println!(
        "{}: int8 {} ({}), {summary}; {:.2} MB (fp32 {:.2} MB); checked in tract",
        args.out.display(),
        opts.format,
        opts.method,
        size(&args.out),
        size(&args.model)
    );
    Ok(())
}
