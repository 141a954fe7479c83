//! The frozen part of the deployed network, run by tract on the fp32 graph:
//! the backbone's C3–C5 (neck trained) or the FPN's P3–P7 (neck frozen) for
//! each local frame, letterboxed exactly as the [`Detector`](crate::Detector)
//! letterboxes frames on the board.

use tract_onnx::pb::{ModelProto, ValueInfoProto};

use super::data::Sample;
use super::FinetuneError;
use crate::letterbox::Letterbox;
use crate::metadata::ModelMeta;
use crate::nn::ImageMeta;
use crate::onnx::runner::OnnxRunner;
use crate::rgb::as_rgb8;

/// One frame through the frozen layers: `(shape, values)` per feature level.
pub type LevelFeatures = Vec<(Vec<usize>, Vec<f32>)>;

/// Runs the frozen layers on letterboxed frames.
pub struct FrozenFeatures {
    runner: OnnxRunner,
    letterbox: Letterbox,
    input: (usize, usize),
    scratch: Vec<u8>,
}

/// Names of the values the trainable part starts from.
fn feature_names(
    model: &ModelProto,
    train_neck: bool,
    num_in: usize,
    num_outs: usize,
) -> Result<Vec<String>, FinetuneError> {
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| FinetuneError::Model("the model has no graph".into()))?;
    let produced = |name: &str| {
        graph
            .node
            .iter()
            .any(|n| n.output.iter().any(|o| o == name))
    };
    let names: Vec<String> = if train_neck {
        // The last block output of each of the last `num_in` ResNet stages.
        (5 - num_in..5)
            .map(|stage| {
                let prefix = format!("backbone.layer{stage}.");
                graph
                    .node
                    .iter()
                    .flat_map(|n| n.output.iter())
                    .filter_map(|o| {
                        let block = o.strip_prefix(&prefix)?.strip_suffix(".out")?;
                        block.parse::<usize>().ok().map(|b| (b, o.clone()))
                    })
                    .max()
                    .map(|(_, o)| o)
                    .unwrap_or_else(|| format!("{prefix}<last block>.out"))
            })
            .collect()
    } else {
        (0..num_outs)
            .map(|i| format!("neck.fpn_convs.{i}"))
            .collect()
    };
    match names.iter().find(|n| !produced(n)) {
        Some(missing) => Err(FinetuneError::Model(format!(
            "the graph has no value `{missing}`: fine-tuning needs the fp32 graph written by `crosskd export`"
        ))),
        None => Ok(names),
    }
}

impl FrozenFeatures {
    /// A tract plan of `fp32` cut at the trainable part's inputs.
    pub fn new(
        fp32: &ModelProto,
        meta: &ModelMeta,
        train_neck: bool,
        num_in: usize,
        num_outs: usize,
    ) -> Result<Self, FinetuneError> {
        let names = feature_names(fp32, train_neck, num_in, num_outs)?;
        let mut cut = fp32.clone();
        if let Some(g) = cut.graph.as_mut() {
            g.output = names
                .into_iter()
                .map(|name| ValueInfoProto {
                    name,
                    ..Default::default()
                })
                .collect();
        }
        let runner =
            OnnxRunner::from_proto(&cut).map_err(|e| FinetuneError::Model(e.to_string()))?;
        let input = (meta.input_size.0 as usize, meta.input_size.1 as usize);
        Ok(Self {
            runner,
            // The deployed detector's geometry, so features match what it sees.
            letterbox: crate::detector::letterbox_for(meta, meta.normalization()),
            input,
            scratch: Vec::new(),
        })
    }

    /// The network input of `sample` (mirrored when `flip`) and its geometry and
    /// boxes in input pixels.
    pub fn input(&mut self, sample: &Sample, flip: bool, id: u64) -> (Vec<f32>, ImageMeta) {
        let flipped;
        let img = if flip {
            flipped = sample.image.fliph();
            &flipped
        } else {
            &sample.image
        };
        let (w, h) = (img.width() as usize, img.height() as usize);
        let (in_w, in_h) = self.input;
        let mut chw = vec![0.0f32; 3 * in_h * in_w];
        let rgb = as_rgb8(img, &mut self.scratch);
        let fit = self.letterbox.run(rgb, h, w, &mut chw);
        let (sx, sy) = fit.scale_factor;
        let map = |b: &[f32; 4]| {
            let (x1, x2) = if flip {
                (w as f32 - b[2], w as f32 - b[0])
            } else {
                (b[0], b[2])
            };
            [x1 * sx, b[1] * sy, x2 * sx, b[3] * sy]
        };
        let meta = ImageMeta {
            image_id: id,
            img_shape: fit.img_shape,
            pad_shape: (in_h, in_w),
            scale_factor: fit.scale_factor,
            gt_boxes: sample.boxes.iter().map(map).collect(),
            gt_labels: sample.labels.clone(),
            gt_ignore: sample.ignore.iter().map(map).collect(),
        };
        (chw, meta)
    }

    /// The frozen features of one network input.
    pub fn run(&self, chw: &[f32]) -> Result<LevelFeatures, FinetuneError> {
        let outs = self
            .runner
            .run(chw)
            .map_err(|e| FinetuneError::Model(e.to_string()))?;
        Ok(outs.into_iter().map(|o| (o.shape, o.data)).collect())
    }
}
