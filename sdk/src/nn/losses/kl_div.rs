//! `KnowledgeDistillationKLDivLoss` (GFL regression distillation on the bin distributions).

use burn::tensor::{
    activation::{log_softmax, softmax},
    backend::Backend,
    Tensor,
};

use super::reduce::weight_reduce_rows;

/// How the per-bin KL terms of a row are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClassReduction {
    /// Sum over the K bins (CrossKD GFL config).
    #[default]
    Sum,
    /// Mean over the K bins (MMDet's LD default).
    Mean,
}

/// Unreduced KL `[M]`: per row `T²·Σ_k softmax(t/T)_k·(log_softmax(t/T)_k − log_softmax(x/T)_k)`
/// (or the mean over `k`).
///
/// The teacher distribution is detached. `log_softmax(t/T)` is used for `ln p` so a bin whose
/// teacher probability underflows to 0 contributes `0·finite = 0` (torch's `kl_div` also
/// defines `0·ln 0 = 0`), never NaN.
pub fn kl_div_rows<B: Backend>(
    pred: Tensor<B, 2>,
    teacher: Tensor<B, 2>,
    temperature: f32,
    class_reduction: ClassReduction,
) -> Tensor<B, 1> {
    let [m, _] = pred.dims();
    let t = teacher.detach().div_scalar(temperature);
    let p = softmax(t.clone(), 1);
    let log_p = log_softmax(t, 1);
    let log_q = log_softmax(pred.div_scalar(temperature), 1);
    let kl = p.mul(log_p.sub(log_q));
    let row = match class_reduction {
        ClassReduction::Sum => kl.sum_dim(1),
        ClassReduction::Mean => kl.mean_dim(1),
    };
    row.reshape([m]).mul_scalar(temperature * temperature)
}

/// KnowledgeDistillationKLDivLoss, reduced: `Σ_m kl_m·w_m / (avg_factor + ε)` (mean over
/// rows without `avg_factor`).
///
/// `pred`: student / cross-head logits `[M, K]`; `teacher`: teacher logits `[M, K]`
/// (detached); `weight`: `[M]`. CrossKD GFL: rows are `(location, side)` pairs with K = 17,
/// `T = 1`, [`ClassReduction::Sum`], `avg_factor = 4.0`.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use crosskd_sdk::nn::losses::{knowledge_distillation_kl_div_loss, ClassReduction};
/// let dev = Default::default();
/// let x = Tensor::<Flex, 2>::from_floats([[0.0, 0.0]], &dev);
/// let t = Tensor::<Flex, 2>::from_floats([[3f32.ln(), 0.0]], &dev); // p = [3/4, 1/4]
/// // KL(p‖[½,½]) = ¾ ln(3/2) + ¼ ln(1/2)
/// let expected = 0.75 * 1.5f32.ln() + 0.25 * 0.5f32.ln();
/// let l = knowledge_distillation_kl_div_loss(x, t, 1.0, ClassReduction::Sum, None, None);
/// assert!((l.into_scalar() - expected).abs() < 1e-6);
/// ```
pub fn knowledge_distillation_kl_div_loss<B: Backend>(
    pred: Tensor<B, 2>,
    teacher: Tensor<B, 2>,
    temperature: f32,
    class_reduction: ClassReduction,
    weight: Option<Tensor<B, 1>>,
    avg_factor: Option<f32>,
) -> Tensor<B, 1> {
    let rows = kl_div_rows(pred, teacher, temperature, class_reduction);
    weight_reduce_rows(rows, weight, avg_factor)
}

#[cfg(test)]
// Reference values are pasted from float64 output; f32 rounds them, which is intended.
#[allow(clippy::excessive_precision)]
mod tests {
    use super::*;
    use crate::nn::losses::test_util::*;

