//! [`Detector`]: an exported crosskd model ready to run on frames.
//!
//! A frame goes letterbox → tract → [`ModelMeta::postprocess`] (the same decoder
//! the trainer's `predict` and `eval` call), so the board's detections agree
//! with the trainer's by construction.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use image::DynamicImage;
use tract_onnx::prelude::{TValue, Tensor};

use crate::config::{DeviceConfig, Precision};
use crate::decode::LevelOutput;
use crate::detection::Detection;
use crate::error::{chain, Result, SdkError};
use crate::letterbox::{Fit, Letterbox};
use crate::metadata::ModelMeta;
use crate::model::{OnnxModel, Profile};
use crate::postprocess::{postprocess, TestConfig};
use crate::preprocess::Normalization;
use crate::rgb::as_rgb8;

/// Largest accepted image side, in pixels: beyond it the RGB copy alone would
/// take gigabytes on a board; downscale first.
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// Largest accepted image area, in pixels (100 MP, a 12000×8000 photo): the RGB
/// copy stays under 300 MB, which a 1–4 GB board can still hold.
pub const MAX_IMAGE_PIXELS: u64 = 100_000_000;

/// Wall time of one frame's stages.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTimes {
    /// Colour conversion + letterbox + normalisation.
    pub pre: Duration,
    /// tract plan.
    pub infer: Duration,
    /// Decoding, NMS, mapping back to the frame.
    pub post: Duration,
}

impl StageTimes {
    /// `pre + infer + post`.
    pub fn total(&self) -> Duration {
        self.pre + self.infer + self.post
    }
}

/// An exported model, loaded and optimised for one board's settings.
///
/// Buffers (the RGB scratch, the network input, tract's state) are reused from
/// frame to frame, so `detect` takes `&mut self`: use one `Detector` per thread.
///
/// ```no_run
/// use crosskd_sdk::{DeviceConfig, Detector};
/// let cfg = DeviceConfig::from_file("firmware-configs/x86-64-dev.toml")?;
/// let mut det = Detector::from_file("model.onnx", &cfg)?;
/// let img = image::open("street.jpg").expect("readable image");
/// for d in det.detect(&img)? {
///     println!("{} {:.2} {:?}", d.label.as_deref().unwrap_or("?"), d.score, d.bbox);
/// }
/// # Ok::<(), crosskd_sdk::SdkError>(())
/// ```
#[derive(Debug)]
pub struct Detector {
    model: OnnxModel,
    test_cfg: TestConfig,
    letterbox: Letterbox,
    /// The network input; handed to tract by reference count and written in
    /// place again once tract has released it.
    input: Arc<Tensor>,
    rgb: Vec<u8>,
    /// The model before the last [`swap_model`](Self::swap_model), for [`rollback`](Self::rollback).
    previous: Option<Box<Detector>>,
}

impl Detector {
    /// Loads `path` for the board described by `cfg` (threads, input size,
    /// precision check, `[detect]` threshold overrides).
    pub fn from_file(path: impl AsRef<Path>, cfg: &DeviceConfig) -> Result<Self> {
        let model = OnnxModel::load(path, cfg)?;
        let meta = model.meta();
        let (w, h) = (meta.input_size.0 as usize, meta.input_size.1 as usize);
        let norm = Normalization {
            mean: meta.mean,
            std: meta.std,
            to_rgb: meta.to_rgb,
        };
        let input =
            Tensor::zero::<f32>(&[1, 3, h, w]).map_err(|e| SdkError::Inference(chain(&e)))?;
        Ok(Self {
            test_cfg: cfg.test_cfg(meta.test_cfg),
            letterbox: letterbox_for(meta, norm),
            input: Arc::new(input),
            rgb: Vec::new(),
            previous: None,
            model,
        })
    }

    /// The model's metadata (classes, decode spec, normalisation); its
    /// `input_size` is the size the plan runs at.
    pub fn meta(&self) -> &ModelMeta {
        self.model.meta()
    }

    /// The effective test settings (model defaults with the config's overrides).
    pub fn test_cfg(&self) -> &TestConfig {
        &self.test_cfg
    }

    /// Changes the thresholds at run time (e.g. a UI slider).
    pub fn set_test_cfg(&mut self, cfg: TestConfig) {
        self.test_cfg = cfg;
    }

