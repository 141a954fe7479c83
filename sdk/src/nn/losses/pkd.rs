//! PKD feature distillation (per-channel standardised MSE) and CrossKD's statistic
//! alignment, which share the per-channel statistics.

use burn::tensor::{backend::Backend, Tensor};

use crate::nn::layers::repeat_over_batch;

/// eps added to the per-channel std (PKD standardisation and CrossKD alignment).
pub const STD_EPS: f32 = 1e-6;

/// Per-channel mean and UNBIASED std (divide by `n − 1`) of `[N, C, H, W]` over `(N, H, W)`,
/// each returned as `[1, C, 1, 1]` so they broadcast against the feature.
///
/// Why the variance floor: torch's `std` has an infinite derivative at 0, so a constant
/// channel gives NaN gradients in PyTorch. Here the variance is clamped at 1e-24 before the
/// square root, which changes the std only when it is below 1e-12 (invisible next to the
/// 1e-6 eps) and gives a zero instead of a NaN gradient for constant channels.
///
/// With a single element per channel (`N·H·W = 1`, e.g. a 1×1 P7 with batch 1) the
/// unbiased std is undefined (torch gives NaN, which would poison the whole loss); the
/// std is then 0, so the standardised feature is 0 instead.
pub fn channel_mean_std<B: Backend>(feat: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 4>) {
    let [n, c, h, w] = feat.dims();
    let flat = feat.swap_dims(0, 1).reshape([c, n * h * w]);
    let mean = flat.clone().mean_dim(1);
    let var = flat
        .sub(mean.clone())
        .square()
        .sum_dim(1)
        .div_scalar((n * h * w).saturating_sub(1).max(1) as f32);
    let std = var.clamp_min(1e-24).sqrt();
    (mean.reshape([1, c, 1, 1]), std.reshape([1, c, 1, 1]))
}

/// Per-channel standardisation `Z = (F − μ_c) / (σ_c + 1e-6)` over `(N, H, W)` with unbiased
/// σ; gradients flow through μ and σ.
pub fn channel_standardise<B: Backend>(feat: Tensor<B, 4>) -> Tensor<B, 4> {
    let n = feat.dims()[0];
    let (mean, std) = channel_mean_std(feat.clone());
    let (mean, std) = (repeat_over_batch(mean, n), repeat_over_batch(std, n));
    feat.sub(mean).div(std.add_scalar(STD_EPS))
}

/// PKD loss of one FPN level: mean over all `N·C·H·W` elements of `½(Z_s − Z_t)²`
/// (`= mse(Z_s, Z_t) / 2`), teacher detached. Multiply by the config's `loss_weight` and sum
/// over levels at the call site.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use crosskd_sdk::nn::losses::pkd_loss;
/// let dev = Default::default();
/// let s = Tensor::<Flex, 4>::from_floats([[[[1.0, 2.0], [3.0, 4.0]]]], &dev);
/// // an affine copy (positive scale) has identical standardisation → loss ≈ 0
/// let t = s.clone().mul_scalar(3.0).add_scalar(7.0);
/// assert!(pkd_loss(s, t).into_scalar() < 1e-10);
/// ```
pub fn pkd_loss<B: Backend>(student: Tensor<B, 4>, teacher: Tensor<B, 4>) -> Tensor<B, 1> {
    assert_eq!(
        student.dims(),
        teacher.dims(),
        "PKD needs equal student/teacher feature shapes"
    );
    let zs = channel_standardise(student);
    let zt = channel_standardise(teacher.detach());
    zs.sub(zt).square().mean().mul_scalar(0.5)
}

/// CrossKD statistic alignment (spec §1.4): `(S − μ_S)/(σ_S + 1e-6)·σ_T + μ_T`, per channel
/// over `(N, H, W)`, unbiased std, eps on the student std only. The teacher statistics are
/// constants (teacher detached); gradients flow through μ_S and σ_S into the student.
///
/// Channel counts must match; spatial sizes may differ (statistics are per channel).
pub fn align_to<B: Backend>(student: Tensor<B, 4>, teacher: Tensor<B, 4>) -> Tensor<B, 4> {
    assert_eq!(
        student.dims()[1],
        teacher.dims()[1],
        "statistic alignment needs equal channel counts"
    );
    let n = student.dims()[0];
    let (mean_t, std_t) = channel_mean_std(teacher.detach());
    channel_standardise(student)
        .mul(repeat_over_batch(std_t, n))
        .add(repeat_over_batch(mean_t, n))
}

#[cfg(test)]
// Reference values are pasted from float64 output; f32 rounds them, which is intended.
#[allow(clippy::excessive_precision)]
mod tests {
    use super::*;
    use crate::nn::losses::test_util::*;

