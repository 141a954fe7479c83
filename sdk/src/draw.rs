//! Boxes and labels drawn onto frames, and saving them as PNG/JPEG.
//!
//! Text uses the public-domain 8×8 bitmap font of the `font8x8` crate: no font
//! file to ship or find on the board, no rasteriser in the binary.
//!
//! ```
//! use crosskd_sdk::draw::{draw_detections, DrawOptions};
//! use crosskd_sdk::Detection;
//! let mut img = image::RgbImage::new(64, 48);
//! let det = Detection { bbox: [8.0, 8.0, 40.0, 30.0], score: 0.9, class_id: 0, label: Some("cat".into()) };
//! draw_detections(&mut img, &[det], &DrawOptions::default());
//! assert_ne!(img.get_pixel(8, 20).0, [0, 0, 0]); // left edge of the box
//! ```

use std::path::Path;

use font8x8::legacy::BASIC_LEGACY;
use image::{Rgb, RgbImage};

use crate::detection::Detection;
use crate::error::{Result, SdkError};

/// How detections are drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct DrawOptions {
    /// Box outline width in pixels.
    pub thickness: u32,
    /// Glyph scale: 1 = 8 px text, 2 = 16 px.
    pub text_scale: u32,
    /// Whether to write "label score" above each box.
    pub labels: bool,
}

impl Default for DrawOptions {
    fn default() -> Self {
        Self {
            thickness: 2,
            text_scale: 1,
            labels: true,
        }
    }
}

/// A distinct, saturated colour per class (golden-ratio hue steps).
pub fn class_colour(class_id: usize) -> Rgb<u8> {
    let h = (class_id as f32 * 0.618_034).fract() * 6.0;
    let x = 1.0 - (h % 2.0 - 1.0).abs();
    let (r, g, b) = match h as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    let c = |v: f32| (55.0 + v * 200.0) as u8;
    Rgb([c(r), c(g), c(b)])
}

/// Draws every detection's box, and its label and score above it.
pub fn draw_detections(img: &mut RgbImage, dets: &[Detection], opts: &DrawOptions) {
    for d in dets {
        let colour = class_colour(d.class_id);
        let [x1, y1, x2, y2] = d.bbox.map(|v| v.round() as i64);
        for t in 0..opts.thickness as i64 {
            draw_rect(img, x1 + t, y1 + t, x2 - t, y2 - t, colour);
        }
        if opts.labels {
            let name = d
                .label
                .clone()
                .unwrap_or_else(|| format!("class {}", d.class_id));
            let text = format!("{name} {:.2}", d.score);
            let glyph = 8 * opts.text_scale.max(1) as i64;
            // Above the box when there is room, else just inside its top edge.
            let ty = if y1 - glyph - 2 >= 0 {
                y1 - glyph - 2
            } else {
                y1 + 1
            };
            let tw = glyph * text.chars().count() as i64 + 2;
            fill_rect(img, x1, ty, x1 + tw, ty + glyph + 2, colour);
            draw_text(
                img,
                x1 + 1,
                ty + 1,
                &text,
                opts.text_scale.max(1),
                Rgb([0, 0, 0]),
            );
        }
    }
}

/// Writes ASCII `text` with its top-left corner at `(x, y)`; non-ASCII
/// characters render as `?`, pixels outside the image are clipped.
pub fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, scale: u32, colour: Rgb<u8>) {
    let s = scale.max(1) as i64;
    for (i, ch) in text.chars().enumerate() {
        let code = if ch.is_ascii() {
            ch as usize
        } else {
            b'?' as usize
        };
        let glyph = BASIC_LEGACY[code];
        let gx = x + i as i64 * 8 * s;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                // font8x8 stores the leftmost pixel in bit 0.
                if bits >> col & 1 == 1 {
                    let px = gx + col as i64 * s;
                    let py = y + row as i64 * s;
                    fill_rect(img, px, py, px + s - 1, py + s - 1, colour);
                }
            }
        }
    }
}

fn put(img: &mut RgbImage, x: i64, y: i64, colour: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u64) < img.width() as u64 && (y as u64) < img.height() as u64 {
        img.put_pixel(x as u32, y as u32, colour);
    }
}

