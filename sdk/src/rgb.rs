//! Any decoded image as packed 8-bit RGB, without allocating for the formats
//! cameras and files deliver (RGB8 is borrowed; grey, grey+alpha and RGBA8 are
//! converted into a reused buffer). Alpha is dropped, grey is replicated.
//!
//! ```
//! use crosskd_sdk::rgb::as_rgb8;
//! use image::{DynamicImage, GrayImage};
//! let grey = DynamicImage::ImageLuma8(GrayImage::from_raw(2, 1, vec![10, 20]).unwrap());
//! let mut scratch = Vec::new();
//! assert_eq!(as_rgb8(&grey, &mut scratch), &[10, 10, 10, 20, 20, 20]);
//! ```

use image::DynamicImage;

/// `img`'s pixels as interleaved RGB bytes (exactly `h × w × 3`): borrowed when
/// the image already is RGB8, otherwise written into `scratch` (grown only when a
/// larger frame arrives).
///
/// `image` accepts a buffer longer than the image (a pooled camera buffer, say);
/// only the first `w × h` pixels are the image, so only those are returned.
pub fn as_rgb8<'a>(img: &'a DynamicImage, scratch: &'a mut Vec<u8>) -> &'a [u8] {
    let n = img.width() as usize * img.height() as usize;
    let fill = |scratch: &mut Vec<u8>, src: &[u8], step: usize, grey: bool| {
        scratch.clear();
        scratch.reserve(n * 3);
        for px in src.chunks_exact(step).take(n) {
            if grey {
                scratch.extend_from_slice(&[px[0]; 3]);
            } else {
                scratch.extend_from_slice(&px[..3]);
            }
        }
    };
    match img {
        DynamicImage::ImageRgb8(rgb) => return &rgb.as_raw()[..n * 3],
        DynamicImage::ImageRgba8(px) => fill(scratch, px.as_raw(), 4, false),
        DynamicImage::ImageLuma8(px) => fill(scratch, px.as_raw(), 1, true),
        DynamicImage::ImageLumaA8(px) => fill(scratch, px.as_raw(), 2, true),
        // 16-bit and float images are rare on a board: convert through `image`.
        other => {
            *scratch = other.to_rgb8().into_raw();
            scratch.truncate(n * 3);
        }
    }
    scratch
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, LumaA, Rgb, Rgba};

    #[test]
    fn every_layout_becomes_rgb() {
        let mut s = Vec::new();
        let rgba = ImageBuffer::<Rgba<u8>, _>::from_raw(1, 2, vec![1, 2, 3, 255, 4, 5, 6, 0]);
        let rgba = DynamicImage::ImageRgba8(rgba.unwrap());
        assert_eq!(as_rgb8(&rgba, &mut s), &[1, 2, 3, 4, 5, 6]);
        let la = ImageBuffer::<LumaA<u8>, _>::from_raw(1, 1, vec![7, 0]).unwrap();
        assert_eq!(as_rgb8(&DynamicImage::ImageLumaA8(la), &mut s), &[7, 7, 7]);
        let rgb16 = ImageBuffer::<Rgb<u16>, _>::from_raw(1, 1, vec![65535, 0, 257]).unwrap();
        assert_eq!(
            as_rgb8(&DynamicImage::ImageRgb16(rgb16), &mut s),
            &[255, 0, 1]
        );
        let rgb = DynamicImage::new_rgb8(3, 2);
        assert_eq!(as_rgb8(&rgb, &mut s).len(), 18);
    }

    /// `from_raw` keeps a buffer longer than `w × h` pixels (a pooled frame):
    /// only the image's own pixels come back, for every layout.
    #[test]
    fn oversized_buffers_are_cut_to_the_image() {
        let mut s = Vec::new();
        let rgb = ImageBuffer::<Rgb<u8>, _>::from_raw(1, 1, vec![1, 2, 3, 9, 9, 9]).unwrap();
        assert_eq!(as_rgb8(&DynamicImage::ImageRgb8(rgb), &mut s), &[1, 2, 3]);
        let rgba = ImageBuffer::<Rgba<u8>, _>::from_raw(1, 1, vec![4, 5, 6, 255, 9, 9, 9, 9]);
        let rgba = DynamicImage::ImageRgba8(rgba.unwrap());
        assert_eq!(as_rgb8(&rgba, &mut s), &[4, 5, 6]);
        let grey = image::GrayImage::from_raw(2, 1, vec![7, 8, 9, 9]).unwrap();
        assert_eq!(
            as_rgb8(&DynamicImage::ImageLuma8(grey), &mut s),
            &[7, 7, 7, 8, 8, 8]
        );
    }
}
