//! Output files: COCO instances JSON and the encoded images.

use std::io::Cursor;
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder};
use serde::{Deserialize, Serialize};

use super::{ImageFormat, SynthError};

/// `info` block of a generated annotation file (no dates: files must be
/// byte-identical across runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CocoInfo {
    pub(crate) description: String,
    pub(crate) version: String,
    pub(crate) split: String,
    pub(crate) seed: u64,
    pub(crate) shift: bool,
}

/// One `images` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CocoImage {
    pub(crate) id: u64,
    pub(crate) file_name: String,
    pub(crate) width: u32,
    pub(crate) height: u32,
}

/// One `annotations` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CocoAnnotation {
    pub(crate) id: u64,
    pub(crate) image_id: u64,
    pub(crate) category_id: u64,
    pub(crate) bbox: [f64; 4],
    pub(crate) area: f64,
    pub(crate) iscrowd: u8,
}

/// One `categories` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CocoCategory {
    pub(crate) id: u64,
    pub(crate) name: String,
}

/// A COCO instances file as written by the generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CocoFile {
    pub(crate) info: CocoInfo,
    pub(crate) images: Vec<CocoImage>,
    pub(crate) annotations: Vec<CocoAnnotation>,
    pub(crate) categories: Vec<CocoCategory>,
}

/// File name of image `index` of a split.
pub(crate) fn image_file_name(index: usize, format: ImageFormat) -> String {
    format!("{index:06}.{}", format.extension())
}

/// Encode interleaved 8-bit RGB as `format` and write it to `path`.
pub(crate) fn write_image(
    path: &Path,
    width: u32,
    height: u32,
    rgb: &[u8],
    format: ImageFormat,
    jpeg_quality: u8,
) -> Result<(), SynthError> {
    let mut bytes = Vec::with_capacity(rgb.len() / 2);
    let encoded = match format {
        ImageFormat::Png => {
            PngEncoder::new_with_quality(&mut bytes, CompressionType::Fast, FilterType::Adaptive)
                .write_image(rgb, width, height, ExtendedColorType::Rgb8)
        }
        ImageFormat::Jpeg => JpegEncoder::new_with_quality(Cursor::new(&mut bytes), jpeg_quality)
            .write_image(rgb, width, height, ExtendedColorType::Rgb8),
    };
    encoded.map_err(|source| SynthError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    write_bytes(path, &bytes)
}

/// Write `bytes` to `path`, naming the path on failure.
pub(crate) fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), SynthError> {
    std::fs::write(path, bytes).map_err(|source| SynthError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Serialise `value` as JSON into `path` (compact, like COCO's own files, with
/// a trailing newline).
pub(crate) fn write_json<T: Serialize>(
    path: &Path,
    value: &T,
    pretty: bool,
) -> Result<(), SynthError> {
    let json = if pretty {
        serde_json::to_vec_pretty(value)
    } else {
        serde_json::to_vec(value)
    };
    let mut json = json.map_err(|source| SynthError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    json.push(b'\n');
    write_bytes(path, &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coco_file_round_trips_and_images_decode() {
        let file = CocoFile {
            info: CocoInfo {
                description: "t".into(),
                version: "0".into(),
                split: "train".into(),
                seed: 1,
                shift: false,
            },
            images: vec![CocoImage {
                id: 1,
                file_name: image_file_name(0, ImageFormat::Png),
                width: 4,
                height: 2,
            }],
            annotations: vec![CocoAnnotation {
                id: 1,
                image_id: 1,
                category_id: 2,
                bbox: [0.25, 0.5, 1.5, 1.25],
                area: 1.875,
                iscrowd: 0,
            }],
            categories: vec![CocoCategory {
                id: 2,
                name: "ring".into(),
            }],
        };
        let json = serde_json::to_string(&file).unwrap();
        assert!(json.contains("\"bbox\":[0.25,0.5,1.5,1.25],\"area\":1.875"));
        let back: CocoFile = serde_json::from_str(&json).unwrap();
        assert_eq!(back, file);
        assert_eq!(file.images[0].file_name, "000000.png");

        let dir = std::env::temp_dir().join(format!("crosskd-synth-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rgb: Vec<u8> = (0..4 * 2 * 3).map(|i| (i * 10) as u8).collect();
        for format in [ImageFormat::Png, ImageFormat::Jpeg] {
            let path = dir.join(image_file_name(7, format));
            write_image(&path, 4, 2, &rgb, format, 90).unwrap();
            let img = image::open(&path).unwrap().to_rgb8();
            assert_eq!(img.dimensions(), (4, 2));
            if format == ImageFormat::Png {
                assert_eq!(img.into_raw(), rgb);
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
