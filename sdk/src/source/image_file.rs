//! A single image file as a one-frame stream.

use std::path::{Path, PathBuf};

use super::{file_name, load_image, Frame, FrameSource};
use crate::error::Result;

/// Yields one frame: the decoded file.
///
/// ```no_run
/// use crosskd_sdk::source::{FrameSource, ImageFileSource};
/// let mut src = ImageFileSource::new("street.jpg");
/// let frame = src.next_frame()?.expect("one frame");
/// assert!(src.next_frame()?.is_none());
/// # Ok::<(), crosskd_sdk::SdkError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ImageFileSource {
    path: PathBuf,
    done: bool,
}

impl ImageFileSource {
    /// A source for `path` (read on the first `next_frame`).
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
            done: false,
        }
    }
}

impl FrameSource for ImageFileSource {
    fn next_frame(&mut self) -> Result<Option<Frame>> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        let image = load_image(&self.path)?;
        Ok(Some(Frame {
            image,
            name: file_name(&self.path),
            path: Some(self.path.clone()),
        }))
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}
