//! `crosskd quickstart --tiny` end to end: synthetic data → teacher → baseline
//! and CrossKD students → fp32/int8 export → SDK evaluation → annotated images
//! and summary, at a size that runs in seconds. Checks that every promised
//! output exists and that `summary.json` parses and agrees with itself.

use std::path::Path;

use crosskd_trainer::cli::quickstart::{quickstart, QuickstartArgs, Summary};

fn non_empty(p: &Path) {
    let len = std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .len();
    assert!(len > 0, "{} is empty", p.display());
}

#[test]
fn tiny_quickstart_writes_every_output() {
    let out = std::env::temp_dir().join(format!("crosskd-quickstart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let returned = quickstart(QuickstartArgs {
        out: out.clone(),
        tiny: true,
        device: "flex".into(),
        threads: 0,
        quiet: true,
    })
    .expect("quickstart --tiny runs");

    for f in [
        "data/train.json",
        "data/val.json",
        "summary.md",
        "summary.json",
    ] {
        non_empty(&out.join(f));
    }
    for run in ["teacher", "student_baseline", "student_crosskd"] {
        for f in ["metrics.csv", "loss.png", "ap.png", "lr.png"] {
            non_empty(&out.join(run).join(f));
        }
        non_empty(&out.join("configs").join(format!("{run}.toml")));
    }
    for f in ["student_crosskd.onnx", "student_crosskd.int8.onnx"] {
        non_empty(&out.join("export").join(f));
    }

    let text = std::fs::read_to_string(out.join("summary.json")).unwrap();
    let s: Summary = serde_json::from_str(&text).expect("summary.json parses");
    assert_eq!(s, returned);
    let names: Vec<&str> = s.models.iter().map(|m| m.ap.name.as_str()).collect();
    assert_eq!(names, ["teacher", "student baseline", "CrossKD student"]);
    let precisions: Vec<&str> = s.deploy.iter().map(|d| d.ap.name.as_str()).collect();
    assert_eq!(precisions, ["SDK fp32", "SDK int8"]);
    for m in &s.models {
        assert!((0.0..=1.0).contains(&m.ap.ap), "{m:?}");
        assert!(m.iters > 0 && m.work_dir.is_dir(), "{m:?}");
    }
    for d in &s.deploy {
        assert!((0.0..=1.0).contains(&d.ap.ap), "{d:?}");
        assert!(
            d.size_mb > 0.0 && d.infer_ms > 0.0 && d.total_ms >= d.infer_ms,
            "{d:?}"
        );
    }
    let gain = s.models[2].ap.ap - s.models[1].ap.ap;
    assert!((s.crosskd_gain_ap - gain).abs() < 1e-12);
    assert_eq!(s.stages.len(), 8, "{:?}", s.stages);
    assert_eq!(s.annotated.len(), 2);
    for a in &s.annotated {
        let img = image::open(a).expect("annotated image decodes");
        assert_eq!((img.width(), img.height()), (256, 256), "64 px × 4");
    }
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    for needle in [
        "| teacher |",
        "| CrossKD student |",
        "| SDK int8 |",
        "CrossKD gain",
    ] {
        assert!(md.contains(needle), "summary.md lacks {needle:?}:\n{md}");
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn an_unknown_device_is_a_clear_error() {
    let out = std::env::temp_dir().join(format!("crosskd-quickstart-bad-{}", std::process::id()));
    let e = quickstart(QuickstartArgs {
        out: out.clone(),
        tiny: true,
        device: "tpu".into(),
        threads: 0,
        quiet: true,
    })
    .unwrap_err();
    assert!(e.to_string().contains("tpu"), "{e}");
    assert!(
        !out.exists(),
        "nothing is written before the arguments are checked"
    );
}
