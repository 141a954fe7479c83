//! Op-level gradient parity, CUDA vs burn-flex, for the layers a ResNet
//! backbone is made of (conv of each kernel/stride, max-pool, eval BatchNorm,
//! residual add, nearest upsample): pinpoints which backward differs when
//! `cuda_parity` reports wrong backbone gradients. Needs `--features cuda` and a GPU.
#![cfg(feature = "cuda")]

use burn::nn::conv::Conv2dConfig;
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use crosskd_trainer::backend::{Cuda, Flex};
use crosskd_trainer::model::layers::EvalBatchNorm2dConfig;

mod cuda_compare;
use cuda_compare::{exceeds, host, rel};

type A = burn::backend::Autodiff<Flex>;
type C = burn::backend::Autodiff<Cuda>;

/// One op under test, built for a backend: maps the input to the output and the
/// parameter leaves whose gradients are compared.
type Op<B> = Box<dyn Fn(Tensor<B, 4>) -> (Tensor<B, 4>, Vec<Tensor<B, 4>>)>;

/// A named case: input shape, the op on flex and on CUDA.
type Case = (&'static str, [usize; 4], Op<A>, Op<C>);

/// `op` on a fixed input; returns (output, d input, d params...) on the host.
fn grads<B: burn::tensor::backend::AutodiffBackend>(
    x: &[f32],
    shape: [usize; 4],
    op: &dyn Fn(Tensor<B, 4>) -> (Tensor<B, 4>, Vec<Tensor<B, 4>>),
) -> Vec<Vec<f32>> {
    let dev = Default::default();
    let x = Tensor::<B, 4>::from_data(TensorData::new(x.to_vec(), shape), &dev).require_grad();
    let (y, params) = op(x.clone());
    let n = y.shape().num_elements();
    let r: Vec<f32> = (0..n)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let r = Tensor::<B, 4>::from_data(TensorData::new(r, y.shape()), &dev);
    let g = (y.clone() * r).sum().backward();
    let mut out = vec![host(y), host(x.grad(&g).unwrap())];
    for p in params {
        out.push(p.grad(&g).map(host).unwrap_or_default());
    }
    out
}

#[test]
fn cuda_backward_matches_flex_per_op() {
    fn conv<B: Backend>(cin: usize, cout: usize, k: usize, s: usize, p: usize) -> Op<B> {
        Box::new(move |x| {
            let mut c = Conv2dConfig::new([cin, cout], [k, k])
                .with_stride([s, s])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .with_bias(false)
                .init::<B>(&Default::default());
            // The same weights on both backends (their RNGs differ).
            let n = cout * cin * k * k;
            let v: Vec<f32> = (0..n)
                .map(|i| ((i * 31 % 97) as f32 / 97.0) - 0.5)
                .collect();
            let w = Tensor::<B, 4>::from_data(
                TensorData::new(v, [cout, cin, k, k]),
                &Default::default(),
            )
            .require_grad();
            c.weight = burn::module::Param::from_tensor(w.clone());
            (c.forward(x), vec![w])
        })
    }
    let cases: Vec<Case> = vec![
        (
            "conv 1x1 s1",
            [2, 8, 12, 12],
            conv(8, 16, 1, 1, 0),
            conv(8, 16, 1, 1, 0),
        ),
        (
            "conv 3x3 s1 p1",
            [2, 8, 12, 12],
            conv(8, 16, 3, 1, 1),
            conv(8, 16, 3, 1, 1),
        ),
        (
            "conv 3x3 s2 p1",
            [2, 8, 12, 12],
            conv(8, 16, 3, 2, 1),
            conv(8, 16, 3, 2, 1),
        ),
        (
            "conv 1x1 s2",
            [2, 8, 12, 12],
            conv(8, 16, 1, 2, 0),
            conv(8, 16, 1, 2, 0),
        ),
        (
            "conv 7x7 s2 p3",
            [2, 3, 24, 24],
            conv(3, 8, 7, 2, 3),
            conv(3, 8, 7, 2, 3),
        ),
        (
            "max_pool 3x3 s2 p1",
            [2, 8, 12, 12],
            Box::new(|x| {
                let m = MaxPool2dConfig::new([3, 3])
                    .with_strides([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1));
                (m.init().forward(x), vec![])
            }),
            Box::new(|x| {
                let m = MaxPool2dConfig::new([3, 3])
                    .with_strides([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1));
                (m.init().forward(x), vec![])
            }),
        ),
        (
            "eval batch norm",
            [2, 8, 6, 6],
            Box::new(|x| {
                (
                    EvalBatchNorm2dConfig::new(8)
                        .init(&Default::default())
                        .forward(x),
                    vec![],
                )
            }),
            Box::new(|x| {
                (
                    EvalBatchNorm2dConfig::new(8)
                        .init(&Default::default())
                        .forward(x),
                    vec![],
                )
            }),
        ),
        (
            "relu + residual add",
            [2, 8, 6, 6],
            Box::new(|x| (burn::tensor::activation::relu(x.clone()) + x, vec![])),
            Box::new(|x| (burn::tensor::activation::relu(x.clone()) + x, vec![])),
        ),
        (
            "nearest upsample x2",
            [2, 8, 6, 6],
            Box::new(|x| {
                (
                    interpolate(
                        x,
                        [12, 12],
                        InterpolateOptions::new(InterpolateMode::Nearest),
                    ),
                    vec![],
                )
            }),
            Box::new(|x| {
                (
                    interpolate(
                        x,
                        [12, 12],
                        InterpolateOptions::new(InterpolateMode::Nearest),
                    ),
                    vec![],
                )
            }),
        ),
    ];
    let mut bad = Vec::new();
    for (name, shape, a, c) in cases {
        let n: usize = shape.iter().product();
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let ga = grads::<A>(&x, shape, &a);
        let gc = grads::<C>(&x, shape, &c);
        let errs: Vec<f32> = ga.iter().zip(&gc).map(|(p, q)| rel(q, p)).collect();
        eprintln!(
            "{name:>22}: output {:.1e}, d input {:.1e}, d params {:?}",
            errs[0],
            errs[1],
            &errs[2..]
        );
        if errs.iter().any(|e| exceeds(*e, 1e-3)) {
            bad.push(name);
        }
    }
    // burn 0.21's CUDA input gradient of a strided 1×1 conv is wrong (measured on an
    // H200 and an H100); the ResNet avoids it (`conv_forward`). When this starts to
    // agree, the workaround can go.
    assert_eq!(
        bad,
        ["conv 1x1 s2"],
        "backward differs from the known set (burn's 1x1 s2 only)"
    );
}

/// `conv2d` with fixed weights `[cout, cin, k, k]` (no bias), returning the weight
/// to read its gradient.
fn raw_conv<B: Backend>(
    k: usize,
    s: usize,
    p: usize,
    cin: usize,
    cout: usize,
) -> impl Fn(Tensor<B, 4>) -> (Tensor<B, 4>, Vec<Tensor<B, 4>>) {
    move |x| {
        let v: Vec<f32> = (0..cout * cin * k * k)
            .map(|i| ((i * 31 % 97) as f32 / 97.0) - 0.5)
            .collect();
        let wt = Tensor::from_data(TensorData::new(v, [cout, cin, k, k]), &Default::default())
            .require_grad();
        let y = burn::tensor::module::conv2d(
            x,
            wt.clone(),
            None,
            burn::tensor::ops::ConvOptions::new([s, s], [p, p], [1, 1], 1),
        );
        (y, vec![wt])
    }
}

/// Conv backward across the shapes a detector at test and training sizes meets
/// (maps down to 1×1, odd sizes, batch 2 and 8, narrow and wide channels): burn's
/// CUDA conv backward is autotuned per shape class, so one shape passing says
/// little about another. Reports every case, then fails if any differs.
#[test]
fn cuda_conv_backward_shape_sweep() {
    let mut bad = Vec::new();
    for (k, s, p) in [(1usize, 1usize, 0usize), (3, 1, 1), (3, 2, 1)] {
        for n in [2usize, 8] {
            for (cin, cout) in [(16usize, 16usize), (128, 16), (64, 128)] {
                for (h, w) in [(20usize, 20usize), (12, 8), (5, 5), (3, 2), (2, 1), (1, 1)] {
                    let shape = [n, cin, h, w];
                    let len: usize = shape.iter().product();
                    let x: Vec<f32> = (0..len)
                        .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
                        .collect();
                    let ga = grads::<A>(&x, shape, &raw_conv::<A>(k, s, p, cin, cout));
                    let gc = grads::<C>(&x, shape, &raw_conv::<C>(k, s, p, cin, cout));
                    let errs: Vec<f32> = ga.iter().zip(&gc).map(|(a, c)| rel(c, a)).collect();
                    let name = format!("{k}x{k} s{s} p{p} x[{n},{cin},{h},{w}] -> {cout}");
                    let flag = if errs.iter().any(|e| exceeds(*e, 1e-3)) {
                        bad.push(name.clone());
                        "  <-- DIFFERS"
                    } else {
                        ""
                    };
                    eprintln!(
                        "{name:>36}: output {:.1e}, d input {:.1e}, d weight {:.1e}{flag}",
                        errs[0], errs[1], errs[2]
                    );
                }
            }
        }
    }
    assert!(bad.is_empty(), "{} shapes differ: {bad:?}", bad.len());
}

/// The non-conv ops of the detector's backward at the shapes of `cuda_parity`'s
/// detector (96×64 input: C5 is 3×2, non-square): nearest ×2 upsampling of the
/// FPN's top-down path, eval BatchNorm with its affine gradients, the ResNet
/// downsample through `conv_forward` (subsample + 1×1), a residual add.
#[test]
fn cuda_detector_ops_at_detector_shapes() {
    fn up<B: Backend>(h: usize, w: usize) -> Op<B> {
        Box::new(move |x| {
            let o = InterpolateOptions::new(InterpolateMode::Nearest);
            (interpolate(x, [h, w], o), vec![])
        })
    }
    fn bn<B: Backend>(c: usize) -> Op<B> {
        Box::new(move |x| {
            let dev = Default::default();
            let mut m = EvalBatchNorm2dConfig::new(c).init::<B>(&dev);
            let v = |s: f32| -> Vec<f32> { (0..c).map(|i| s + i as f32 * 0.1).collect() };
            // 4-D leaves (what `grads` reads), reshaped for the module.
            let leaf = |s: f32| {
                Tensor::<B, 4>::from_data(TensorData::new(v(s), [1, c, 1, 1]), &dev).require_grad()
            };
            let (gamma, beta) = (leaf(0.5), leaf(-0.2));
            // `Param::from_tensor` would mark the reshaped (non-leaf) tensor as a leaf,
            // which autodiff refuses; `initialized` keeps it tracked back to the leaves.
            let param = |t: Tensor<B, 4>| {
                burn::module::Param::initialized(burn::module::ParamId::new(), t.reshape([c]))
            };
            m.gamma = param(gamma.clone());
            m.beta = param(beta.clone());
            (m.forward(x), vec![gamma, beta])
        })
    }
    fn ds<B: Backend>(cin: usize, cout: usize) -> Op<B> {
        Box::new(move |x| {
            let dev = Default::default();
            let mut conv = crosskd_sdk::nn::layers::conv2d::<B>(
                [cin, cout],
                1,
                2,
                0,
                None,
                crosskd_sdk::nn::layers::ConvInit::Normal(0.1),
                &dev,
            );
            let v: Vec<f32> = (0..cout * cin)
                .map(|i| ((i * 31 % 97) as f32 / 97.0) - 0.5)
                .collect();
            let w = Tensor::<B, 4>::from_data(TensorData::new(v, [cout, cin, 1, 1]), &dev)
                .require_grad();
            conv.weight = burn::module::Param::from_tensor(w.clone());
            (crosskd_sdk::nn::layers::conv_forward(&conv, x), vec![w])
        })
    }
    // The same, followed by a 3×3 conv: the gradient reaching the upsampling is then
    // channels-last in memory (the conv backward's layout), as in the FPN.
    fn up_conv<B: Backend>(h: usize, w: usize, ours: bool) -> Op<B> {
        Box::new(move |x| {
            let c = x.dims()[1];
            let y = if ours {
                crosskd_sdk::nn::neck::upsample_nearest(x, [h, w])
            } else {
                interpolate(x, [h, w], InterpolateOptions::new(InterpolateMode::Nearest))
            };
            let v: Vec<f32> = (0..c * c * 9)
                .map(|i| ((i * 31 % 97) as f32 / 97.0) - 0.5)
                .collect();
            let wt = Tensor::<B, 4>::from_data(TensorData::new(v, [c, c, 3, 3]), &y.device());
            let opts = burn::tensor::ops::ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
            (burn::tensor::module::conv2d(y, wt, None, opts), vec![])
        })
    }
    let cases: Vec<Case> = vec![
        (
            "interpolate 3x2 -> 6x4 + conv",
            [2, 16, 3, 2],
            up_conv(6, 4, false),
            up_conv(6, 4, false),
        ),
        (
            "interpolate 6x6 -> 12x12 + conv",
            [2, 8, 6, 6],
            up_conv(12, 12, false),
            up_conv(12, 12, false),
        ),
        (
            "ours 3x2 -> 6x4 + conv",
            [2, 16, 3, 2],
            up_conv(6, 4, true),
            up_conv(6, 4, true),
        ),
        (
            "ours 5x5 -> 10x10 + conv",
            [8, 32, 5, 5],
            up_conv(10, 10, true),
            up_conv(10, 10, true),
        ),
        ("upsample 3x2 -> 6x4", [2, 16, 3, 2], up(6, 4), up(6, 4)),
        ("upsample 6x4 -> 12x8", [2, 16, 6, 4], up(12, 8), up(12, 8)),
        (
            "upsample 5x5 -> 10x10",
            [8, 32, 5, 5],
            up(10, 10),
            up(10, 10),
        ),
        ("eval bn [2,16,12,8]", [2, 16, 12, 8], bn(16), bn(16)),
        ("eval bn [8,64,5,5]", [8, 64, 5, 5], bn(64), bn(64)),
        (
            "ds 1x1 s2 [2,16,24,16]",
            [2, 16, 24, 16],
            ds(16, 32),
            ds(16, 32),
        ),
        (
            "ds 1x1 s2 [2,64,6,4]",
            [2, 64, 6, 4],
            ds(64, 128),
            ds(64, 128),
        ),
        (
            "ds 1x1 s2 [8,32,5,5]",
            [8, 32, 5, 5],
            ds(32, 64),
            ds(32, 64),
        ),
    ];
    let mut bad = Vec::new();
    for (name, shape, a, c) in cases {
        let n: usize = shape.iter().product();
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let ga = grads::<A>(&x, shape, &a);
        let gc = grads::<C>(&x, shape, &c);
        let errs: Vec<f32> = ga.iter().zip(&gc).map(|(p, q)| rel(q, p)).collect();
        let flag = if errs.iter().any(|e| exceeds(*e, 1e-3)) {
            bad.push(name);
            "  <-- DIFFERS"
        } else {
            ""
        };
        eprintln!(
            "{name:>24}: output {:.1e}, d input {:.1e}, d params {:?}{flag}",
            errs[0],
            errs[1],
            &errs[2..]
        );
    }
    assert!(bad.is_empty(), "backward differs: {bad:?}");
}
