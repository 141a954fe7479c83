//! Where frames come from: a single image file, a folder of images, or (with
//! the `camera` feature) a live camera. All implement [`FrameSource`], so the
//! CLI and applications run the same loop over any of them.
//!
//! ```no_run
//! use crosskd_sdk::source::{open_path, FrameSource};
//! let mut frames = open_path("photos/")?;
//! while let Some(frame) = frames.next_frame().transpose() {
//!     match frame {
//!         Ok(f) => println!("{}: {}×{}", f.name, f.image.width(), f.image.height()),
//!         Err(e) => eprintln!("skipping: {e}"), // one bad file does not end the stream
//!     }
//! }
//! # Ok::<(), crosskd_sdk::SdkError>(())
//! ```

#[cfg(feature = "camera")]
mod camera;
mod folder;
mod image_file;

#[cfg(feature = "camera")]
pub use camera::CameraSource;
pub use folder::FolderSource;
pub use image_file::ImageFileSource;

use std::path::{Path, PathBuf};

use image::DynamicImage;

use crate::error::{Result, SdkError};

/// One frame and where it came from.
#[derive(Clone, Debug)]
pub struct Frame {
    /// The pixels.
    pub image: DynamicImage,
    /// File name (folder/image sources) or `camera<index>-<n>`.
    pub name: String,
    /// The file, for file-based sources.
    pub path: Option<PathBuf>,
}

/// A stream of frames.
///
/// ```no_run
/// use crosskd_sdk::source::{open_path, FrameSource};
/// let mut frames = open_path("frames/")?; // a folder; an image file works too
/// while let Some(frame) = frames.next_frame()? {
///     println!("{}: {}x{}", frame.name, frame.image.width(), frame.image.height());
/// }
/// # Ok::<(), crosskd_sdk::SdkError>(())
/// ```
pub trait FrameSource {
    /// The next frame; `Ok(None)` at the end of the stream. An `Err` concerns
    /// one frame (an unreadable file) or the device (a lost camera after its
    /// reconnect attempts); calling again after a per-file error continues
    /// with the next file.
    fn next_frame(&mut self) -> Result<Option<Frame>>;

    /// Human-readable description (path or device) for logs.
    fn describe(&self) -> String;
}

/// File extensions read as images (the codecs compiled into the SDK).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Whether `path` has an image extension (case-insensitive).
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// A folder source for a directory, an image source for a file.
pub fn open_path(path: impl AsRef<Path>) -> Result<Box<dyn FrameSource>> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|e| SdkError::io(path, e))?;
    if meta.is_dir() {
        Ok(Box::new(FolderSource::open(path)?))
    } else {
        Ok(Box::new(ImageFileSource::new(path)))
    }
}

/// Decodes an image file; errors name the file.
pub fn load_image(path: &Path) -> Result<DynamicImage> {
    let reader = image::ImageReader::open(path).map_err(|e| SdkError::io(path, e))?;
    let reader = reader
        .with_guessed_format()
        .map_err(|e| SdkError::io(path, e))?;
    reader.decode().map_err(|e| SdkError::ImageFile {
        path: path.to_path_buf(),
        message: format!("cannot decode image: {e}"),
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}