/// One-pixel outline of `[x1, x2] × [y1, y2]` (inclusive), clipped.
fn draw_rect(img: &mut RgbImage, x1: i64, y1: i64, x2: i64, y2: i64, colour: Rgb<u8>) {
    if x2 < x1 || y2 < y1 {
        return;
    }
    let (w, h) = (img.width() as i64, img.height() as i64);
    for x in x1.max(0)..=x2.min(w - 1) {
        put(img, x, y1, colour);
        put(img, x, y2, colour);
    }
    for y in y1.max(0)..=y2.min(h - 1) {
        put(img, x1, y, colour);
        put(img, x2, y, colour);
    }
}

/// Filled `[x1, x2] × [y1, y2]` (inclusive), clipped.
fn fill_rect(img: &mut RgbImage, x1: i64, y1: i64, x2: i64, y2: i64, colour: Rgb<u8>) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    for y in y1.max(0)..=y2.min(h - 1) {
        for x in x1.max(0)..=x2.min(w - 1) {
            img.put_pixel(x as u32, y as u32, colour);
        }
    }
}

/// Saves `img` as PNG or JPEG (quality 90), chosen by the file extension.
pub fn save_image(img: &RgbImage, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let err = |message: String| SdkError::ImageFile {
        path: path.to_path_buf(),
        message,
    };
    let file = std::fs::File::create(path).map_err(|e| SdkError::io(path, e))?;
    let mut out = std::io::BufWriter::new(file);
    match ext.as_deref() {
        Some("png") => img
            .write_to(&mut out, image::ImageFormat::Png)
            .map_err(|e| err(e.to_string())),
        Some("jpg" | "jpeg") => {
            let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
            img.write_with_encoder(enc).map_err(|e| err(e.to_string()))
        }
        _ => Err(err(
            "unknown output format: use a .png, .jpg or .jpeg file name".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(bbox: [f32; 4], class_id: usize) -> Detection {
        Detection {
            bbox,
            score: 0.5,
            class_id,
            label: None,
        }
    }

    #[test]
    fn outline_is_drawn_and_interior_untouched() {
        let mut img = RgbImage::new(50, 50);
        let opts = DrawOptions {
            thickness: 1,
            labels: false,
            ..Default::default()
        };
        draw_detections(&mut img, &[det([10.0, 20.0, 30.0, 40.0], 3)], &opts);
        let c = class_colour(3);
        assert_eq!(*img.get_pixel(10, 30), c);
        assert_eq!(*img.get_pixel(30, 30), c);
        assert_eq!(*img.get_pixel(20, 20), c);
        assert_eq!(*img.get_pixel(20, 40), c);
        assert_eq!(*img.get_pixel(20, 30), Rgb([0, 0, 0]));
        assert_eq!(*img.get_pixel(9, 30), Rgb([0, 0, 0]));
    }

    #[test]
    fn boxes_outside_the_image_are_clipped_not_panicking() {
        let mut img = RgbImage::new(8, 8);
        let dets = [
            det([-100.0, -100.0, 200.0, 200.0], 0),
            det([5.0, 5.0, 2.0, 2.0], 1),
            det([f32::NAN, 0.0, 3.0, 3.0], 2),
        ];
        draw_detections(&mut img, &dets, &DrawOptions::default());
    }

    #[test]
    fn text_uses_the_bitmap_font() {
        let mut img = RgbImage::new(16, 8);
        draw_text(&mut img, 0, 0, "I", 1, Rgb([255, 255, 255]));
        // The 8×8 'I' is a vertical bar: its middle column is lit on row 3.
        let lit: Vec<u32> = (0..8)
            .filter(|&x| img.get_pixel(x, 3).0[0] == 255)
            .collect();
        assert!(
            !lit.is_empty() && lit.iter().all(|&x| (2..6).contains(&x)),
            "{lit:?}"
        );
        // Nothing beyond the first glyph cell.
        assert!((8..16).all(|x| (0..8).all(|y| img.get_pixel(x, y).0[0] == 0)));
        assert_ne!(class_colour(0), class_colour(1));
    }

    #[test]
    fn saving_picks_the_codec_by_extension() {
        let dir = std::env::temp_dir().join(format!("crosskd-draw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let img = RgbImage::from_pixel(4, 3, Rgb([200, 10, 10]));
        for name in ["a.png", "b.jpg"] {
            save_image(&img, dir.join(name)).unwrap();
            let back = image::open(dir.join(name)).unwrap();
            assert_eq!((back.width(), back.height()), (4, 3));
        }
        let e = save_image(&img, dir.join("c.gif")).unwrap_err();
        assert!(e.to_string().contains("c.gif"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
