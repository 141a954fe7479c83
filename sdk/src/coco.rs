//! COCO "instances" JSON: ground truth ([`CocoDataset`]) and detection results
//! ([`CocoDetection`]), with loaders that validate the file and report errors by
//! file, line/column and JSON path instead of panicking.
//!
//! Only the fields object detection needs are kept: `segmentation`, `info`,
//! `licenses`, `supercategory` and any other unknown key are skipped while
//! parsing. A missing annotation `area` is replaced by the box area `w * h`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// A COCO instances ground-truth file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CocoDataset {
    /// The images (`images`).
    #[serde(default)]
    pub images: Vec<CocoImage>,
    /// The object annotations (`annotations`).
    #[serde(default)]
    pub annotations: Vec<CocoAnnotation>,
    /// The categories (`categories`).
    #[serde(default)]
    pub categories: Vec<CocoCategory>,
}

/// One entry of `images`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoImage {
    /// Image id, unique within the file.
    pub id: u64,
    /// File name relative to the image folder.
    pub file_name: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// One entry of `annotations` (an object instance).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "AnnotationRepr")]
pub struct CocoAnnotation {
    /// Annotation id, unique within the file.
    pub id: u64,
    /// The image this object is in.
    pub image_id: u64,
    /// The object's category.
    pub category_id: u64,
    /// Box as `[x, y, width, height]` in pixels.
    pub bbox: [f64; 4],
    /// Object area in pixels² (COCO: the segmentation's area). Used by the
    /// evaluator for the small/medium/large ranges. `w * h` when absent.
    pub area: f64,
    /// 1 for a crowd region (ignored by the evaluator), 0 otherwise.
    pub iscrowd: u8,
}

/// The serialised form of [`CocoAnnotation`]: `area` optional, `iscrowd`
/// defaulting to 0 and accepting `true`/`false` as well as integers.
#[derive(Deserialize)]
struct AnnotationRepr {
    id: u64,
    image_id: u64,
    category_id: u64,
    bbox: [f64; 4],
    #[serde(default)]
    area: Option<f64>,
    #[serde(default, deserialize_with = "crowd_flag")]
    iscrowd: u8,
}

impl From<AnnotationRepr> for CocoAnnotation {
    fn from(r: AnnotationRepr) -> Self {
        let area = r.area.unwrap_or(r.bbox[2] * r.bbox[3]);
        Self {
            id: r.id,
            image_id: r.image_id,
            category_id: r.category_id,
            bbox: r.bbox,
            area,
            iscrowd: r.iscrowd,
        }
    }
}

/// `iscrowd` as written by various tools: `0`/`1` or `false`/`true`.
fn crowd_flag<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Int(u8),
        Bool(bool),
    }
    Ok(match Flag::deserialize(d)? {
        Flag::Int(v) => v,
        Flag::Bool(b) => u8::from(b),
    })
}

/// One entry of `categories`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CocoCategory {
    /// Category id (COCO's are 1..=90 with gaps).
    pub id: u64,
    /// Human-readable name.
    pub name: String,
}

/// One detection in the COCO results format (a results file is a JSON array of
/// these).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoDetection {
    /// The image the detection is in.
    pub image_id: u64,
    /// Predicted category.
    pub category_id: u64,
    /// Box as `[x, y, width, height]` in pixels.
    pub bbox: [f64; 4],
    /// Confidence.
    pub score: f64,
}

