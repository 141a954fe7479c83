//! The `crosskd` command line: one file per verb.

pub mod bench;
pub mod distill;
pub mod eval;
pub mod eval_onnx;
pub mod export;
pub mod predict;
pub mod quantize;
pub mod quickstart;
pub mod synth;
pub mod train;

use clap::{Parser, Subcommand};

/// CrossKD: distil big dense detectors into compact edge students.
#[derive(Debug, Parser)]
#[command(name = "crosskd", version, about)]
pub struct Cli {
    /// The verb.
    #[command(subcommand)]
    pub command: Command,
}

/// Verbs of `crosskd`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate the synthetic COCO-format benchmark.
    Synth(synth::SynthArgs),
    /// Train a detector from a TOML config.
    Train(train::TrainArgs),
    /// Score COCO-format detections against a ground-truth file.
    Eval(eval::EvalArgs),
    /// Distil a student from a frozen teacher (CrossKD, PKD, prediction mimicking).
    Distill(distill::DistillArgs),
    /// Run a checkpoint over images and write COCO results JSON.
    Predict(predict::PredictArgs),
    /// Export a checkpoint to ONNX (fp32, BN folded, SDK metadata).
    Export(export::ExportArgs),
    /// Quantize an exported ONNX model to int8 (static PTQ, calibrated in tract).
    Quantize(quantize::QuantizeArgs),
    /// COCO mAP of an exported ONNX model run by the SDK runtime.
    EvalOnnx(eval_onnx::EvalOnnxArgs),
    /// The whole pipeline on the synthetic benchmark in ~10 minutes: teacher, baseline and
    /// CrossKD students, export, int8, SDK, summary.
    Quickstart(quickstart::QuickstartArgs),
    /// Benchmarks (`bench train-step ...`).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Synth(a) => synth::run(a),
        Command::Train(a) => train::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Distill(a) => distill::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Export(a) => export::run(a),
        Command::Quantize(a) => quantize::run(a),
        Command::EvalOnnx(a) => eval_onnx::run(a),
        Command::Quickstart(a) => quickstart::run(a),
        Command::Bench(cmd) => bench::run(cmd),
    }
}
