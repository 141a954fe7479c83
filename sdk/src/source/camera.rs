//! Live frames from a camera through nokhwa (V4L2 on Linux), feature `camera`.
//!
//! Capture runs on a worker thread that owns the device and sends decoded RGB
//! frames over a channel. The caller waits at most `frame_timeout_ms` for each
//! frame, so a camera that stops delivering (unplugged, or blocked in the
//! driver) never hangs the application: the worker is abandoned, the device is
//! re-opened up to `reconnect_attempts` times, and then a clear error comes back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use image::DynamicImage;
use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType, Resolution,
};
use nokhwa::Camera;

use super::{Frame, FrameSource};
use crate::config::{CameraConfig, PixelFormat};
use crate::error::{Result, SdkError};

/// What the worker sends: a frame, or why the device failed.
type Message = std::result::Result<image::RgbImage, String>;

/// A camera as a frame stream.
///
/// ```no_run
/// use crosskd_sdk::source::{CameraSource, FrameSource};
/// use crosskd_sdk::DeviceConfig;
/// let cfg = DeviceConfig::from_file("firmware-configs/raspberry-pi-5.toml")?;
/// let mut cam = CameraSource::open(&cfg.camera)?;
/// let frame = cam.next_frame()?.expect("cameras never end");
/// # Ok::<(), crosskd_sdk::SdkError>(())
/// ```
#[derive(Debug)]
pub struct CameraSource {
    cfg: CameraConfig,
    rx: Receiver<Message>,
    stop: Arc<AtomicBool>,
    frames: u64,
}

impl CameraSource {
    /// Opens camera `cfg.index` and waits for its first frame; no camera, a
    /// busy camera or a mode it cannot deliver is an error.
    pub fn open(cfg: &CameraConfig) -> Result<Self> {
        let (rx, stop) = spawn_worker(cfg.clone());
        let mut cam = Self {
            cfg: cfg.clone(),
            rx,
            stop,
            frames: 0,
        };
        cam.wait_first()?;
        Ok(cam)
    }

    fn name(&self) -> String {
        format!("camera {}", self.cfg.index)
    }

    fn error(&self, message: String) -> SdkError {
        SdkError::Source {
            source_name: format!("{} (/dev/video{})", self.name(), self.cfg.index),
            message,
        }
    }

    /// The worker's first message tells whether the device opened.
    fn wait_first(&mut self) -> Result<()> {
        // Opening can take longer than a frame period (format negotiation).
        let timeout = Duration::from_millis(self.cfg.frame_timeout_ms * 2);
        match self.rx.recv_timeout(timeout) {
            Ok(Ok(_first)) => Ok(()),
            Ok(Err(e)) => Err(self.error(format!(
                "cannot open: {e}. Check that the camera is plugged in, that \
                 camera.index is right (`ls /dev/video*`) and that no other \
                 program holds it"
            ))),
            Err(_) => Err(self.error(format!(
                "opened, but no frame came within {} ms; try a lower camera.fps \
                 or camera.width/height, or another camera.pixel_format",
                timeout.as_millis()
            ))),
        }
    }

    /// Abandons the current worker and opens the device again.
    fn reconnect(&mut self, why: &str) -> Result<()> {
        let mut last = why.to_string();
        for attempt in 1..=self.cfg.reconnect_attempts {
            self.stop.store(true, Ordering::Relaxed);
            // Drop the old receiver now: a worker blocked on a send then fails and
            // exits (releasing the device) during the delay, not after it.
            self.rx = sync_channel::<Message>(1).1;
            std::thread::sleep(Duration::from_millis(self.cfg.reconnect_delay_ms));
            let (rx, stop) = spawn_worker(self.cfg.clone());
            self.rx = rx;
            self.stop = stop;
            match self.wait_first() {
                Ok(()) => return Ok(()),
                Err(e) => last = format!("attempt {attempt}: {e}"),
            }
        }
        Err(self.error(format!(
            "lost ({why}) and {} reconnect attempts failed; last: {last}",
            self.cfg.reconnect_attempts
        )))
    }
}

impl FrameSource for CameraSource {
    fn next_frame(&mut self) -> Result<Option<Frame>> {
        let timeout = Duration::from_millis(self.cfg.frame_timeout_ms);
        // Each failure costs one reconnect (bounded by reconnect_attempts inside).
        let image = loop {
            let why = match self.rx.recv_timeout(timeout) {
                Ok(Ok(img)) => break img,
                Ok(Err(e)) => e,
                Err(RecvTimeoutError::Timeout) => {
                    format!("no frame within {} ms", timeout.as_millis())
                }
                Err(RecvTimeoutError::Disconnected) => "capture thread ended".into(),
            };
            self.reconnect(&why)?;
        };
        self.frames += 1;
        Ok(Some(Frame {
            image: DynamicImage::ImageRgb8(image),
            name: format!("camera{}-{:06}", self.cfg.index, self.frames),
            path: None,
        }))
    }

    fn describe(&self) -> String {
        format!(
            "{} {}x{}@{} {:?}",
            self.name(),
            self.cfg.width,
            self.cfg.height,
            self.cfg.fps,
            self.cfg.pixel_format
        )
    }
}

impl Drop for CameraSource {
    fn drop(&mut self) {
        // Never join: a worker stuck in the driver must not block the caller.
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn frame_format(p: PixelFormat) -> FrameFormat {
    match p {
        PixelFormat::Mjpeg => FrameFormat::MJPEG,
        PixelFormat::Yuyv => FrameFormat::YUYV,
        PixelFormat::Nv12 => FrameFormat::NV12,
        PixelFormat::Gray => FrameFormat::GRAY,
        PixelFormat::Rgb => FrameFormat::RAWRGB,
    }
}

/// Starts a capture thread; its channel holds one frame, so memory stays flat
/// when inference is slower than capture (the driver drops the surplus).
fn spawn_worker(cfg: CameraConfig) -> (Receiver<Message>, Arc<AtomicBool>) {
    let (tx, rx) = sync_channel::<Message>(1);
    let stop = Arc::new(AtomicBool::new(false));
    let stop_worker = stop.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("crosskd-camera{}", cfg.index))
        .spawn(move || {
            let requested =
                RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(CameraFormat::new(
                    Resolution::new(cfg.width, cfg.height),
                    frame_format(cfg.pixel_format),
                    cfg.fps,
                )));
            let mut camera = match Camera::new(CameraIndex::Index(cfg.index), requested)
                .and_then(|mut c| c.open_stream().map(|()| c))
            {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            while !stop_worker.load(Ordering::Relaxed) {
                let msg = camera
                    .frame()
                    .and_then(|buf| buf.decode_image::<RgbFormat>())
                    .map_err(|e| e.to_string());
                let failed = msg.is_err();
                if tx.send(msg).is_err() || failed {
                    break;
                }
            }
            let _ = camera.stop_stream();
        });
    if let Err(e) = spawned {
        // No thread: report through a channel that already holds the error.
        let (tx, rx) = sync_channel::<Message>(1);
        let _ = tx.send(Err(format!("cannot start the capture thread: {e}")));
        return (rx, stop);
    }
    (rx, stop)
}
