//! The `crosskd` command line: one file per verb.

pub mod bench;

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
    /// Benchmarks (`bench train-step ...`).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Bench(cmd) => bench::run(cmd),
    }
}
