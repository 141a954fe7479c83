//! Per-channel tensors laid out for fast broadcasting against a batch.
//!
//! burn-flex runs `x[N, C, H, W] ⊙ v[1, C, 1, 1]` through its SIMD broadcast
//! kernel only when the right-hand side's non-broadcast dims are contiguous,
//! which with `N > 1` they are not: the op then falls back to a scalar strided
//! iterator, 8–20× slower (measured on `[8, 32, 20, 20]` and `[8, 64, 40, 40]`,
//! forward + backward). Repeating the `C` values `N` times (a few hundred floats)
//! gives `[N, C, 1, 1]`, which takes the fast path, with bit-identical results.
//! BatchNorm, GroupNorm's affine and the per-channel statistics of PKD and
//! CrossKD's alignment all go through here.

use burn::nn::GroupNorm;
use burn::prelude::*;

/// `v` (`[1, C, 1, 1]`) repeated to `[n, C, 1, 1]`; `v` itself when `n == 1`.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use crosskd_sdk::nn::layers::repeat_over_batch;
/// let dev = Default::default();
/// let v = Tensor::<Flex, 1>::from_floats([1.0, 2.0], &dev).reshape([1, 2, 1, 1]);
/// assert_eq!(repeat_over_batch(v, 3).dims(), [3, 2, 1, 1]);
/// ```
pub fn repeat_over_batch<B: Backend>(v: Tensor<B, 4>, n: usize) -> Tensor<B, 4> {
    if n <= 1 {
        v
    } else {
        v.repeat_dim(0, n)
    }
}

/// A per-channel vector `[C]` as `[n, C, 1, 1]`, ready to combine with an `[n, C, H, W]`
/// feature.
pub fn channel_vector<B: Backend>(v: Tensor<B, 1>, n: usize) -> Tensor<B, 4> {
    let c = v.dims()[0];
    repeat_over_batch(v.reshape([1, c, 1, 1]), n)
}

/// GroupNorm of an `[N, C, H, W]` feature with `gn`'s groups, epsilon and affine
/// parameters: the same arithmetic as `GroupNorm::forward` (biased variance over each
/// group's `C/G·H·W` values), with the affine step laid out for the fast broadcast.
pub fn group_norm<B: Backend>(gn: &GroupNorm<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let g = gn.num_groups;
    let hidden = c / g * h * w;
    let grouped = x.reshape([n, g, hidden]);
    let mean = grouped.clone().sum_dim(2) / hidden as f64;
    let centred = grouped.sub(mean);
    let var = centred.clone().square().sum_dim(2) / hidden as f64;
    let normalised = centred
        .div(var.add_scalar(gn.epsilon).sqrt())
        .reshape([n, c, h, w]);
    match (&gn.gamma, &gn.beta) {
        (Some(gamma), Some(beta)) if gn.affine => {
            normalised.mul(channel_vector(gamma.val(), n)) + channel_vector(beta.val(), n)
        }
        _ => normalised,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::module::Param;
    use burn::nn::GroupNormConfig;
    use burn::tensor::Distribution;

    type AD = Autodiff<Flex>;

    /// Values must be those of burn's own GroupNorm bit for bit (the same operations
    /// run in the same order, only the broadcast layout differs), input gradients too
    /// up to summation order.
    #[test]
    fn group_norm_matches_burns_exactly_with_gradients() {
        let dev = Default::default();
        let mut gn = GroupNormConfig::new(4, 8).init::<AD>(&dev);
        gn.gamma = Some(Param::from_tensor(
            Tensor::random([8], Distribution::Normal(1.0, 0.5), &dev).require_grad(),
        ));
        gn.beta = Some(Param::from_tensor(
            Tensor::random([8], Distribution::Normal(0.0, 0.5), &dev).require_grad(),
        ));
        for n in [1, 3] {
            let x =
                Tensor::<AD, 4>::random([n, 8, 5, 3], Distribution::Default, &dev).require_grad();
            let coef = Tensor::<AD, 4>::random([n, 8, 5, 3], Distribution::Default, &dev);
            // Two independent graphs: a backward pass frees the nodes it walked.
            let x2 = Tensor::<AD, 4>::from_data(x.to_data(), &dev).require_grad();
            let ours = group_norm(&gn, x.clone());
            let burns = gn.forward(x2.clone());
            ours.clone()
                .into_data()
                .assert_eq(&burns.clone().into_data(), true);
            let g_ours = (ours * coef.clone()).sum().backward();
            let g_burn = (burns * coef).sum().backward();
            x.grad(&g_ours)
                .unwrap()
                .into_data()
                .assert_approx_eq::<f32>(
                    &x2.grad(&g_burn).unwrap().into_data(),
                    burn::tensor::Tolerance::absolute(1e-6),
                );
        }
    }

    #[test]
    fn channel_vector_broadcasts_per_channel() {
        let dev = Default::default();
        let x = Tensor::<Flex, 4>::ones([2, 3, 1, 2], &dev);
        let v = Tensor::<Flex, 1>::from_floats([1.0, 2.0, 3.0], &dev);
        let y: Vec<f32> = (x * channel_vector(v, 2)).into_data().to_vec().unwrap();
        assert_eq!(
            y,
            [1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
        );
    }
}
