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

type A = burn::backend::Autodiff<Flex>;
type C = burn::backend::Autodiff<Cuda>;

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap()
}

fn rel(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

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
    type Op<B> = Box<dyn Fn(Tensor<B, 4>) -> (Tensor<B, 4>, Vec<Tensor<B, 4>>)>;
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
    let cases: Vec<(&str, [usize; 4], Op<A>, Op<C>)> = vec![
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
        if errs.iter().any(|e| !(*e <= 1e-3)) {
            bad.push(name);
        }
    }
    assert!(bad.is_empty(), "backward differs: {bad:?}");
}
