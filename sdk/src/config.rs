//! Per-board runtime settings (`firmware-configs/*.toml`): threads, input size,
//! precision, thresholds, detection limit and camera.
//!
//! Unknown keys and out-of-range values are errors naming the file and the key,
//! so a typo on a board never silently falls back to a default.
//!
//! ```
//! use crosskd_sdk::config::{DeviceConfig, Precision};
//! let cfg = DeviceConfig::from_toml_str(
//!     "board = \"demo\"\n[runtime]\nthreads = 2\nprecision = \"fp32\"\n[detect]\nscore_thr = 0.3\n",
//!     "demo.toml",
//! )
//! .unwrap();
//! assert_eq!(cfg.runtime.threads, 2);
//! assert_eq!(cfg.runtime.precision, Precision::Fp32);
//! let err = DeviceConfig::from_toml_str("[runtime]\nthreads = 0\n", "demo.toml").unwrap_err();
//! assert!(err.to_string().contains("demo.toml") && err.to_string().contains("runtime.threads"));
//! ```

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, SdkError};
use crate::finetune::FinetuneConfig;
use crate::postprocess::TestConfig;

/// Everything a board needs to run a model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Human-readable target name (shown by the CLI).
    #[serde(default)]
    pub board: String,
    /// Inference engine settings.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// Overrides of the model's test-time thresholds.
    #[serde(default)]
    pub detect: DetectConfig,
    /// Live capture settings (used by the `camera` feature).
    #[serde(default)]
    pub camera: CameraConfig,
    /// On-device fine-tuning budget and settings (used by the `finetune` feature).
    #[serde(default)]
    pub finetune: FinetuneConfig,
}

/// Which model precision a board expects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Accept whatever the model declares.
    #[default]
    Any,
    /// A float model (`crosskd.precision = fp32`).
    Fp32,
    /// A quantized model (`crosskd.precision = int8`).
    Int8,
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::Any => "any",
            Precision::Fp32 => "fp32",
            Precision::Int8 => "int8",
        })
    }
}

/// `[runtime]`: how tract runs the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Threads of the detector's private matmul pool (1..=256). 1 runs on the
    /// calling thread only.
    #[serde(default = "one")]
    pub threads: usize,
    /// The precision the loaded model must have (`"any"` accepts both).
    #[serde(default)]
    pub precision: Precision,
    /// Network input `[w, h]`. Absent: the exported size from the model's
    /// metadata. Present and different: the graph is re-typed to this size,
    /// which works for fully convolutional exports (multiples of 32).
    #[serde(default)]
    pub input_size: Option<[u32; 2]>,
}

fn one() -> usize {
    1
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            threads: 1,
            precision: Precision::Any,
            input_size: None,
        }
    }
}

/// `[detect]`: test-time settings; absent keys keep the model's own `test_cfg`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectConfig {
    /// Minimum class probability, in `[0, 1)`.
    #[serde(default)]
    pub score_thr: Option<f32>,
    /// NMS IoU threshold, in `(0, 1]`.
    #[serde(default)]
    pub iou_thr: Option<f32>,
    /// Candidates kept per level before NMS (1..=100000).
    #[serde(default)]
    pub nms_pre: Option<usize>,
    /// Detections kept per image (1..=10000).
    #[serde(default)]
    pub max_detections: Option<usize>,
}

/// Pixel format requested from the camera.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    /// Motion JPEG: the format most USB cameras deliver at full frame rate.
    #[default]
    Mjpeg,
    /// Packed YUV 4:2:2.
    Yuyv,
    /// Semi-planar YUV 4:2:0 (CSI cameras through V4L2).
    Nv12,
    /// 8-bit grey.
    Gray,
    /// Packed RGB.
    Rgb,
}