    /// The model's declared precision (`crosskd.precision`), if any.
    pub fn precision(&self) -> Option<Precision> {
        self.model.precision()
    }

    /// Detections on one image, in its pixel coordinates, best first.
    pub fn detect(&mut self, img: &DynamicImage) -> Result<Vec<Detection>> {
        self.detect_timed(img).map(|(d, _)| d)
    }

    /// [`detect`](Self::detect) on each image in turn.
    ///
    /// ```no_run
    /// use crosskd_sdk::{Detector, DeviceConfig};
    /// let cfg = DeviceConfig::from_file("firmware-configs/x86-64-dev.toml")?;
    /// let mut det = Detector::from_file("student.onnx", &cfg)?;
    /// let imgs = vec![image::open("a.jpg").unwrap(), image::open("b.jpg").unwrap()];
    /// for (img, dets) in imgs.iter().zip(det.detect_batch(&imgs)?) {
    ///     println!("{}x{}: {} objects", img.width(), img.height(), dets.len());
    /// }
    /// # Ok::<(), crosskd_sdk::SdkError>(())
    /// ```
    pub fn detect_batch(&mut self, imgs: &[DynamicImage]) -> Result<Vec<Vec<Detection>>> {
        // The exported graph has batch 1 (fixed shapes optimise best in tract):
        // a batch is a loop that reuses every buffer.
        imgs.iter().map(|img| self.detect(img)).collect()
    }

    /// [`detect`](Self::detect) with the wall time of each stage.
    ///
    /// ```no_run
    /// use crosskd_sdk::{Detector, DeviceConfig};
    /// let mut det = Detector::from_file("student.onnx", &DeviceConfig::default())?;
    /// let (dets, t) = det.detect_timed(&image::open("frame.jpg").unwrap())?;
    /// println!("{} objects; pre {:?}, infer {:?}, post {:?}", dets.len(), t.pre, t.infer, t.post);
    /// # Ok::<(), crosskd_sdk::SdkError>(())
    /// ```
    pub fn detect_timed(&mut self, img: &DynamicImage) -> Result<(Vec<Detection>, StageTimes)> {
        let (w, h) = (img.width(), img.height());
        check_size(w, h)?;
        let t0 = Instant::now();
        let mut rgb = std::mem::take(&mut self.rgb);
        let fit = {
            let pixels = as_rgb8(img, &mut rgb);
            self.preprocess(pixels, h as usize, w as usize)?
        };
        self.rgb = rgb;
        let t1 = Instant::now();
        let outputs = self.model.run(TValue::from_const(self.input.clone()))?;
        let t2 = Instant::now();
        let dets = self.postprocess(&outputs, fit, (h as usize, w as usize))?;
        let t3 = Instant::now();
        Ok((
            dets,
            StageTimes {
                pre: t1 - t0,
                infer: t2 - t1,
                post: t3 - t2,
            },
        ))
    }

    /// Detections on a packed RGB frame (`h × w × 3` bytes), e.g. straight from
    /// a camera buffer.
    ///
    /// ```no_run
    /// use crosskd_sdk::{Detector, DeviceConfig};
    /// let mut det = Detector::from_file("student.onnx", &DeviceConfig::default())?;
    /// let (w, h) = (640, 480);
    /// let frame = vec![0u8; w * h * 3]; // e.g. a decoded camera buffer
    /// let dets = det.detect_rgb(&frame, h, w)?;
    /// // A buffer of the wrong size is an error, not a panic.
    /// assert!(det.detect_rgb(&frame[..10], h, w).is_err());
    /// # Ok::<(), crosskd_sdk::SdkError>(())
    /// ```
    pub fn detect_rgb(&mut self, rgb: &[u8], h: usize, w: usize) -> Result<Vec<Detection>> {
        check_size(
            w.min(u32::MAX as usize) as u32,
            h.min(u32::MAX as usize) as u32,
        )?;
        if rgb.len() != h * w * 3 {
            return Err(SdkError::Image(format!(
                "an RGB frame of {w}×{h} needs {} bytes, got {}",
                h * w * 3,
                rgb.len()
            )));
        }
        let fit = self.preprocess(rgb, h, w)?;
        let outputs = self.model.run(TValue::from_const(self.input.clone()))?;
        self.postprocess(&outputs, fit, (h, w))
    }

