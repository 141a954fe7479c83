//! Detector models: backbone → neck → dense head.

pub mod backbone;
pub mod detector;
pub mod head;
pub mod head_loss;
pub mod heads;
pub mod layers;
pub mod loss_dict;
pub mod neck;