/// `[camera]`: which device and mode to open, and how to survive a lost camera.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Device index (`/dev/video<index>` on Linux).
    #[serde(default)]
    pub index: u32,
    /// Requested frame width in pixels (16..=8192); the closest mode is used.
    #[serde(default = "default_width")]
    pub width: u32,
    /// Requested frame height in pixels (16..=8192).
    #[serde(default = "default_height")]
    pub height: u32,
    /// Requested frame rate (1..=240).
    #[serde(default = "default_fps")]
    pub fps: u32,
    /// Requested pixel format.
    #[serde(default)]
    pub pixel_format: PixelFormat,
    /// A frame not delivered within this many milliseconds counts as a failure (100..=60000).
    #[serde(default = "default_timeout")]
    pub frame_timeout_ms: u64,
    /// Re-open attempts after a failure before giving up (0..=100).
    #[serde(default = "default_reconnects")]
    pub reconnect_attempts: u32,
    /// Pause between re-open attempts, in milliseconds (0..=60000).
    #[serde(default = "default_reconnect_delay")]
    pub reconnect_delay_ms: u64,
}

fn default_width() -> u32 {
    640
}
fn default_height() -> u32 {
    480
}
fn default_fps() -> u32 {
    30
}
fn default_timeout() -> u64 {
    2000
}
fn default_reconnects() -> u32 {
    3
}
fn default_reconnect_delay() -> u64 {
    500
}

impl Default for CameraConfig {
    fn default() -> Self {
        Self {
            index: 0,
            width: default_width(),
            height: default_height(),
            fps: default_fps(),
            pixel_format: PixelFormat::Mjpeg,
            frame_timeout_ms: default_timeout(),
            reconnect_attempts: default_reconnects(),
            reconnect_delay_ms: default_reconnect_delay(),
        }
    }
}

impl DeviceConfig {
    /// Reads and [`validate`](Self::validate)s a TOML file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| SdkError::io(path, e))?;
        Self::from_toml_str(&text, path)
    }

    /// Parses and validates TOML text; `origin` names the file in errors.
    pub fn from_toml_str(text: &str, origin: impl AsRef<Path>) -> Result<Self> {
        let origin = origin.as_ref();
        // toml's message already names the unknown/mistyped key and its line.
        let cfg: DeviceConfig =
            toml::from_str(text).map_err(|e| SdkError::config(origin, e.to_string()))?;
        cfg.validate()
            .map_err(|message| SdkError::config(origin, message))?;
        Ok(cfg)
    }

    /// Checks every value's range; the error names the key (`section.key`).
    pub fn validate(&self) -> std::result::Result<(), String> {
        let r = &self.runtime;
        range("runtime.threads", r.threads as f64, 1.0, 256.0)?;
        if let Some([w, h]) = r.input_size {
            for (key, v) in [
                ("runtime.input_size[0] (w)", w),
                ("runtime.input_size[1] (h)", h),
            ] {
                range(key, v as f64, 32.0, 4096.0)?;
                if v % 32 != 0 {
                    return Err(format!(
                        "{key} = {v} must be a multiple of 32 (the coarsest FPN stride)"
                    ));
                }
            }
        }
        let d = &self.detect;
        if let Some(v) = d.score_thr {
            if !(0.0..1.0).contains(&v) {
                return Err(format!("detect.score_thr = {v} is out of range [0, 1)"));
            }
        }
        if let Some(v) = d.iou_thr {
            if !(v > 0.0 && v <= 1.0) {
                return Err(format!("detect.iou_thr = {v} is out of range (0, 1]"));
            }
        }
        if let Some(v) = d.nms_pre {
            range("detect.nms_pre", v as f64, 1.0, 100_000.0)?;
        }
        if let Some(v) = d.max_detections {
            range("detect.max_detections", v as f64, 1.0, 10_000.0)?;
        }
        let c = &self.camera;
        range("camera.index", c.index as f64, 0.0, 63.0)?;
        range("camera.width", c.width as f64, 16.0, 8192.0)?;
        range("camera.height", c.height as f64, 16.0, 8192.0)?;
        range("camera.fps", c.fps as f64, 1.0, 240.0)?;
        range(
            "camera.frame_timeout_ms",
            c.frame_timeout_ms as f64,
            100.0,
            60_000.0,
        )?;
        range(
            "camera.reconnect_attempts",
            c.reconnect_attempts as f64,
            0.0,
            100.0,
        )?;
        range(
            "camera.reconnect_delay_ms",
            c.reconnect_delay_ms as f64,
            0.0,
            60_000.0,
        )?;
        self.finetune.validate()
    }

    /// The model's `test_cfg` with this config's `[detect]` overrides applied.
    pub fn test_cfg(&self, model: TestConfig) -> TestConfig {
        let d = &self.detect;
        TestConfig {
            score_thr: d.score_thr.unwrap_or(model.score_thr),
            iou_thr: d.iou_thr.unwrap_or(model.iou_thr),
            nms_pre: d.nms_pre.unwrap_or(model.nms_pre),
            max_per_img: d.max_detections.unwrap_or(model.max_per_img),
            min_bbox_size: model.min_bbox_size,
        }
    }
}

