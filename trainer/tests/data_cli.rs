//! How the data-facing verbs treat their inputs, end to end: `crosskd predict`
//! maps labels once, with the checkpoint's category ids, and skips unreadable
//! images; `crosskd eval-onnx` skips them too; `load_data` (training) refuses a
//! validation set whose categories are not training's.

mod export_util;

use std::path::{Path, PathBuf};

use crosskd_sdk::{HeadKind, TestConfig};
use crosskd_trainer::cli::eval_onnx::evaluate_onnx;
use crosskd_trainer::cli::export::{self, ExportArgs};
use crosskd_trainer::cli::predict::{predict, PredictArgs};
use crosskd_trainer::config::TrainConfig;
use crosskd_trainer::data::coco::{load_dets, CocoDetection};
use crosskd_trainer::data::pipeline::PipelineConfig;
use crosskd_trainer::train::runner::load_data;
use export_util::{test_image, tiny, write_checkpoint};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("crosskd-data-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A full training config for the tiny ATSS student of `export_util`, on
/// `dir/train.json` + `dir/val.json` (images in `dir/images`), tested at
/// 96×64 with `score_thr = 0` so that a random network detects every class.
fn write_config(dir: &Path) -> PathBuf {
    let base = format!(
        r#"
[model.backbone]
depth = 18
[model.neck]
out_channels = 16
[model.head]
type = "atss"
num_classes = 3
in_channels = 16
feat_channels = 16
gn_groups = 4
[data]
train_ann = "{d}/train.json"
train_images = "{d}/images"
val_ann = "{d}/val.json"
val_images = "{d}/images"
[data.train_pipeline]
scales = [[96, 64]]
[data.val_pipeline]
scales = [[96, 64]]
[schedule]
iters = 1
base_lr = 0.01
"#,
        d = dir.display()
    );
    let mut cfg = TrainConfig::from_toml(&base, Path::new("base.toml")).unwrap();
    cfg.model = tiny(HeadKind::Atss);
    cfg.data.val_pipeline = PipelineConfig::test((96, 64));
    cfg.test_cfg = Some(TestConfig {
        score_thr: 0.0,
        ..TestConfig::for_kind(HeadKind::Atss)
    });
    let path = dir.join("cfg.toml");
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    path
}

/// A checkpoint of the randomised tiny ATSS with 3 classes, category ids 1, 2, 3.
fn tiny_atss_checkpoint(dir: &Path) -> PathBuf {
    let path = dir.join("s.ckpt");
    write_checkpoint(&path, &tiny(HeadKind::Atss));
    path
}

/// `0.png`, `1.png`, ... (80×50, a coloured rectangle each) in `dir`.
fn write_images(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let img = test_image(i);
        img.save(dir.join(format!("{i}.png"))).unwrap();
    }
}

/// A COCO file naming `files` (ids 1.., 80×50), one box each with category
/// `category_ids[i % len]`, declaring `categories` (`(id, name)`).
fn write_gt(path: &Path, files: &[&str], categories: &[(u64, &str)]) {
    let images: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(i, f)| serde_json::json!({"id": i + 1, "file_name": f, "width": 80, "height": 50}))
        .collect();
    let anns: Vec<_> = (0..files.len())
        .map(|i| {
            serde_json::json!({
                "id": i + 1, "image_id": i + 1,
                "category_id": categories[i % categories.len()].0,
                "bbox": [12, 9, 30, 30], "area": 900.0, "iscrowd": 0
            })
        })
        .collect();
    let cats: Vec<_> = categories
        .iter()
        .map(|(id, name)| serde_json::json!({"id": id, "name": name}))
        .collect();
    let gt = serde_json::json!({"images": images, "annotations": anns, "categories": cats});
    std::fs::write(path, gt.to_string()).unwrap();
}

fn args(
    ckpt: &Path,
    config: &Path,
    images: &Path,
    image_dir: Option<&Path>,
    out: &Path,
) -> PredictArgs {
    PredictArgs {
        checkpoint: ckpt.to_path_buf(),
        config: Some(config.to_path_buf()),
        images: images.to_path_buf(),
        image_dir: image_dir.map(Path::to_path_buf),
        out: out.to_path_buf(),
        device: "flex".into(),
        batch: 2,
    }
}

/// A PNG whose header (and so its size) reads, but whose pixels do not: a
/// real file cut a few bytes into its first IDAT chunk.
fn truncated_png(from: &Path, to: &Path) {
    let bytes = std::fs::read(from).unwrap();
    let idat = bytes.windows(4).position(|w| w == b"IDAT").unwrap();
    std::fs::write(to, &bytes[..idat + 4 + 8]).unwrap();
}

