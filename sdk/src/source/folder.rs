//! Every image of a folder, in file-name order (so runs are reproducible and
//! results line up with a sorted ground-truth file).

use std::path::{Path, PathBuf};

use super::{file_name, is_image_path, load_image, Frame, FrameSource};
use crate::error::{Result, SdkError};

/// The images of one folder (not recursive), sorted by file name. Files
/// without an image extension are skipped and counted.
///
/// ```no_run
/// use crosskd_sdk::source::{FolderSource, FrameSource};
/// let src = FolderSource::open("photos/")?;
/// println!("{} images, {} other files skipped", src.len(), src.skipped());
/// # Ok::<(), crosskd_sdk::SdkError>(())
/// ```
#[derive(Clone, Debug)]
pub struct FolderSource {
    dir: PathBuf,
    files: Vec<PathBuf>,
    next: usize,
    skipped: usize,
}

impl FolderSource {
    /// Lists `dir`; an unreadable or image-less folder is an error.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let entries = std::fs::read_dir(&dir).map_err(|e| SdkError::io(&dir, e))?;
        let mut files = Vec::new();
        let mut skipped = 0;
        for entry in entries {
            let path = entry.map_err(|e| SdkError::io(&dir, e))?.path();
            if path.is_dir() {
                continue;
            }
            if is_image_path(&path) {
                files.push(path);
            } else {
                skipped += 1;
            }
        }
        if files.is_empty() {
            return Err(SdkError::Source {
                source_name: dir.display().to_string(),
                message: format!(
                    "no .png/.jpg/.jpeg images in this folder ({skipped} other files)"
                ),
            });
        }
        files.sort();
        Ok(Self {
            dir,
            files,
            next: 0,
            skipped,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are no images (never true for an opened folder).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Files skipped for not having an image extension.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// The image paths, in the order they are yielded.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

impl FrameSource for FolderSource {
    fn next_frame(&mut self) -> Result<Option<Frame>> {
        let Some(path) = self.files.get(self.next).cloned() else {
            return Ok(None);
        };
        self.next += 1;
        let image = load_image(&path)?;
        Ok(Some(Frame {
            image,
            name: file_name(&path),
            path: Some(path),
        }))
    }

    fn describe(&self) -> String {
        format!(
            "{} ({} images, {} other files skipped)",
            self.dir.display(),
            self.files.len(),
            self.skipped
        )
    }
}
