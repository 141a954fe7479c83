//! Final detections and their COCO results-file form.
//!
//! ```
//! use crosskd_sdk::detection::{CocoResult, Detection};
//! let det = Detection { bbox: [10.0, 20.0, 40.0, 60.0], score: 0.9, class_id: 1, label: None };
//! // COCO category ids are not contiguous: map class index → category id.
//! let rec = det.to_coco(42, &[1, 2, 3]).unwrap();
//! assert_eq!(rec, CocoResult { image_id: 42, category_id: 2, bbox: [10.0, 20.0, 30.0, 40.0], score: 0.9 });
//! ```

use serde::{Deserialize, Serialize};

use crate::boxes::{xyxy_to_xywh, BBox};

/// One detected object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// `[x1, y1, x2, y2]` in original-image pixels.
    pub bbox: BBox,
    /// Final score (class probability, times centerness for FCOS/ATSS).
    pub score: f32,
    /// Class index in `0..num_classes`.
    pub class_id: usize,
    /// Class name, when the caller knows the names (see [`Detection::with_label`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl Detection {
    /// This detection with `label` set from `class_names[class_id]` (left `None`
    /// when the index is out of range).
    pub fn with_label(mut self, class_names: &[String]) -> Self {
        self.label = class_names.get(self.class_id).cloned();
        self
    }

    /// The COCO results record for `image_id`; `category_ids[class_id]` is the
    /// dataset's category id of the class. `None` if `class_id` is out of range.
    pub fn to_coco(&self, image_id: u64, category_ids: &[u64]) -> Option<CocoResult> {
        category_ids
            .get(self.class_id)
            .map(|&category_id| CocoResult {
                image_id,
                category_id,
                bbox: xyxy_to_xywh(&self.bbox),
                score: self.score,
            })
    }
}

/// One entry of a COCO detection results file (`[{"image_id", "category_id", "bbox", "score"}]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CocoResult {
    /// COCO image id.
    pub image_id: u64,
    /// COCO category id.
    pub category_id: u64,
    /// `[x, y, w, h]` in original-image pixels.
    pub bbox: [f32; 4],
    /// Detection score.
    pub score: f32,
}

/// COCO records of one image's detections; detections whose class has no
/// category id are skipped.
pub fn to_coco_results(dets: &[Detection], image_id: u64, category_ids: &[u64]) -> Vec<CocoResult> {
    dets.iter()
        .filter_map(|d| d.to_coco(image_id, category_ids))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coco_record_is_xywh_with_mapped_category() {
        // By hand: [5, 6, 15, 26] → x 5, y 6, w 10, h 20; class 2 → category 90.
        let d = Detection {
            bbox: [5.0, 6.0, 15.0, 26.0],
            score: 0.25,
            class_id: 2,
            label: None,
        };
        let r = d.to_coco(7, &[1, 3, 90]).unwrap();
        assert_eq!(r.bbox, [5.0, 6.0, 10.0, 20.0]);
        assert_eq!(r.category_id, 90);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"image_id":7,"category_id":90,"bbox":[5.0,6.0,10.0,20.0],"score":0.25}"#
        );
        assert!(d.to_coco(7, &[1, 3]).is_none());
        let dets = [
            d.clone(),
            Detection {
                class_id: 9,
                ..d.clone()
            },
        ];
        assert_eq!(to_coco_results(&dets, 7, &[1, 3, 90]), vec![r]);
    }

    #[test]
    fn labels_and_serde() {
        let names = vec!["cat".to_string(), "dog".to_string()];
        let d = Detection {
            bbox: [0.0, 0.0, 1.0, 1.0],
            score: 0.5,
            class_id: 1,
            label: None,
        };
        assert_eq!(d.clone().with_label(&names).label.as_deref(), Some("dog"));
        assert_eq!(
            Detection {
                class_id: 5,
                ..d.clone()
            }
            .with_label(&names)
            .label,
            None
        );
        let json = serde_json::to_string(&d).unwrap();
        assert!(!json.contains("label"));
        assert_eq!(serde_json::from_str::<Detection>(&json).unwrap(), d);
    }
}