    /// Letterboxes into the input tensor, in place when tract has released it.
    fn preprocess(&mut self, rgb: &[u8], h: usize, w: usize) -> Result<Fit> {
        if Arc::get_mut(&mut self.input).is_none() {
            // Still shared (an op kept a reference): fall back to a fresh tensor.
            let shape = self.input.shape().to_vec();
            let fresh = Tensor::zero::<f32>(&shape).map_err(|e| SdkError::Inference(chain(&e)))?;
            self.input = Arc::new(fresh);
        }
        let tensor = Arc::get_mut(&mut self.input).expect("unique after the check above");
        let mut view = tensor
            .try_as_plain_ram_mut()
            .map_err(|e| SdkError::Inference(chain(&e)))?;
        let buf = view
            .as_slice_mut::<f32>()
            .map_err(|e| SdkError::Inference(chain(&e)))?;
        Ok(self.letterbox.run(rgb, h, w, buf))
    }

    /// Decoded detections in the `ori = (h, w)` frame's pixels. The shared decoder
    /// clips at the resized size, so `1 / scale` can overshoot the frame by a
    /// rounding error (`360.0001` on a 360-pixel side): clamp to the frame too.
    fn postprocess(
        &self,
        outputs: &[TValue],
        fit: Fit,
        ori: (usize, usize),
    ) -> Result<Vec<Detection>> {
        let per_level = self.model.outputs_per_level();
        let mut levels = Vec::with_capacity(outputs.len() / per_level);
        for chunk in outputs.chunks(per_level) {
            let shape = chunk[0].shape();
            levels.push(LevelOutput {
                cls_score: slice(&chunk[0])?,
                bbox_pred: slice(&chunk[1])?,
                centerness: chunk.get(2).map(slice).transpose()?,
                height: shape[2],
                width: shape[3],
            });
        }
        let meta = self.model.meta();
        let (h, w) = fit.img_shape;
        let dets = postprocess(
            &meta.decode,
            &self.test_cfg,
            &levels,
            (h as f32, w as f32),
            fit.scale_factor,
        )?;
        let (ori_h, ori_w) = (ori.0 as f32, ori.1 as f32);
        Ok(dets
            .into_iter()
            .map(|mut d| {
                let [x1, y1, x2, y2] = d.bbox;
                d.bbox = [
                    x1.clamp(0.0, ori_w),
                    y1.clamp(0.0, ori_h),
                    x2.clamp(0.0, ori_w),
                    y2.clamp(0.0, ori_h),
                ];
                d.with_label(&meta.class_names)
            })
            .collect())
    }

    /// Per-node inference times on `img` over `runs` runs: where the `infer`
    /// stage of [`StageTimes`] goes. See [`OnnxModel::profile`].
    pub fn profile(&mut self, img: &DynamicImage, runs: usize) -> Result<Profile> {
        self.network_input(img)?;
        self.model
            .profile(TValue::from_const(self.input.clone()), runs)
    }

    /// Converts an image the way [`detect`](Self::detect) does and returns the
    /// exact network input (CHW) and where the image landed; for debugging
    /// and parity checks.
    pub fn network_input(&mut self, img: &DynamicImage) -> Result<(Vec<f32>, Fit)> {
        check_size(img.width(), img.height())?;
        let (w, h) = (img.width() as usize, img.height() as usize);
        let mut rgb = std::mem::take(&mut self.rgb);
        let fit = self.preprocess(as_rgb8(img, &mut rgb), h, w);
        self.rgb = rgb;
        let fit = fit?;
        let data = self
            .input
            .try_as_plain_ram()
            .and_then(|v| v.as_slice::<f32>().map(<[f32]>::to_vec))
            .map_err(|e| SdkError::Inference(chain(&e)))?;
        Ok((data, fit))
    }
}

/// An output tensor's data.
fn slice(t: &TValue) -> Result<&[f32]> {
    t.try_as_plain_ram()
        .and_then(|v| v.as_slice::<f32>())
        .map_err(|e| SdkError::Inference(chain(&e)))
}

