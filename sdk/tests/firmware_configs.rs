//! Every file in firmware-configs/ loads, validates, and spells out the keys a
//! board owner is expected to tune.

use crosskd_sdk::config::{DeviceConfig, Precision};

#[test]
fn every_firmware_config_loads() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware-configs");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let cfg = DeviceConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
            let text = std::fs::read_to_string(&path).unwrap();
            for key in [
                "threads",
                "precision",
                "score_thr",
                "max_detections",
                "[camera]",
            ] {
                assert!(text.contains(key), "{}: no {key}", path.display());
            }
            assert!(!cfg.board.is_empty(), "{}", path.display());
            assert_ne!(cfg.runtime.precision, Precision::Any, "{}", path.display());
            // Precision choice must cite a measurement.
            assert!(
                text.contains("Measured") || text.contains("measured"),
                "{}",
                path.display()
            );
            names.push(path.file_stem().unwrap().to_string_lossy().into_owned());
        }
    }
    names.sort();
    assert_eq!(
        names,
        [
            "generic-aarch64",
            "jetson-nano",
            "jetson-orin-nano",
            "raspberry-pi-4",
            "raspberry-pi-5",
            "x86-64-dev"
        ]
    );
}
