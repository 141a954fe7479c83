//! Image-file and folder sources.

mod common;

use common::{image, TempDir};
use crosskd_sdk::source::{open_path, FolderSource, FrameSource, ImageFileSource};
use crosskd_sdk::SdkError;

#[test]
fn folder_is_sorted_skips_non_images_and_survives_a_bad_file() {
    let dir = TempDir::new("folder");
    image(8, 6, 0).save(dir.join("c.png")).unwrap();
    image(8, 6, 1).save(dir.join("A.JPG")).unwrap();
    std::fs::write(dir.join("b.png"), b"not really a png").unwrap();
    std::fs::write(dir.join("readme.md"), b"hi").unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    let mut src = FolderSource::open(&dir.0).unwrap();
    assert_eq!((src.len(), src.skipped()), (3, 1));
    assert_eq!(src.next_frame().unwrap().unwrap().name, "A.JPG");
    let e = src.next_frame().unwrap_err();
    assert!(
        matches!(e, SdkError::ImageFile { .. }) && e.to_string().contains("b.png"),
        "{e}"
    );
    let f = src.next_frame().unwrap().unwrap();
    assert_eq!((f.name.as_str(), f.image.width()), ("c.png", 8));
    assert!(src.next_frame().unwrap().is_none());
}

#[test]
fn empty_or_missing_folders_and_files_are_clear_errors() {
    let dir = TempDir::new("empty");
    std::fs::write(dir.join("x.txt"), b"").unwrap();
    let e = FolderSource::open(&dir.0).unwrap_err();
    assert!(e.to_string().contains("no .png/.jpg/.jpeg images"), "{e}");
    assert!(open_path(dir.join("missing")).is_err());
    let mut one = ImageFileSource::new(dir.join("missing.png"));
    assert!(one
        .next_frame()
        .unwrap_err()
        .to_string()
        .contains("missing.png"));
    image(4, 4, 0).save(dir.join("ok.png")).unwrap();
    let mut one = open_path(dir.join("ok.png")).unwrap();
    assert!(one.next_frame().unwrap().is_some());
    assert!(one.next_frame().unwrap().is_none());
}