/// Rejects empty and oversized images before any work.
fn check_size(w: u32, h: u32) -> Result<()> {
    if w == 0 || h == 0 {
        return Err(SdkError::Image(format!(
            "the image is {w}×{h} pixels; nothing to detect in an empty image"
        )));
    }
    if w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE {
        return Err(SdkError::Image(format!(
            "the image is {w}×{h} pixels; the largest accepted side is \
             {MAX_IMAGE_SIDE}: downscale it first"
        )));
    }
    if u64::from(w) * u64::from(h) > MAX_IMAGE_PIXELS {
        return Err(SdkError::Image(format!(
            "the image is {w}×{h} pixels; the largest accepted area is \
             {MAX_IMAGE_PIXELS} pixels: downscale it first"
        )));
    }
    Ok(())
}

/// The letterbox of `meta`'s input: resized to the trainer's test scale when the
/// model runs at its exported size (then boxes agree with `crosskd predict`),
/// fitted to the input otherwise.
pub(crate) fn letterbox_for(meta: &ModelMeta, norm: Normalization) -> Letterbox {
    let input = (meta.input_size.0 as usize, meta.input_size.1 as usize);
    let lb = Letterbox::new(input, norm);
    match meta.test_scale {
        Some((long, short)) => lb.with_scale((long as usize, short as usize)),
        None => lb,
    }
}

/// Hot swap: a running app moves to a new model (e.g. fine-tuned on the board)
/// without a restart, and can go back.
impl Detector {
    /// Loads `path` for `cfg` and switches to it, keeping the current model for
    /// [`rollback`](Self::rollback). The new model is fully loaded and checked
    /// first: on any error the running model stays in place. It must detect the
    /// same classes (same names, same order), so app code keyed on class ids
    /// keeps working.
    ///
    /// ```no_run
    /// use crosskd_sdk::{Detector, DeviceConfig};
    /// let cfg = DeviceConfig::from_file("firmware-configs/jetson-orin-nano.toml")?;
    /// let mut det = Detector::from_file("student.int8.onnx", &cfg)?;
    /// det.swap_model("student.tuned.int8.onnx", &cfg)?;
    /// det.rollback()?; // back to student.int8.onnx
    /// # Ok::<(), crosskd_sdk::SdkError>(())
    /// ```
    pub fn swap_model(&mut self, path: impl AsRef<Path>, cfg: &DeviceConfig) -> Result<()> {
        let path = path.as_ref();
        let next = Detector::from_file(path, cfg)?;
        let (old, new) = (&self.meta().class_names, &next.meta().class_names);
        if old != new {
            return Err(SdkError::Contract {
                path: path.to_path_buf(),
                message: format!(
                    "its classes {new:?} differ from the running model's {old:?}; \
                     load it with Detector::from_file instead"
                ),
            });
        }
        let mut old = std::mem::replace(self, next);
        old.previous = None;
        self.previous = Some(Box::new(old));
        Ok(())
    }

    /// Goes back to the model in use before the last [`swap_model`](Self::swap_model).
    pub fn rollback(&mut self) -> Result<()> {
        let prev = self.previous.take().ok_or_else(|| SdkError::Contract {
            path: "rollback".into(),
            message: "no earlier model to roll back to".into(),
        })?;
        *self = *prev;
        Ok(())
    }

    /// Whether [`rollback`](Self::rollback) has a model to go back to.
    pub fn can_roll_back(&self) -> bool {
        self.previous.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::SyntheticDetector;
    use crate::HeadKind;

    #[test]
    fn the_input_tensor_is_written_in_place_frame_after_frame() {
        let path = std::env::temp_dir().join(format!("crosskd-reuse-{}.onnx", std::process::id()));
        SyntheticDetector::new(HeadKind::Gfl, 2, (64, 64), &[32])
            .write(&path)
            .unwrap();
        let mut det = Detector::from_file(&path, &DeviceConfig::default()).unwrap();
        std::fs::remove_file(&path).unwrap();
        let img = DynamicImage::new_rgb8(50, 40);
        det.detect(&img).unwrap();
        let before = Arc::as_ptr(&det.input);
        for _ in 0..3 {
            det.detect(&img).unwrap();
            // tract released the input after the run: no fresh tensor was needed.
            assert_eq!(Arc::strong_count(&det.input), 1);
            assert_eq!(Arc::as_ptr(&det.input), before);
        }
    }
}
