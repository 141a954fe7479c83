//! Detector models: backbone → neck → dense head.

pub mod backbone;
pub mod detector;
pub mod head;
pub mod heads;
pub mod layers;
pub mod neck;
