//! `crosskd`: train, distil, evaluate, benchmark and export dense detectors;
//! `crosskd quickstart` runs the whole pipeline on the synthetic benchmark.

use std::process::ExitCode;

use clap::Parser;
use crosskd_trainer::cli::{run, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
