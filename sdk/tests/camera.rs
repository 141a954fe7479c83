//! Camera source without a camera (CI machines have none): a clear error,
//! quickly, never a panic or a hang.
#![cfg(feature = "camera")]

use std::time::{Duration, Instant};

use crosskd_sdk::config::CameraConfig;
use crosskd_sdk::source::CameraSource;
use crosskd_sdk::SdkError;

#[test]
fn a_missing_camera_is_a_clear_error_not_a_hang() {
    let cfg = CameraConfig {
        index: 63,
        frame_timeout_ms: 500,
        reconnect_attempts: 0,
        ..Default::default()
    };
    let t0 = Instant::now();
    let e = CameraSource::open(&cfg).unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );
    assert!(matches!(e, SdkError::Source { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("camera 63") && msg.contains("/dev/video63"),
        "{msg}"
    );
    eprintln!("{msg}");
}
