//! The paper's COCO recipes, step by step: check the dataset and the ImageNet
//! weights, then print (or, with `--run`, execute) the `crosskd` commands that
//! train the teacher, the student baseline and the CrossKD student on one or
//! several GPUs, with the APs the paper reports for each. See README.md here.
//!
//! ```sh
//! cargo run -p distill_coco -- --detector gfl --gpus 8          # print the GFL recipe
//! cargo run -p distill_coco -- --detector all --gpus 1          # every recipe, one GPU
//! cargo run -p distill_coco -- --detector gfl --gpus 8 --run    # check, then run it
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Parser, ValueEnum};

/// One detector's recipe: config stems in `trainer/configs/` and the paper's COCO val2017 APs.
#[derive(Debug, Clone, Copy)]
pub struct Recipe {
    /// Detector family.
    pub detector: &'static str,
    /// Teacher config (trained with `crosskd train`).
    pub teacher: &'static str,
    /// Student baseline config (`crosskd train`).
    pub student: &'static str,
    /// CrossKD config (`crosskd distill`).
    pub crosskd: &'static str,
    /// CrossKD + PKD config (`crosskd distill`).
    pub crosskd_pkd: &'static str,
    /// Paper APs: teacher, student, CrossKD, CrossKD+PKD.
    pub paper_ap: [f64; 4],
}

/// The four recipes of the paper's main table (spec §4).
pub const RECIPES: [Recipe; 4] = [
    Recipe {
        detector: "gfl",
        teacher: "gfl_r101_fpn_ms-2x_coco",
        student: "gfl_r50_fpn_1x_coco",
        crosskd: "crosskd_r50_gflv1_r101-2x-ms_fpn_1x_coco",
        crosskd_pkd: "crosskd+pkd_r50_gflv1_r101-2x-ms_fpn_1x_coco",
        paper_ap: [44.9, 40.2, 43.7, 43.9],
    },
    Recipe {
        detector: "retinanet",
        teacher: "retinanet_r101_fpn_2x_coco",
        student: "retinanet_r50_fpn_2x_coco",
        crosskd: "crosskd_r50_retinanet_r101_fpn_2x_coco",
        crosskd_pkd: "crosskd+pkd_r50_retinanet_r101_fpn_2x_coco",
        paper_ap: [38.9, 37.4, 39.7, 39.8],
    },
    Recipe {
        detector: "fcos",
        teacher: "fcos_r101-caffe_fpn_gn-head_ms-640-800-2x_coco",
        student: "fcos_r50-caffe_fpn_gn-head_ms-640-800-2x_coco",
        crosskd: "crosskd_r50_fcos_r101-2x-ms_caffe_fpn_gn-head_2x_ms_coco",
        crosskd_pkd: "crosskd+pkd_r50_fcos_r101-2x-ms_caffe_fpn_gn-head_2x_ms_coco",
        paper_ap: [40.8, 38.5, 41.1, 41.3],
    },
    Recipe {
        detector: "atss",
        teacher: "atss_r101_fpn_1x_coco",
        student: "atss_r50_fpn_1x_coco",
        crosskd: "crosskd_r50_atss_r101_fpn_1x_coco",
        crosskd_pkd: "crosskd+pkd_r50_atss_r101_fpn_1x_coco",
        paper_ap: [41.5, 39.4, 41.8, 41.8],
    },
];

/// Which recipe(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Gfl,
    Retinanet,
    Fcos,
    Atss,
    All,
}

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "distill_coco",
    about = "The paper's COCO recipes: check, print or run them"
)]
struct Args {
    /// Detector recipe.
    #[arg(long, value_enum, default_value = "gfl")]
    detector: Which,
    /// GPUs on this machine (1 = single GPU; the paper uses 8 × 2 images).
    #[arg(long, default_value_t = 1)]
    gpus: usize,
    /// Also run CrossKD + PKD.
    #[arg(long)]
    pkd: bool,
    /// The repository root (configs under trainer/configs/, data under data/coco/).
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Execute the commands (default: print them).
    #[arg(long)]
    run: bool,
    /// The `crosskd` binary used by --run (build it with `--release --features cuda`).
    #[arg(long, default_value = "target/release/crosskd")]
    crosskd: PathBuf,
}

