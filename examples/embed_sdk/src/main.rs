//! The smallest application on the edge SDK: load an exported CrossKD student
//! and a board's firmware config, detect on one image, print the detections.
//!
//! ```sh
//! cargo run -p embed_sdk -- quickstart/export/student_crosskd.onnx \
//!     firmware-configs/x86-64-dev.toml quickstart/data/val/000001.png
//! ```

use crosskd_sdk::{Detector, DeviceConfig};

fn run(model: &str, config: &str, image: &str) -> Result<(), Box<dyn std::error::Error>> {
    let cfg = DeviceConfig::from_file(config)?;
    let mut detector = Detector::from_file(model, &cfg)?;
    let img = image::open(image).map_err(|e| format!("{image}: {e}"))?;
    for d in detector.detect(&img)? {
        let [x1, y1, x2, y2] = d.bbox;
        let label = d.label.as_deref().unwrap_or("?");
        println!(
            "{label:>10} {:.2}  [{x1:.0}, {y1:.0}, {x2:.0}, {y2:.0}]",
            d.score
        );
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, config, image] = args.as_slice() else {
        eprintln!("usage: embed_sdk MODEL.onnx FIRMWARE_CONFIG.toml IMAGE");
        return std::process::ExitCode::from(2);
    };
    match run(model, config, image) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