/// Why a COCO file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CocoError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid JSON or does not have the expected structure.
    #[error("{}:{line}:{column}: {}{message}", .path.display(), json_path_prefix(.json_path))]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line where parsing stopped (serde_json).
        line: usize,
        /// 1-based column where parsing stopped (serde_json).
        column: usize,
        /// JSON path of the offending value, e.g. `annotations[17].bbox`, when
        /// it could be located.
        json_path: Option<String>,
        /// serde_json's description of the problem.
        message: String,
    },
    /// Two entries of `images`, `annotations` or `categories` share an id.
    #[error("{}: {json_path}: duplicate {what} id {id} (first used by {first})", .path.display())]
    DuplicateId {
        /// The file.
        path: PathBuf,
        /// `image`, `annotation` or `category`.
        what: &'static str,
        /// JSON path of the second entry, e.g. `images[12].id`.
        json_path: String,
        /// The repeated id.
        id: u64,
        /// JSON path of the first entry with this id.
        first: String,
    },
    /// An annotation refers to an image id absent from `images`.
    #[error(
        "{}: {json_path}: annotation id {annotation_id} refers to unknown image id {image_id}",
        .path.display()
    )]
    UnknownImage {
        /// The file.
        path: PathBuf,
        /// JSON path of the field, e.g. `annotations[17].image_id`.
        json_path: String,
        /// The annotation's id.
        annotation_id: u64,
        /// The unknown image id.
        image_id: u64,
    },
    /// An annotation refers to a category id absent from `categories`.
    #[error(
        "{}: {json_path}: annotation id {annotation_id} refers to unknown category id {category_id}",
        .path.display()
    )]
    UnknownCategory {
        /// The file.
        path: PathBuf,
        /// JSON path of the field, e.g. `annotations[17].category_id`.
        json_path: String,
        /// The annotation's id.
        annotation_id: u64,
        /// The unknown category id.
        category_id: u64,
    },
}

fn json_path_prefix(p: &Option<String>) -> String {
    match p {
        Some(p) => format!("{p}: "),
        None => String::new(),
    }
}

/// Load and validate a COCO instances ground-truth file.
///
/// Fails (never panics) on unreadable files, malformed JSON, wrongly typed or
/// missing fields, duplicate image/annotation/category ids, and annotations
/// whose `image_id` or `category_id` is not declared.
pub fn load_gt(path: impl AsRef<Path>) -> Result<CocoDataset, CocoError> {
    let path = path.as_ref();
    let bytes = read(path)?;
    CocoDataset::from_json_slice(&bytes, path)
}

/// Load a COCO detection results file (a JSON array of [`CocoDetection`]).
pub fn load_dets(path: impl AsRef<Path>) -> Result<Vec<CocoDetection>, CocoError> {
    let path = path.as_ref();
    let bytes = read(path)?;
    parse_dets(&bytes, path)
}

/// Parse a results file already in memory; `origin` names it in errors.
pub fn parse_dets(json: &[u8], origin: &Path) -> Result<Vec<CocoDetection>, CocoError> {
    serde_json::from_slice(json).map_err(|e| json_error(e, json, origin, locate_dets))
}

impl CocoDataset {
    /// Parse and [validate](Self::validate) a ground-truth file already in
    /// memory; `origin` names it in errors.
    pub fn from_json_slice(json: &[u8], origin: &Path) -> Result<Self, CocoError> {
        let ds: Self =
            serde_json::from_slice(json).map_err(|e| json_error(e, json, origin, locate_gt))?;
        ds.validate(origin)?;
        Ok(ds)
    }