    // Reference (torch float64, no mmdet):
    //   tgt = softmax(t/T, 1); kl = F.kl_div(log_softmax(x/T, 1), tgt, reduction='none')
    //   rows = kl.sum(1)·T² (or kl.mean(1)·T²); loss = (rows·w).sum() / (4 + eps_f32)
    const X: [f32; 12] = [
        0.2, -1.0, 1.5, 0.0, -2.0, 0.7, 0.3, -0.1, 50.0, -50.0, 3.0, -3.0,
    ];
    const T: [f32; 12] = [
        1.0, -0.5, 0.5, -2.0, 0.0, 0.0, 1.0, -1.0, -50.0, 50.0, 2.0, -4.0,
    ];
    const W: [f32; 3] = [1.0, 0.5, 2.0];

    #[test]
    fn rows_sum_and_mean_t1_t2() {
        // Row 2 (±50 swapped): p ≈ one-hot on bin 1, ln q_1 ≈ −100 → KL ≈ 100 (T=1);
        // T=2: logits halve, ln q_1 ≈ −50 → KL ≈ 50, times T² = 4 → 200.
        let sum1 = kl_div_rows(t2::<TB>(&X, 4), t2::<TB>(&T, 4), 1.0, ClassReduction::Sum);
        assert_close(&vals(sum1), &[0.434_339_3, 0.420_552_47, 100.0], 1e-5);
        let mean1 = kl_div_rows(t2::<TB>(&X, 4), t2::<TB>(&T, 4), 1.0, ClassReduction::Mean);
        assert_close(&vals(mean1), &[0.108_584_82, 0.105_138_12, 25.0], 1e-5);
        let sum2 = kl_div_rows(t2::<TB>(&X, 4), t2::<TB>(&T, 4), 2.0, ClassReduction::Sum);
        assert_close(&vals(sum2), &[0.521_812_5, 0.548_182_27, 200.0], 1e-5);
        let mean2 = kl_div_rows(t2::<TB>(&X, 4), t2::<TB>(&T, 4), 2.0, ClassReduction::Mean);
        assert_close(&vals(mean2), &[0.130_453_12, 0.137_045_57, 50.0], 1e-5);
    }

    #[test]
    fn reduced_value_and_gradient_match_torch_teacher_gets_none() {
        for (temp, value, grad) in [
            (
                1.0,
                50.161_152,
                [
                    -0.089_834_09,
                    -0.016_673_6,
                    0.077_774_43,
                    0.028_733_255,
                    -0.020_735_043,
                    0.032_583_23,
                    -0.028_490_52,
                    0.016_642_333,
                    0.5,
                    -0.5,
                    0.0,
                    0.0,
                ],
            ),
            (
                2.0,
                100.198_97,
                [
                    -0.087_639_87,
                    -0.032_649_943,
                    0.061_831_905,
                    0.058_457_904,
                    -0.035_168_976,
                    0.032_214_69,
                    -0.022_387_554,
                    0.025_341_839,
                    1.0,
                    -1.0,
                    0.0,
                    0.0,
                ],
            ),
        ] {
            let x = t2::<AD>(&X, 4).require_grad();
            let t = t2::<AD>(&T, 4).require_grad();
            let loss = knowledge_distillation_kl_div_loss(
                x.clone(),
                t.clone(),
                temp,
                ClassReduction::Sum,
                Some(t1::<AD>(&W)),
                Some(4.0),
            );
            assert_close(&[scalar(loss.clone())], &[value], 1e-5);
            let grads = loss.backward();
            assert_close(&vals(x.grad(&grads).unwrap()), &grad, 1e-5);
            assert!(t.grad(&grads).is_none(), "teacher must get no gradient");
        }
    }

    #[test]
    fn identical_distributions_give_zero() {
        let l = knowledge_distillation_kl_div_loss(
            t2::<TB>(&X, 4),
            t2::<TB>(&X, 4),
            1.0,
            ClassReduction::Sum,
            None,
            None,
        );
        assert_close(&[scalar(l)], &[0.0], 1e-6);
    }
}
