//! GT losses of the four heads (MMDetection's `loss_by_feat`): flatten the
//! per-level outputs, build targets on the CPU with the assigners, and apply
//! the losses with MMDet's normalisation.
//!
//! Rows are ordered image-major, then level, then `(y, x, anchor)` — the order
//! of [`crate::targets`]' per-image priors; sums (and so every loss) do not
//! depend on the order, so the result equals MMDet's level-major layout.

pub mod anchor_batch;
pub mod atss;
pub mod fcos;
pub mod gfl;
pub mod retinanet;

use burn::prelude::*;
use burn::tensor::TensorData;

use super::heads::LevelOutput;
pub use anchor_batch::BatchAnchorTargets;
pub use fcos::PointBatchTargets;

/// A batch's GT assignment. The GT losses use it, and a distiller reuses the
/// student's assignment for its KD masks and normalisers (spec §3).
#[derive(Debug, Clone)]
pub enum HeadTargets {
    /// Anchor heads (GFL, RetinaNet, ATSS).
    Anchors(BatchAnchorTargets),
    /// Point heads (FCOS).
    Points(PointBatchTargets),
}

/// `(h, w)` of every level's output.
pub fn level_shapes<B: Backend>(outputs: &[LevelOutput<B>]) -> Vec<(usize, usize)> {
    outputs
        .iter()
        .map(|o| {
            let [_, _, h, w] = o.cls_score.dims();
            (h, w)
        })
        .collect()
}

/// `[N, A·c, H, W]` per level → `[N·Σ(H·W·A), c]` (image, level, y, x, anchor).
pub fn flatten_levels<B: Backend>(tensors: Vec<Tensor<B, 4>>, c: usize) -> Tensor<B, 2> {
    let n = tensors[0].dims()[0];
    let per_level: Vec<Tensor<B, 3>> = tensors
        .into_iter()
        .map(|t| {
            let [n, ch, h, w] = t.dims();
            t.permute([0, 2, 3, 1]).reshape([n, h * w * ch / c, c])
        })
        .collect();
    let all = Tensor::cat(per_level, 1);
    let rows = all.dims()[1];
    all.reshape([n * rows, c])
}

/// All levels' outputs flattened to rows (see [`flatten_levels`]).
pub struct FlatOutputs<B: Backend> {
    /// Class logits `[M, C]`.
    pub cls: Tensor<B, 2>,
    /// Box predictions `[M, box_channels]`.
    pub reg: Tensor<B, 2>,
    /// Centerness logits `[M]` (FCOS, ATSS).
    pub ctr: Option<Tensor<B, 1>>,
}

/// Flatten every level's `cls_score`, `bbox_pred` and (when present) `centerness`.
pub fn flatten_outputs<B: Backend>(
    outputs: &[LevelOutput<B>],
    num_classes: usize,
    box_channels: usize,
) -> FlatOutputs<B> {
    let cls = flatten_levels(
        outputs.iter().map(|o| o.cls_score.clone()).collect(),
        num_classes,
    );
    let reg = flatten_levels(
        outputs.iter().map(|o| o.bbox_pred.clone()).collect(),
        box_channels,
    );
    let ctr: Option<Vec<Tensor<B, 4>>> = outputs.iter().map(|o| o.centerness.clone()).collect();
    let ctr = ctr.map(|c| {
        let flat = flatten_levels(c, 1);
        let m = flat.dims()[0];
        flat.reshape([m])
    });
    FlatOutputs { cls, reg, ctr }
}

/// `[n]` Int tensor of indices.
pub fn index_tensor<B: Backend>(idx: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    let v: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(v, [idx.len()]), device)
}

/// `[n]` Int tensor of class labels.
pub fn label_tensor<B: Backend>(labels: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    index_tensor(labels, device)
}

/// `[n]` float tensor.
pub fn vec_tensor<B: Backend>(v: Vec<f32>, device: &B::Device) -> Tensor<B, 1> {
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n]), device)
}

/// `[n, K]` float tensor from rows.
pub fn rows_tensor<B: Backend, const K: usize>(
    rows: &[[f32; K]],
    device: &B::Device,
) -> Tensor<B, 2> {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), K]), device)
}

/// Host copy of a float tensor.
pub fn to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec()
        .expect("float tensor data converts to f32")
}

/// A zero that stays connected to `t`'s graph (MMDet's `pred.sum() * 0` for images without positives).
pub fn zero_like_graph<B: Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<B, 1> {
    t.sum().mul_scalar(0.0)
}