    // Reference (torch float64, no mmdet), features [2, 2, 2, 2] (row-major N, C, H, W):
    //   norm(f): g = f.permute(1,0,2,3).reshape(C,−1); (g − g.mean(−1))/(g.std(−1) + 1e−6)
    //   pkd = F.mse_loss(norm(S), norm(T)) / 2;  pkd.backward()
    //   align = norm(S)·T_std + T_mean (T stats constants); grad of Σ align·coef,
    //   coef = arange(16)/10 − 0.7
    const S: [f32; 16] = [
        0.3, -1.2, 0.8, 2.0, 0.5, 0.1, -0.7, 1.1, -0.4, 0.9, 1.6, -2.1, 0.0, 0.6, -1.3, 0.2,
    ];
    const T: [f32; 16] = [
        1.0, 0.2, -0.5, 0.4, 2.2, -1.0, 0.3, 0.7, 0.9, -0.3, 0.1, 1.8, -0.6, 1.4, 0.5, -0.2,
    ];

    #[test]
    fn standardisation_uses_unbiased_std() {
        let z = channel_standardise(tn::<TB, 4>(&S, [2, 2, 2, 2]));
        assert_close(
            &vals(z),
            &[
                0.044_742_81,
                -1.029_084_6,
                0.402_685_28,
                1.261_747_2,
                0.577_405_6,
                0.049_491_91,
                -1.006_335_5,
                1.369_276_2,
                -0.456_376_65,
                0.474_273_78,
                0.975_393_2,
                -1.673_381_1,
                -0.082_486_52,
                0.709_384_05,
                -1.798_206_1,
                0.181_470_34,
            ],
            1e-5,
        );
        // Hand check of a tiny case: channel values [1, 2, 3, 4]: mean 2.5, unbiased
        // std √(5/3) = 1.290994 → z(1) = −1.5/1.290995 = −1.161895
        let z = channel_standardise(tn::<TB, 4>(&[1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2]));
        assert_close(&vals(z)[..1], &[-1.161_895], 1e-5);
    }

    #[test]
    fn pkd_value_and_gradient_match_torch_teacher_gets_none() {
        let s = tn::<AD, 4>(&S, [2, 2, 2, 2]).require_grad();
        let t = tn::<AD, 4>(&T, [2, 2, 2, 2]).require_grad();
        let loss = pkd_loss(s.clone(), t.clone());
        assert_close(&[scalar(loss.clone())], &[1.032_114_1], 1e-5);
        let grads = loss.backward();
        assert_close(
            &vals(s.grad(&grads).unwrap()),
            &[
                -0.033_896_894,
                0.043_842_017,
                0.045_019_94,
                -0.032_598_973,
                -0.127_967_67,
                0.112_421_864,
                -0.013_619_247,
                0.007_937_269,
                -0.013_837_686,
                0.031_134_493,
                -0.006_726_002,
                -0.032_936_895,
                0.077_949_87,
                -0.061_972_546,
                -0.047_074_024,
                0.052_324_48,
            ],
            1e-5,
        );
        assert!(t.grad(&grads).is_none());
    }

    #[test]
    fn align_to_value_and_gradient_match_torch() {
        let s = tn::<AD, 4>(&S, [2, 2, 2, 2]).require_grad();
        let t = tn::<AD, 4>(&T, [2, 2, 2, 2]).require_grad();
        let aligned = align_to(s.clone(), t.clone());
        assert_close(
            &vals(aligned.clone()),
            &[
                0.483_737_72,
                -0.325_967_62,
                0.753_639_5,
                1.401_403_8,
                1.016_858,
                0.464_302_1,
                -0.640_809_7,
                1.845_691_8,
                0.105_875_23,
                0.807_619_86,
                1.185_482_4,
                -0.811_790_8,
                0.326_163_14,
                1.154_997,
                -1.469_643_5,
                0.602_441_1,
            ],
            1e-5,
        );
        let coef: Vec<f32> = (0..16).map(|i| i as f32 / 10.0 - 0.7).collect();
        let objective = aligned.mul(tn::<AD, 4>(&coef, [2, 2, 2, 2])).sum();
        let grads = objective.backward();
        assert_close(
            &vals(s.grad(&grads).unwrap()),
            &[
                -0.295_348_18,
                -0.278_418_47,
                -0.175_037_26,
                -0.091_416_385,
                -0.667_277_96,
                -0.613_697_97,
                -0.644_676_97,
                -0.126_022_56,
                0.119_204_37,
                0.205_295_28,
                0.276_565_94,
                0.239_154_7,
                0.332_135_1,
                0.597_112_54,
                0.333_596_33,
                0.788_831_5,
            ],
            1e-5,
        );
        assert!(t.grad(&grads).is_none(), "teacher statistics are constants");
    }

    #[test]
    fn constant_channel_gives_finite_values_and_gradients() {
        // Channel 0 constant 5 → std floored → Z = 0; no NaN in value or gradient.
        let mut v = vec![5.0f32; 4];
        v.extend_from_slice(&[1.0, 2.0, 3.0, 4.0]);
        let s = tn::<AD, 4>(&v, [1, 2, 2, 2]).require_grad();
        let t = tn::<AD, 4>(&T[..8], [1, 2, 2, 2]);
        let loss = pkd_loss(s.clone(), t.clone()).add(align_to(s.clone(), t).sum());
        assert_finite(&[scalar(loss.clone())]);
        assert_finite(&vals(s.grad(&loss.backward()).unwrap()));
    }
}
