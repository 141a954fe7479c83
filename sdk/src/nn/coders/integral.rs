//! GFL `Integral`: expected value of the per-side discrete distance distribution.

use burn::tensor::{activation::softmax, backend::Backend, Tensor};

/// Turns box-distribution logits `[M, 4·(R+1)]` into distances `[M, 4]` (bin units).
///
/// Layout is side-major, as the `gfl_reg` conv output flattened per location: bins
/// `0..=R` of left, then of top, right, bottom. Each side: `Σ_j softmax(logits)_j · j`.
/// Multiply by the stride to get pixels.
///
/// # Panics
/// If the second dimension is not `4·(reg_max + 1)`.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use crosskd_sdk::nn::coders::integral;
/// let dev = Default::default();
/// // uniform logits over 0..=16 → expectation 8 on every side
/// let d = integral(Tensor::<Flex, 2>::zeros([1, 68], &dev), 16);
/// assert!(d.into_data().to_vec::<f32>().unwrap().iter().all(|v| (v - 8.0).abs() < 1e-5));
/// ```
pub fn integral<B: Backend>(logits: Tensor<B, 2>, reg_max: usize) -> Tensor<B, 2> {
    let [m, k] = logits.dims();
    let bins = reg_max + 1;
    assert_eq!(
        k,
        4 * bins,
        "expected [M, 4·(reg_max+1)] = [{m}, {}], got [{m}, {k}]",
        4 * bins
    );
    let device = logits.device();
    let project = Tensor::<B, 1>::from_floats(
        (0..bins).map(|j| j as f32).collect::<Vec<_>>().as_slice(),
        &device,
    )
    .reshape([1, bins]);
    softmax(logits.reshape([m * 4, bins]), 1)
        .mul(project)
        .sum_dim(1)
        .reshape([m, 4])
}

#[cfg(test)]
// Reference values are pasted from float64 output; f32 rounds them, which is intended.
#[allow(clippy::excessive_precision)]
mod tests {
    use super::*;
    use crate::nn::losses::test_util::*;

    // Reference (torch float64, no mmdet): out = (softmax(lg.reshape(−1, 5), 1) @ arange(5))
    // .reshape(−1, 4); gradient of Σ out·(1, −2, 0.5, 3).
    const LG: [f32; 20] = [
        0.1, 0.5, -0.3, 1.2, 0.0, 2.0, -1.0, 0.3, 0.3, 0.5, -0.4, 0.2, 0.9, -1.1, 0.6, 0.0, 0.0,
        0.0, 0.0, 0.0,
    ];

    #[test]
    fn values_and_gradient_match_torch() {
        let lg = t2::<AD>(&LG, 20).require_grad();
        let out = integral(lg.clone(), 4);
        // last side uniform: (0+1+2+3+4)/5 = 2
        assert_close(
            &vals(out.clone()),
            &[2.186_959_2, 1.132_724_9, 2.217_491_1, 2.0],
            1e-5,
        );
        let coef = t2::<AD>(&[1.0, -2.0, 0.5, 3.0], 4);
        let g = vals(lg.grad(&out.mul(coef).sum().backward()).unwrap());
        assert_close(
            &g,
            &[
                -0.309_279_22,
                -0.250_416_9,
                -0.017_723_076,
                0.345_419_1,
                0.232_000_11,
                1.382_818_4,
                0.008_066_954,
                -0.193_418_05,
                -0.416_436_16,
                -0.781_031_2,
                -0.114_229_68,
                -0.114_277_19,
                -0.041_109_425,
                0.020_017_057,
                0.249_599_24,
                -1.2,
                -0.6,
                0.0,
                0.6,
                1.2,
            ],
            1e-5,
        );
    }

    #[test]
    fn peaked_logits_and_extremes() {
        // A +50 logit on bin 3 (others 0) → ≈ 3 exactly; ±50 mixed stays finite.
        let mut v = vec![0.0f32; 20];
        v[3] = 50.0; // side 0 → 3
        v[5] = 50.0; // side 1 → 0
        v[14] = 50.0; // side 2 → 4
        v[15] = -50.0; // side 3: bin 0 suppressed → (1+2+3+4)/4 = 2.5
        let out = integral(t2::<TB>(&v, 20), 4);
        assert_close(&vals(out), &[3.0, 0.0, 4.0, 2.5], 1e-5);
    }
}
