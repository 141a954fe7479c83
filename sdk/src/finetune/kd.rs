//! The "do not forget" term: the fine-tuned head's predictions pulled towards
//! the original deployed head's on every location of the local frames, weighted
//! by how confident the original is there (its max class score) — so the
//! original's detections are kept where the new labels do not contradict them.
//!
//! Per head kind, on the same outputs the GT losses see:
//! - class scores: KD quality focal loss (sigmoid soft targets, β = 1);
//! - boxes: GFL bin distributions by KL (T = 1, summed over bins); the other
//!   heads' deltas / distances by L1, both weighted per location;
//! - centerness: BCE to the original's sigmoid, weighted the same way.
//!
//! Normalised by the summed weights (a soft count of the original's objects),
//! so the term does not grow with the image size.

use burn::prelude::*;
use burn::tensor::activation::sigmoid;

use crate::nn::head_loss::flatten_outputs;
use crate::nn::heads::LevelOutput;
use crate::nn::losses::{
    binary_cross_entropy_with_logits, kd_quality_focal_loss, knowledge_distillation_kl_div_loss,
    l1_loss, ClassReduction,
};
use crate::nn::HeadConfig;

/// Named KD components between `student` and `original` outputs (same shapes).
pub fn kd_losses<B: Backend>(
    head: &HeadConfig,
    student: &[LevelOutput<B>],
    original: &[LevelOutput<B>],
) -> Vec<(&'static str, Tensor<B, 1>)> {
    let num_classes = head.num_classes();
    let box_channels = match head {
        HeadConfig::Gfl(c) => 4 * (c.reg_max + 1),
        _ => 4,
    };
    let s = flatten_outputs(student, num_classes, box_channels);
    let t = flatten_outputs(original, num_classes, box_channels);
    // Confidence of the original per location, and its soft object count.
    let w = sigmoid(t.cls.clone())
        .max_dim(1)
        .squeeze_dim::<1>(1)
        .detach();
    let norm = w.clone().sum().into_scalar().elem::<f32>().max(1.0);
    let m = w.dims()[0];

    let mut out = vec![(
        "loss_kd_cls",
        kd_quality_focal_loss(s.cls, t.cls, None, Some(norm), 1.0),
    )];
    let loss_box = match head {
        HeadConfig::Gfl(c) => {
            let bins = c.reg_max + 1;
            let w4 = w
                .clone()
                .unsqueeze_dim::<2>(1)
                .repeat_dim(1, 4)
                .reshape([m * 4]);
            knowledge_distillation_kl_div_loss(
                s.reg.reshape([m * 4, bins]),
                t.reg.reshape([m * 4, bins]).detach(),
                1.0,
                ClassReduction::Sum,
                Some(w4),
                Some(norm),
            )
        }
        _ => {
            let w4 = w.clone().unsqueeze_dim::<2>(1).repeat_dim(1, 4);
            l1_loss(s.reg, t.reg, Some(w4), Some(norm))
        }
    };
    out.push(("loss_kd_bbox", loss_box));
    if let (Some(sc), Some(tc)) = (s.ctr, t.ctr) {
        out.push((
            "loss_kd_centerness",
            binary_cross_entropy_with_logits(sc, sigmoid(tc).detach(), Some(w), Some(norm)),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::heads::{FcosHeadConfig, GflHeadConfig};
    use crate::nn::losses::test_util::*;

    fn level(cls: &[f32], reg: &[f32], c: usize, r: usize, ctr: Option<f32>) -> LevelOutput<TB> {
        LevelOutput {
            cls_score: tn::<TB, 4>(cls, [1, c, 1, 1]),
            bbox_pred: tn::<TB, 4>(reg, [1, r, 1, 1]),
            centerness: ctr.map(|v| tn::<TB, 4>(&[v], [1, 1, 1, 1])),
        }
    }

    #[test]
    fn identical_outputs_give_zero_kd() {
        // KD-QFL, KL and L1 are all zero when the student equals the original;
        // BCE to a soft target is not (it is the target's entropy), so FCOS's
        // centerness term is checked against that entropy below.
        let cfg = HeadConfig::Gfl(GflHeadConfig::new(2));
        let reg: Vec<f32> = (0..68).map(|i| (i % 17) as f32 * 0.1).collect();
        let o = vec![level(&[0.5, -1.0], &reg, 2, 68, None)];
        for (name, l) in kd_losses(&cfg, &o, &o) {
            assert!(l.into_scalar().abs() < 1e-6, "{name}");
        }
    }

    #[test]
    fn fcos_terms_by_hand() {
        // One location, 1 class. Original cls logit 0 → p = 0.5 = weight w,
        // norm = max(w, 1) = 1. Student cls logit 0 too → KD-QFL 0.
        // Boxes: |1-0|+|2-0|+|0-0|+|3-0| = 6, times w = 0.5 → 3, / norm 1 → 3.
        // Centerness: original logit 0 (target 0.5), student 0 → BCE = ln 2,
        // times w = 0.5 → 0.3466.
        let cfg = HeadConfig::Fcos(FcosHeadConfig::new(1));
        let s = vec![level(&[0.0], &[1.0, 2.0, 0.0, 3.0], 1, 4, Some(0.0))];
        let t = vec![level(&[0.0], &[0.0, 0.0, 0.0, 0.0], 1, 4, Some(0.0))];
        let got: Vec<(&str, f32)> = kd_losses(&cfg, &s, &t)
            .into_iter()
            .map(|(n, l)| (n, l.into_scalar()))
            .collect();
        assert_eq!(got[0].0, "loss_kd_cls");
        assert!(got[0].1.abs() < 1e-6);
        assert!((got[1].1 - 3.0).abs() < 1e-5, "{got:?}");
        assert!((got[2].1 - 0.5 * 2f32.ln()).abs() < 1e-5, "{got:?}");
    }
}