/// Files the recipes read, relative to the root, and how to get each.
const INPUTS: [(&str, &str); 6] = [
    (
        "data/coco/annotations/instances_train2017.json",
        "COCO 2017 annotations (cocodataset.org)",
    ),
    (
        "data/coco/annotations/instances_val2017.json",
        "COCO 2017 annotations (cocodataset.org)",
    ),
    ("data/coco/train2017", "COCO 2017 train images"),
    ("data/coco/val2017", "COCO 2017 val images"),
    (
        "pretrained/resnet50.pth",
        "torchvision resnet50 ImageNet weights (.pth or .safetensors)",
    ),
    (
        "pretrained/resnet101.pth",
        "torchvision resnet101 ImageNet weights",
    ),
];

/// The `--devices` value for `gpus` GPUs.
pub fn devices(gpus: usize) -> String {
    (0..gpus.max(1))
        .map(|i| format!("cuda:{i}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The steps of one recipe: (what, verb, config stem, paper AP).
pub fn steps(r: &Recipe, pkd: bool) -> Vec<(&'static str, &'static str, &'static str, f64)> {
    let mut s = vec![
        ("teacher", "train", r.teacher, r.paper_ap[0]),
        ("student baseline", "train", r.student, r.paper_ap[1]),
        ("CrossKD student", "distill", r.crosskd, r.paper_ap[2]),
    ];
    if pkd {
        s.push((
            "CrossKD+PKD student",
            "distill",
            r.crosskd_pkd,
            r.paper_ap[3],
        ));
    }
    s
}

fn main() -> ExitCode {
    let a = Args::parse();
    let recipes: Vec<&Recipe> = RECIPES
        .iter()
        .filter(|r| {
            a.detector == Which::All || format!("{:?}", a.detector).eq_ignore_ascii_case(r.detector)
        })
        .collect();
    let missing: Vec<_> = INPUTS
        .iter()
        .filter(|(p, _)| !a.root.join(p).exists())
        .collect();
    for (p, what) in &missing {
        eprintln!("missing {}: {what}", a.root.join(p).display());
    }
    let devices = devices(a.gpus);
    let mut commands = Vec::new();
    for r in &recipes {
        println!("# {} (COCO val2017 box AP in the paper)", r.detector);
        for (what, verb, stem, ap) in steps(r, a.pkd) {
            let config = Path::new("trainer/configs").join(format!("{stem}.toml"));
            if !a.root.join(&config).is_file() {
                eprintln!(
                    "error: {} not found: pass --root <repository>",
                    a.root.join(&config).display()
                );
                return ExitCode::FAILURE;
            }
            println!("# {what}: {ap:.1} AP -> work_dirs/{stem}/ (metrics.csv, ap.png, best.ckpt)");
            println!(
                "{} {verb} --config {} --devices {devices}",
                a.crosskd.display(),
                config.display()
            );
            commands.push((verb, config));
        }
    }
    println!(
        "# then: crosskd export --checkpoint work_dirs/<CrossKD stem>/best.ckpt --out student.onnx"
    );
    if !a.run {
        return ExitCode::SUCCESS;
    }
    if !missing.is_empty() {
        eprintln!(
            "error: {} input(s) missing (listed above); nothing was run",
            missing.len()
        );
        return ExitCode::FAILURE;
    }
    for (verb, config) in commands {
        let status = Command::new(&a.crosskd)
            .current_dir(&a.root)
            .args([verb, "--config"])
            .arg(&config)
            .args(["--devices", &devices])
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                eprintln!(
                    "error: {} {verb} --config {} failed ({s})",
                    a.crosskd.display(),
                    config.display()
                );
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("error: cannot run {}: {e} (build it: cargo build --release -p crosskd-trainer --features cuda)", a.crosskd.display());
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_recipe_names_a_shipped_config_and_the_paper_order_holds() {
        let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../trainer/configs");
        for r in &RECIPES {
            for (_, verb, stem, _) in steps(r, true) {
                let text = std::fs::read_to_string(configs.join(format!("{stem}.toml")))
                    .unwrap_or_else(|e| panic!("{stem}: {e}"));
                assert_eq!(text.contains("[distill]"), verb == "distill", "{stem}");
            }
            let [t, s, c, _] = r.paper_ap;
            assert!(c > s && t > s, "{r:?}");
        }
    }

    #[test]
    fn devices_lists_one_cuda_device_per_gpu() {
        assert_eq!(devices(1), "cuda:0");
        assert_eq!(devices(3), "cuda:0,cuda:1,cuda:2");
    }
}
