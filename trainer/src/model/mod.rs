//! Detector models: backbone → neck → dense head.

pub mod backbone;
pub mod detector;

// The neck, heads and their losses live in the SDK (shared with on-device fine-tuning).
pub use crosskd_sdk::nn::{head, head_loss, heads, layers, loss_dict, neck};