    /// Check id uniqueness and that every annotation refers to a declared image
    /// and category; `origin` names the file in errors.
    pub fn validate(&self, origin: &Path) -> Result<(), CocoError> {
        let images = unique_ids(origin, "image", "images", self.images.iter().map(|i| i.id))?;
        let cats = unique_ids(
            origin,
            "category",
            "categories",
            self.categories.iter().map(|c| c.id),
        )?;
        unique_ids(
            origin,
            "annotation",
            "annotations",
            self.annotations.iter().map(|a| a.id),
        )?;
        for (i, a) in self.annotations.iter().enumerate() {
            if !images.contains_key(&a.image_id) {
                return Err(CocoError::UnknownImage {
                    path: origin.to_path_buf(),
                    json_path: format!("annotations[{i}].image_id"),
                    annotation_id: a.id,
                    image_id: a.image_id,
                });
            }
            if !cats.contains_key(&a.category_id) {
                return Err(CocoError::UnknownCategory {
                    path: origin.to_path_buf(),
                    json_path: format!("annotations[{i}].category_id"),
                    annotation_id: a.id,
                    category_id: a.category_id,
                });
            }
        }
        Ok(())
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CocoError> {
    std::fs::read(path).map_err(|source| CocoError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Map each id to its index, failing on the first repeat.
fn unique_ids(
    origin: &Path,
    what: &'static str,
    array: &str,
    ids: impl Iterator<Item = u64>,
) -> Result<HashMap<u64, usize>, CocoError> {
    let mut seen = HashMap::new();
    for (i, id) in ids.enumerate() {
        if let Some(first) = seen.insert(id, i) {
            return Err(CocoError::DuplicateId {
                path: origin.to_path_buf(),
                what,
                json_path: format!("{array}[{i}].id"),
                id,
                first: format!("{array}[{first}]"),
            });
        }
    }
    Ok(seen)
}

/// Turn a typed-parse failure into [`CocoError::Json`]. serde_json gives the
/// line and column; to also name the JSON path, the (then already known to be
/// bad) document is re-read as an untyped [`Value`] and each entry is
/// checked on its own by `locate`.
fn json_error(
    e: serde_json::Error,
    json: &[u8],
    origin: &Path,
    locate: fn(&Value) -> Option<String>,
) -> CocoError {
    let json_path = if e.is_syntax() || e.is_eof() || e.is_io() {
        None
    } else {
        serde_json::from_slice::<Value>(json)
            .ok()
            .and_then(|v| locate(&v))
    };
    // serde_json appends " at line L column C" to its messages; we print the
    // position in front instead.
    let mut message = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    if message.ends_with(&suffix) {
        message.truncate(message.len() - suffix.len());
    }
    CocoError::Json {
        path: origin.to_path_buf(),
        line: e.line(),
        column: e.column(),
        json_path,
        message,
    }
}

/// Field-by-field type checks for one JSON object. Returns the path of the
/// first field that fails (or of the object itself, e.g. for a missing field).
fn locate_fields(v: &Value, path: &str, fields: &[FieldCheck]) -> String {
    if let Value::Object(map) = v {
        for (name, ok) in fields {
            if let Some(f) = map.get(*name) {
                if !ok(f) {
                    return format!("{path}.{name}");
                }
            }
        }
    }
    path.to_string()
}

fn is<T: DeserializeOwned>(v: &Value) -> bool {
    T::deserialize(v).is_ok()
}

fn is_crowd(v: &Value) -> bool {
    #[derive(Deserialize)]
    struct W {
        #[serde(deserialize_with = "crowd_flag")]
        _c: u8,
    }
    is::<W>(&serde_json::json!({ "_c": v }))
}

fn locate_array<T: DeserializeOwned>(
    v: &Value,
    name: &str,
    fields: &[FieldCheck],
) -> Option<String> {
    let items = match v {
        Value::Array(items) => items,
        _ => return Some(format!("{name} (expected an array)")),
    };
    items.iter().enumerate().find_map(|(i, item)| {
        (!is::<T>(item)).then(|| locate_fields(item, &format!("{name}[{i}]"), fields))
    })
}

/// A field name and a check that its value has the right type.
type FieldCheck = (&'static str, fn(&Value) -> bool);

const IMAGE_FIELDS: &[FieldCheck] = &[
    ("id", is::<u64>),
    ("file_name", is::<String>),
    ("width", is::<u32>),
    ("height", is::<u32>),
];
const ANNOTATION_FIELDS: &[FieldCheck] = &[
    ("id", is::<u64>),
    ("image_id", is::<u64>),
    ("category_id", is::<u64>),
    ("bbox", is::<[f64; 4]>),
    ("area", is::<f64>),
    ("iscrowd", is_crowd),
];
const CATEGORY_FIELDS: &[FieldCheck] = &[("id", is::<u64>), ("name", is::<String>)];
const DETECTION_FIELDS: &[FieldCheck] = &[
    ("image_id", is::<u64>),
    ("category_id", is::<u64>),
    ("bbox", is::<[f64; 4]>),
    ("score", is::<f64>),
];

fn locate_gt(v: &Value) -> Option<String> {
    let Value::Object(map) = v else {
        return Some("$ (expected an object with images/annotations/categories)".into());
    };
    let key = |k: &str| map.get(k).filter(|v| !v.is_null());
    if let Some(p) =
        key("images").and_then(|a| locate_array::<CocoImage>(a, "images", IMAGE_FIELDS))
    {
        return Some(p);
    }
    if let Some(p) = key("annotations")
        .and_then(|a| locate_array::<CocoAnnotation>(a, "annotations", ANNOTATION_FIELDS))
    {
        return Some(p);
    }
    key("categories").and_then(|a| locate_array::<CocoCategory>(a, "categories", CATEGORY_FIELDS))
}

fn locate_dets(v: &Value) -> Option<String> {
    match v {
        Value::Array(_) => locate_array::<CocoDetection>(v, "", DETECTION_FIELDS),
        _ => Some("$ (expected an array of detections)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gt(json: &str) -> Result<CocoDataset, CocoError> {
        CocoDataset::from_json_slice(json.as_bytes(), Path::new("gt.json"))
    }

    const GOOD: &str = r#"{
        "info": {"year": 2017}, "licenses": [],
        "images": [{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480, "license": 3}],
        "annotations": [
            {"id": 7, "image_id": 1, "category_id": 3, "bbox": [1, 2, 10, 20], "area": 150.5,
             "iscrowd": 0, "segmentation": [[1, 2, 3, 4, 5, 6]]},
            {"id": 8, "image_id": 1, "category_id": 3, "bbox": [0, 0, 4.5, 2],
             "segmentation": {"counts": "abc", "size": [480, 640]}, "iscrowd": true},
            {"id": 9, "image_id": 1, "category_id": 3, "bbox": [0, 0, 4, 4]}
        ],
        "categories": [{"id": 3, "name": "car", "supercategory": "vehicle"}]
    }"#;

    #[test]
    fn parses_instances_and_fills_defaults() {
        let ds = gt(GOOD).unwrap();
        assert_eq!(ds.images.len(), 1);
        assert_eq!(ds.images[0].file_name, "a.jpg");
        assert_eq!(ds.categories[0].name, "car");
        let a = &ds.annotations;
        assert_eq!(a[0].bbox, [1.0, 2.0, 10.0, 20.0]);
        assert_eq!(a[0].area, 150.5); // given area is kept, not w*h
        assert_eq!(a[0].iscrowd, 0);
        assert_eq!(a[1].area, 9.0); // missing area -> 4.5 * 2
        assert_eq!(a[1].iscrowd, 1); // `true` accepted
        assert_eq!(a[2].iscrowd, 0); // missing -> 0
    }

    #[test]
    fn roundtrips_through_serde() {
        let ds = gt(GOOD).unwrap();
        let s = serde_json::to_string(&ds).unwrap();
        assert_eq!(gt(&s).unwrap(), ds);
    }

    #[test]
    fn malformed_json_names_file_and_line() {
        let err = gt("{\n  \"images\": [\n    {\"id\": 1,, }\n  ]\n}").unwrap_err();
        let msg = err.to_string();
        match err {
            CocoError::Json {
                line, json_path, ..
            } => {
                assert_eq!(line, 3);
                assert_eq!(json_path, None);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(msg.starts_with("gt.json:3:"), "{msg}");
    }

    #[test]
    fn wrong_type_names_json_path_and_line() {
        let json = GOOD.replace("\"bbox\": [0, 0, 4, 4]", "\"bbox\": [0, 0, \"4\", 4]");
        let err = gt(&json).unwrap_err();
        let msg = err.to_string();
        match &err {
            CocoError::Json {
                line, json_path, ..
            } => {
                assert_eq!(json_path.as_deref(), Some("annotations[2].bbox"));
                assert_eq!(*line, 9);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(msg.contains("gt.json:9:"), "{msg}");
        assert!(msg.contains("annotations[2].bbox"), "{msg}");
    }

    #[test]
    fn missing_field_names_entry() {
        let json = GOOD.replace("\"file_name\": \"a.jpg\", ", "");
        let err = gt(&json).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("images[0]: missing field `file_name`"),
            "{msg}"
        );
    }

    #[test]
    fn duplicate_image_id() {
        let json = GOOD.replace(
            "\"images\": [",
            "\"images\": [{\"id\": 1, \"file_name\": \"b.jpg\", \"width\": 1, \"height\": 1},",
        );
        let msg = gt(&json).unwrap_err().to_string();
        assert_eq!(
            msg,
            "gt.json: images[1].id: duplicate image id 1 (first used by images[0])"
        );
    }

    #[test]
    fn duplicate_annotation_id() {
        let json = GOOD.replace("\"id\": 9,", "\"id\": 7,");
        let msg = gt(&json).unwrap_err().to_string();
        assert!(
            msg.contains("annotations[2].id: duplicate annotation id 7"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_image_and_category() {
        let json = GOOD.replace(
            "{\"id\": 9, \"image_id\": 1, \"category_id\": 3",
            "{\"id\": 9, \"image_id\": 5, \"category_id\": 3",
        );
        let msg = gt(&json).unwrap_err().to_string();
        assert_eq!(
            msg,
            "gt.json: annotations[2].image_id: annotation id 9 refers to unknown image id 5"
        );
        let json = GOOD.replace(
            "{\"id\": 8, \"image_id\": 1, \"category_id\": 3",
            "{\"id\": 8, \"image_id\": 1, \"category_id\": 4",
        );
        let msg = gt(&json).unwrap_err().to_string();
        assert_eq!(
            msg,
            "gt.json: annotations[1].category_id: annotation id 8 refers to unknown category id 4"
        );
    }

    #[test]
    fn not_an_object() {
        let err = gt("[1, 2]").unwrap_err();
        assert!(matches!(err, CocoError::Json { .. }), "{err:?}");
    }

    #[test]
    fn detections_parse_and_locate_errors() {
        let ok = br#"[{"image_id": 1, "category_id": 2, "bbox": [1.5, 2, 3, 4], "score": 0.25,
                       "segmentation": []}]"#;
        let d = parse_dets(ok, Path::new("d.json")).unwrap();
        assert_eq!(d[0].bbox, [1.5, 2.0, 3.0, 4.0]);
        assert_eq!(d[0].score, 0.25);

        let bad = b"[\n{\"image_id\": 1, \"category_id\": 2, \"bbox\": [1, 2, 3, 4], \"score\": 1},\n{\"image_id\": 1, \"category_id\": 2, \"bbox\": [1, 2, 3], \"score\": 1}\n]";
        let err = parse_dets(bad, Path::new("d.json")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("d.json:3:"), "{msg}");
        assert!(msg.contains("[1].bbox"), "{msg}");

        let err = parse_dets(br#"{"a": 1}"#, Path::new("d.json")).unwrap_err();
        assert!(err.to_string().contains("expected an array"), "{err}");
    }

    #[test]
    fn missing_file_is_io_error() {
        let err = load_gt("/nonexistent/definitely/gt.json").unwrap_err();
        assert!(matches!(err, CocoError::Io { .. }));
        assert!(err
            .to_string()
            .starts_with("/nonexistent/definitely/gt.json: cannot read"));
    }
}