fn range(key: &str, v: f64, lo: f64, hi: f64) -> std::result::Result<(), String> {
    if v < lo || v > hi {
        Err(format!("{key} = {v} is out of range {lo}..={hi}"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        DeviceConfig::from_toml_str(text, "board.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(
            DeviceConfig::from_toml_str("", "x.toml").unwrap(),
            DeviceConfig::default()
        );
    }

    #[test]
    fn unknown_keys_name_key_and_file() {
        let e = err("[runtime]\nthread = 2\n");
        assert!(e.starts_with("board.toml"), "{e}");
        assert!(e.contains("thread"), "{e}");
        let e = err("[camra]\nindex = 1\n");
        assert!(e.contains("camra"), "{e}");
        let e = err("[camera]\npixel_format = \"bayer\"\n");
        assert!(e.contains("bayer"), "{e}");
        let e = err("[runtime]\nprecision = \"fp16\"\n");
        assert!(e.contains("fp16"), "{e}");
    }

    #[test]
    fn out_of_range_values_name_the_key() {
        for (text, key) in [
            ("[runtime]\nthreads = 0", "runtime.threads"),
            (
                "[runtime]\ninput_size = [320, 100]",
                "runtime.input_size[1]",
            ),
            (
                "[runtime]\ninput_size = [330, 320]",
                "runtime.input_size[0]",
            ),
            ("[detect]\nscore_thr = 1.5", "detect.score_thr"),
            ("[detect]\niou_thr = 0.0", "detect.iou_thr"),
            ("[detect]\nmax_detections = 0", "detect.max_detections"),
            ("[detect]\nnms_pre = 0", "detect.nms_pre"),
            ("[camera]\nfps = 1000", "camera.fps"),
            ("[camera]\nwidth = 2", "camera.width"),
            ("[camera]\nframe_timeout_ms = 5", "camera.frame_timeout_ms"),
        ] {
            let e = err(text);
            assert!(
                e.contains(key) && e.starts_with("board.toml"),
                "{text}: {e}"
            );
        }
        // A negative number for an unsigned key is a type error naming the key.
        let e = err("[runtime]\nthreads = -1");
        assert!(e.contains("threads"), "{e}");
    }

    #[test]
    fn detect_overrides_apply_over_the_model() {
        let cfg =
            DeviceConfig::from_toml_str("[detect]\nscore_thr = 0.3\nmax_detections = 10", "x.toml")
                .unwrap();
        let base = TestConfig::for_kind(crate::HeadKind::Gfl);
        let t = cfg.test_cfg(base);
        assert_eq!((t.score_thr, t.max_per_img), (0.3, 10));
        assert_eq!((t.iou_thr, t.nms_pre), (base.iou_thr, base.nms_pre));
    }
}