#[test]
fn predict_maps_labels_once_with_the_checkpoints_ids() {
    let dir = tmpdir("ids");
    let images = dir.join("images");
    write_images(&images, 3);
    let (ckpt, config) = (tiny_atss_checkpoint(&dir), write_config(&dir));

    // A folder: categories are the checkpoint's.
    let folder_out = dir.join("folder.json");
    let s = predict(&args(&ckpt, &config, &images, None, &folder_out)).unwrap();
    assert_eq!((s.images, s.unreadable.len()), (3, 0));
    let from_folder: Vec<CocoDetection> = load_dets(&folder_out).unwrap();
    let mut ids: Vec<u64> = from_folder.iter().map(|d| d.category_id).collect();
    ids.sort_unstable();
    ids.dedup();
    // With score_thr 0 the random network outputs every class; label 2 is the
    // one the old double mapping lost.
    assert_eq!(ids, [1, 2, 3], "the test needs detections of every class");

    // The same images through a GT.json declaring only categories 1 and 2
    // (same file → id assignment as the folder: 0.png → 1, ...). Label 2 must
    // still become category 3, the checkpoint's id: the detections are
    // exactly the folder's. (Before, labels were mapped with the GT's ids and
    // every label-2 detection was dropped.)
    let gt = dir.join("gt.json");
    write_gt(&gt, &["0.png", "1.png", "2.png"], &[(1, "a"), (2, "b")]);
    let gt_out = dir.join("gt_dets.json");
    let s = predict(&args(&ckpt, &config, &gt, Some(&images), &gt_out)).unwrap();
    assert_eq!(s.images, 3);
    assert!(load_dets(&gt_out).unwrap() == from_folder);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn predict_skips_unreadable_images_and_fails_when_none_can_be_read() {
    let dir = tmpdir("unreadable");
    let images = dir.join("images");
    write_images(&images, 2);
    // Not an image at all: its header cannot be read.
    std::fs::write(images.join("bad.png"), b"definitely not a png").unwrap();
    // Its size reads, its pixels do not: fails later, in the loader.
    truncated_png(&images.join("0.png"), &images.join("cut.png"));
    let (ckpt, config) = (tiny_atss_checkpoint(&dir), write_config(&dir));
    let out = dir.join("dets.json");
    let s = predict(&args(&ckpt, &config, &images, None, &out)).unwrap();
    assert_eq!(s.images, 2);
    assert_eq!(s.unreadable.len(), 2, "{:?}", s.unreadable);
    assert!(s.unreadable[0].contains("bad.png"), "{:?}", s.unreadable);
    assert!(s.unreadable[1].contains("cut.png"), "{:?}", s.unreadable);
    assert!(out.is_file());

    // Only unreadable files: a clear error, not an empty result.
    let junk = dir.join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("x.jpg"), b"nope").unwrap();
    let err = predict(&args(&ckpt, &config, &junk, None, &out)).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("none of the 1 images could be read") && msg.contains("x.jpg"),
        "{msg}"
    );
    // Same through an annotation file whose only image decodes badly.
    let gt = dir.join("gt.json");
    write_gt(&gt, &["cut.png"], &[(1, "a"), (2, "b"), (3, "c")]);
    let err = predict(&args(&ckpt, &config, &gt, Some(&images), &out)).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("no image could be read") && msg.contains("cut.png"),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn eval_onnx_skips_unreadable_images_and_fails_when_none_can_be_read() {
    let dir = tmpdir("onnx");
    let images = dir.join("images");
    write_images(&images, 2);
    std::fs::write(images.join("bad.png"), b"definitely not a png").unwrap();
    let (ckpt, config) = (tiny_atss_checkpoint(&dir), write_config(&dir));
    let model = dir.join("s.onnx");
    export::run(ExportArgs {
        checkpoint: ckpt,
        config: Some(config),
        out: model.clone(),
        input_size: None,
        opset: 13,
        no_check: true,
    })
    .unwrap();
    let cats = [(1, "a"), (2, "b"), (3, "c")];
    let gt = dir.join("gt.json");
    write_gt(&gt, &["0.png", "bad.png", "1.png"], &cats);
    let e = evaluate_onnx(&model, &gt, &images, 1, false).unwrap();
    assert_eq!(e.images, 2);
    assert_eq!(e.unreadable.len(), 1);
    assert!(e.unreadable[0].contains("bad.png"), "{:?}", e.unreadable);
    // Nothing is reported on the image that was not run (id 2).
    assert!(e.detections.iter().all(|d| d.image_id != 2));

    let only_bad = dir.join("bad.json");
    write_gt(&only_bad, &["bad.png"], &cats);
    let err = evaluate_onnx(&model, &only_bad, &images, 1, false).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("none of the 1 images") && msg.contains("bad.png"),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn load_data_requires_validation_to_declare_trainings_categories() {
    let dir = tmpdir("categories");
    write_images(&dir.join("images"), 3);
    let config = write_config(&dir);
    let cfg = TrainConfig::from_file(&config).unwrap();
    let files = ["0.png", "1.png", "2.png"];
    let train = [(1, "a"), (2, "b"), (3, "c")];
    write_gt(&dir.join("train.json"), &files, &train);

    // Same categories: fine.
    write_gt(&dir.join("val.json"), &files, &train);
    load_data(&cfg).unwrap();

    // Same count (so the model check passes) but other ids: evaluation would
    // have scored label 2 as category 4. The error names both files.
    write_gt(
        &dir.join("val.json"),
        &files,
        &[(1, "a"), (2, "b"), (4, "c")],
    );
    let msg = load_data(&cfg).err().unwrap().to_string();
    let (t, v) = (dir.join("train.json"), dir.join("val.json"));
    assert!(
        msg.starts_with(&format!(
            "{}: categories differ from {}'s",
            v.display(),
            t.display()
        )),
        "{msg}"
    );
    assert!(msg.contains(r#"label 2: id 3 "c" vs id 4 "c""#), "{msg}");

    // Same ids, other names.
    write_gt(
        &dir.join("val.json"),
        &files,
        &[(1, "a"), (2, "b"), (3, "x")],
    );
    let msg = load_data(&cfg).err().unwrap().to_string();
    assert!(msg.contains(r#"id 3 "c" vs id 3 "x""#), "{msg}");
    std::fs::remove_dir_all(&dir).ok();
}
