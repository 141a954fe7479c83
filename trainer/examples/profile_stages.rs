//! Where does a detector's forward + backward time go on burn-flex?
//!
//! Times, on the same input as `crosskd bench train-step`:
//!
//! * stages: backbone, FPN, head towers (per level), predictors (per level),
//!   each forward (autodiff graph built) and backward (gradient of Σ out² with
//!   respect to the stage's parameters and its input, input detached from the
//!   earlier stages so every backward is counted once);
//! * ops: the 3×3 256→256 tower conv on P3 (forward, input gradient = the
//!   `conv_transpose2d` burn-backend uses, weight gradient = burn-backend's
//!   swapped-dims `conv2d`) with achieved GFLOP/s, GroupNorm(32, 256) as
//!   `burn::nn::GroupNorm` and as a cheaper formulation, nearest 2× upsampling,
//!   the eval BatchNorm;
//! * `--params`: parameter counts of the four detectors (to check a reference
//!   implementation against).
//!
//! ```text
//! cargo run -p crosskd-trainer --example profile_stages -- --detector gfl --iters 3
//! cargo run -p crosskd-trainer --example profile_stages -- --params
//! ```

use std::time::Instant;

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::{GroupNorm, GroupNormConfig};
use burn::prelude::*;
use burn::tensor::module::{conv2d, conv_transpose2d, interpolate};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, InterpolateMode, InterpolateOptions};
use burn::tensor::Distribution;
use crosskd_sdk::HeadKind;
use crosskd_trainer::backend::{set_cpu_threads, Flex, FlexAutodiff};
use crosskd_trainer::model::detector::{Detector, DetectorConfig};
use crosskd_trainer::model::heads::{DenseHead, LevelOutput};
use crosskd_trainer::model::layers::{EvalBatchNorm2d, EvalBatchNorm2dConfig};

type Ad = FlexAutodiff;

struct Args {
    detector: HeadKind,
    depth: usize,
    size: usize,
    batch: usize,
    warmup: usize,
    iters: usize,
    threads: usize,
    params: bool,
    stages: bool,
    ops: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        detector: HeadKind::Gfl,
        depth: 18,
        size: 320,
        batch: 2,
        warmup: 1,
        iters: 3,
        threads: 2,
        params: false,
        stages: true,
        ops: true,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let val = || argv.get(i + 1).cloned().unwrap_or_default();
        let num = || val().parse::<usize>().expect("numeric argument");
        match argv[i].as_str() {
            "--detector" => {
                a.detector = match val().as_str() {
                    "gfl" => HeadKind::Gfl,
                    "retinanet" => HeadKind::RetinaNet,
                    "fcos" => HeadKind::Fcos,
                    "atss" => HeadKind::Atss,
                    d => panic!("unknown detector {d}"),
                }
            }
            "--backbone" => a.depth = val().trim_start_matches('r').parse().expect("r18/r50"),
            "--size" => a.size = num(),
            "--batch" => a.batch = num(),
            "--warmup" => a.warmup = num(),
            "--iters" => a.iters = num().max(1),
            "--threads" => a.threads = num(),
            "--params" => {
                a.params = true;
                i += 1;
                continue;
            }
            "--stages-only" => {
                a.ops = false;
                i += 1;
                continue;
            }
            "--ops-only" => {
                a.stages = false;
                i += 1;
                continue;
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    a
}

/// Median wall time in ms of `f` over `iters` runs after `warmup` runs.
fn median_ms(warmup: usize, iters: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..warmup {
        f();
    }
    let mut v: Vec<f64> = (0..iters)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

// ---------------------------------------------------------------- params

/// Counts parameter elements: all, trainable, BN running statistics.
#[derive(Default)]
struct Counter {
    path: Vec<String>,
    total: usize,
    trainable: usize,
    bn_stats: usize,
}

impl<B: Backend> ModuleVisitor<B> for Counter {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let n = param.shape().num_elements();
        let name = self.path.last().map(String::as_str).unwrap_or("");
        if name == "running_mean" || name == "running_var" {
            self.bn_stats += n;
        } else {
            self.total += n;
            if param.is_require_grad() {
                self.trainable += n;
            }
        }
    }
}

fn count<B: Backend, M: Module<B>>(m: &M) -> Counter {
    let mut c = Counter::default();
    m.visit(&mut c);
    c
}

fn print_params(depth: usize) {
    println!("parameters (BN running stats counted apart, as PyTorch buffers):");
    println!(
        "  {:<10} {:>10} {:>10} {:>8} {:>10} {:>9} {:>9}",
        "detector", "params", "trainable", "bn_stats", "backbone", "neck", "head"
    );
    for kind in [
        HeadKind::Gfl,
        HeadKind::RetinaNet,
        HeadKind::Fcos,
        HeadKind::Atss,
    ] {
        let det = DetectorConfig::preset(kind, depth, 80)
            .init::<Ad>(&Default::default())
            .expect("preset is valid");
        let all = count::<Ad, _>(&det);
        let (bb, neck, head) = (
            count::<Ad, _>(&det.backbone),
            count::<Ad, _>(&det.neck),
            count::<Ad, _>(&det.head),
        );
        assert_eq!(all.total + all.bn_stats, det.num_params());
        println!(
            "  {:<10} {:>10} {:>10} {:>8} {:>10} {:>9} {:>9}",
            kind.name(),
            all.total,
            all.trainable,
            all.bn_stats,
            bb.total,
            neck.total,
            head.total
        );
    }
}

// ---------------------------------------------------------------- stages

fn sum_sq4<B: Backend>(ts: &[Tensor<B, 4>]) -> Tensor<B, 1> {
    ts.iter()
        .map(|t| t.clone().powi_scalar(2).sum())
        .reduce(|a, b| a + b)
        .expect("non-empty")
}

fn level_loss<B: Backend>(o: LevelOutput<B>) -> Tensor<B, 1> {
    let mut t = o.cls_score.powi_scalar(2).sum() + o.bbox_pred.powi_scalar(2).sum();
    if let Some(c) = o.centerness {
        t = t + c.powi_scalar(2).sum();
    }
    t
}

/// Inputs cut from the graph that still get a gradient (a stage's backward
/// then includes its input gradient, as inside the full network).
fn leaves<const D: usize>(ts: &[Tensor<Ad, D>]) -> Vec<Tensor<Ad, D>> {
    ts.iter()
        .map(|t| t.clone().detach().require_grad())
        .collect()
}

fn sync(t: Tensor<Ad, 1>) {
    let _ = t.into_scalar();
}

fn profile_stages(a: &Args) {
    let device = Default::default();
    let det: Detector<Ad> = DetectorConfig::preset(a.detector, a.depth, 80)
        .init(&device)
        .expect("preset is valid");
    let x = Tensor::<Ad, 4>::random(
        [a.batch, 3, a.size, a.size],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let (w, n) = (a.warmup, a.iters);
    let head = &det.head;
    let (cls_tower, reg_tower) = head.towers();

    let total_fwd = median_ms(w, n, || {
        let outs = det.forward(x.clone());
        sync(
            outs.into_iter()
                .map(level_loss)
                .reduce(|a, b| a + b)
                .unwrap(),
        );
    });
    let total_fb = median_ms(w, n, || {
        let outs = det.forward(x.clone());
        let loss = outs
            .into_iter()
            .map(level_loss)
            .reduce(|a, b| a + b)
            .unwrap();
        drop(loss.backward());
    });

    let cores = cores_used(|| {
        let outs = det.forward(x.clone());
        let loss = outs
            .into_iter()
            .map(level_loss)
            .reduce(|a, b| a + b)
            .unwrap();
        drop(loss.backward());
    });

    // Backbone (stem + layer1 frozen: backward starts in layer2, as in training).
    let bb_fwd = median_ms(w, n, || sync(sum_sq4(&det.backbone.forward(x.clone()))));
    let bb_fb = median_ms(w, n, || {
        drop(sum_sq4(&det.backbone.forward(x.clone())).backward())
    });
    let c = leaves(&det.backbone.forward(x.clone()));
    let neck_fwd = median_ms(w, n, || sync(sum_sq4(&det.neck.forward(c.clone()))));
    let neck_fb = median_ms(w, n, || {
        drop(sum_sq4(&det.neck.forward(c.clone())).backward())
    });
    let p = leaves(&det.neck.forward(c.clone()));

    println!(
        "\n{} R{} {}x{} batch {}: stage times, median of {n} (ms)",
        a.detector.name(),
        a.depth,
        a.size,
        a.size,
        a.batch
    );
    println!(
        "  {:<28} {:>9} {:>9} {:>9}",
        "stage", "fwd", "fwd+bwd", "bwd"
    );
    let row = |name: &str, f: f64, fb: f64| {
        println!("  {name:<28} {f:>9.1} {fb:>9.1} {:>9.1}", fb - f);
    };
    row("whole detector", total_fwd, total_fb);
    println!("  (cores busy during one whole fwd+bwd: {cores:.2})");
    row("backbone", bb_fwd, bb_fb);
    row("fpn", neck_fwd, neck_fb);
    let (mut sum_f, mut sum_fb) = (bb_fwd + neck_fwd, bb_fb + neck_fb);
    for (l, pl) in p.iter().enumerate() {
        let [_, _, h, wd] = pl.dims();
        let tw_fwd = median_ms(w, n, || {
            sync(sum_sq4(&[
                cls_tower.forward(pl.clone()),
                reg_tower.forward(pl.clone()),
            ]))
        });
        let tw_fb = median_ms(w, n, || {
            drop(
                sum_sq4(&[cls_tower.forward(pl.clone()), reg_tower.forward(pl.clone())]).backward(),
            )
        });
        let feats = leaves(&[cls_tower.forward(pl.clone()), reg_tower.forward(pl.clone())]);
        let pr_fwd = median_ms(w, n, || {
            sync(level_loss(head.predict_level(
                feats[0].clone(),
                feats[1].clone(),
                l,
            )))
        });
        let pr_fb = median_ms(w, n, || {
            drop(level_loss(head.predict_level(feats[0].clone(), feats[1].clone(), l)).backward())
        });
        row(&format!("P{} towers ({h}x{wd})", l + 3), tw_fwd, tw_fb);
        row(&format!("P{} predictors", l + 3), pr_fwd, pr_fb);
        sum_f += tw_fwd + pr_fwd;
        sum_fb += tw_fb + pr_fb;
    }
    row("sum of stages", sum_f, sum_fb);
}

// ---------------------------------------------------------------- ops

/// GroupNorm as `x · a + b` with per-(sample, channel) `a = γ/σ`, `b = β − μ·a`
/// (`[N, C, 1, 1]`, a broadcast burn-flex's SIMD path handles, unlike the
/// `[1, C, 1, 1]` affine of `burn::nn::GroupNorm`): two full-size elementwise
/// ops in the forward instead of five. `two_pass`: `σ² = E[(x − μ)²]` (as
/// burn::nn, robust to large means), else `σ² = E[x²] − μ²` (one op fewer).
fn group_norm_affine<B: Backend>(
    x: Tensor<B, 4>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    groups: usize,
    eps: f64,
    two_pass: bool,
) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let xg = x.clone().reshape([n, groups, (c / groups) * h * w]);
    let mean = xg.clone().mean_dim(2); // [n, g, 1]
    let var = if two_pass {
        (xg - mean.clone()).square().mean_dim(2)
    } else {
        xg.square().mean_dim(2) - mean.clone().square()
    };
    let inv_std = var.add_scalar(eps).sqrt().recip();
    let per_channel = |t: Tensor<B, 3>| t.expand([n, groups, c / groups]).reshape([n, c, 1, 1]);
    let scale = per_channel(inv_std) * gamma.reshape([1, c, 1, 1]);
    let shift = beta.reshape([1, c, 1, 1]) - per_channel(mean) * scale.clone();
    x * scale + shift
}

/// Eval BatchNorm with its per-channel scale and shift repeated over the batch
/// (`[N, C, 1, 1]` instead of `[1, C, 1, 1]`, see [`group_norm_affine`]).
fn eval_bn_batched<B: Backend>(bn: &EvalBatchNorm2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [n, c, _, _] = x.dims();
    let (scale, shift) = bn.scale_shift();
    x * scale.reshape([1, c, 1, 1]).repeat_dim(0, n) + shift.reshape([1, c, 1, 1]).repeat_dim(0, n)
}

/// Weight gradient of a 3×3, stride-1, pad-1 conv as 9 GEMMs, one per kernel
/// tap: `dW[:, :, i, j] = G · X_ijᵀ` with `G = grad` as `[C_out, N·H·W]` and
/// `X_ij` the input shifted by `(i − 1, j − 1)` as `[C_in, N·H·W]`. Every GEMM
/// is `C_out × C_in × N·H·W` (256 × 256 × 3200 on P3), where burn-backend's
/// default runs `C_in` GEMMs of `C_out × 9 × N·H·W` (a conv with the batch as
/// channels and the whole output as the kernel).
fn weight_grad_shifted_gemms<B: Backend>(x: Tensor<B, 4>, grad: Tensor<B, 4>) -> Tensor<B, 4> {
    let [n, ci, h, w] = x.dims();
    let co = grad.dims()[1];
    let g = grad.swap_dims(0, 1).reshape([co, n * h * w]);
    let xp = x
        .pad((1, 1, 1, 1), burn::tensor::ops::PadMode::Constant(0.0))
        .swap_dims(0, 1); // [C_in, N, H + 2, W + 2]
    let taps: Vec<Tensor<B, 3>> = (0..9)
        .map(|k| {
            let (i, j) = (k / 3, k % 3);
            let xs = xp
                .clone()
                .slice([0..ci, 0..n, i..i + h, j..j + w])
                .reshape([ci, n * h * w]);
            g.clone().matmul(xs.transpose()).unsqueeze_dim::<3>(2)
        })
        .collect();
    Tensor::cat(taps, 2).reshape([co, ci, 3, 3])
}

fn max_abs_diff<B: Backend>(a: Tensor<B, 4>, b: Tensor<B, 4>) -> f32 {
    (a - b).abs().max().into_scalar().elem::<f32>()
}

fn profile_ops(a: &Args) {
    let device = Default::default();
    let (w, n) = (a.warmup.max(1), a.iters.max(3));
    let s = a.size / 8;
    let (b, c) = (a.batch, 256);
    let conv_flops = 2.0 * (b * c * s * s * c * 9) as f64;
    let gf = |ms: f64| conv_flops / (ms * 1e-3) / 1e9;
    let opts = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);

    println!("\nops on P3-sized tensors [{b}, {c}, {s}, {s}], median of {n} (ms)");
    println!("  {:<52} {:>9} {:>9}", "op", "ms", "GFLOP/s");

    // Inner backend: the kernels themselves.
    let x = Tensor::<Flex, 4>::random([b, c, s, s], Distribution::Normal(0.0, 1.0), &device);
    let wt = Tensor::<Flex, 4>::random([c, c, 3, 3], Distribution::Normal(0.0, 0.01), &device);
    let g = Tensor::<Flex, 4>::random([b, c, s, s], Distribution::Normal(0.0, 1.0), &device);
    let t_fwd = median_ms(w, n, || {
        let _ = conv2d(x.clone(), wt.clone(), None, opts.clone());
    });
    let t_dx = median_ms(w, n, || {
        let _ = conv_transpose2d(
            g.clone(),
            wt.clone(),
            None,
            ConvTransposeOptions::new([1, 1], [1, 1], [0, 0], [1, 1], 1),
        );
    });
    let t_dw = median_ms(w, n, || {
        let _ = conv2d(
            x.clone().swap_dims(0, 1),
            g.clone().swap_dims(0, 1),
            None,
            opts.clone(),
        )
        .swap_dims(0, 1);
    });
    let t_dw9 = median_ms(w, n, || {
        let _ = weight_grad_shifted_gemms(x.clone(), g.clone());
    });
    let dw_ref = conv2d(
        x.clone().swap_dims(0, 1),
        g.clone().swap_dims(0, 1),
        None,
        opts.clone(),
    )
    .swap_dims(0, 1);
    let dw_err = max_abs_diff(
        dw_ref.clone(),
        weight_grad_shifted_gemms(x.clone(), g.clone()),
    );
    let dw_scale = dw_ref.abs().max().into_scalar();
    let a_mat = Tensor::<Flex, 2>::random([c, c * 9], Distribution::Default, &device);
    let b_mat = Tensor::<Flex, 2>::random([c * 9, b * s * s], Distribution::Default, &device);
    let t_mm = median_ms(w, n, || {
        let _ = a_mat.clone().matmul(b_mat.clone());
    });
    let t_swap = median_ms(w, n, || {
        let _ = x.clone().swap_dims(0, 1).add_scalar(0.0);
    });
    let op = |name: &str, ms: f64, flops: bool| {
        if flops {
            println!("  {name:<52} {ms:>9.1} {:>9.1}", gf(ms));
        } else {
            println!("  {name:<52} {ms:>9.1} {:>9}", "");
        }
    };
    let cores = cores_used(|| {
        for _ in 0..3 {
            let _ = conv2d(x.clone(), wt.clone(), None, opts.clone());
        }
    });
    op("conv3x3 256->256 forward (flex)", t_fwd, true);
    println!(
        "  {:<52} {cores:>9.2}",
        "  (cores busy during the forward conv)"
    );
    op("  input grad: conv_transpose2d (flex)", t_dx, true);
    op("  weight grad: conv2d on swapped dims (flex)", t_dw, true);
    op("  weight grad: 9 shifted GEMMs (prototype)", t_dw9, true);
    println!(
        "  {:<52} {:>9.1e}",
        "    max |difference| / max |weight grad|",
        dw_err / dw_scale
    );
    op("  [one swap_dims(0,1) copy of the input]", t_swap, false);
    op(
        "the same FLOPs as one matmul [256x2304]x[2304x3200]",
        t_mm,
        true,
    );

    // Through autodiff, as the model runs it.
    let xa = Tensor::<Ad, 4>::from_inner(x.clone()).require_grad();
    let wa = Tensor::<Ad, 4>::from_inner(wt.clone()).require_grad();
    let t_afwd = median_ms(w, n, || {
        sync(conv2d(xa.clone(), wa.clone(), None, opts.clone()).sum())
    });
    let t_afb = median_ms(w, n, || {
        drop(
            conv2d(xa.clone(), wa.clone(), None, opts.clone())
                .sum()
                .backward(),
        )
    });
    op("conv3x3 forward (autodiff)", t_afwd, true);
    op("conv3x3 forward + backward (autodiff)", t_afb, false);
    println!(
        "  {:<52} {:>9} {:>9.1}",
        "  = fwd+bwd GFLOP/s (3 conv-sized GEMMs)",
        "",
        3.0 * conv_flops / (t_afb * 1e-3) / 1e9
    );

    // GroupNorm(32, 256) with the tower's affine parameters.
    let gn: GroupNorm<Ad> = GroupNormConfig::new(32, c).init(&device);
    let (gamma, beta) = (
        gn.gamma.as_ref().expect("affine").val(),
        gn.beta.as_ref().expect("affine").val(),
    );
    let t_gn_f = median_ms(w, n, || sync(gn.forward(xa.clone()).sum()));
    let t_gn_fb = median_ms(w, n, || {
        drop(gn.forward(xa.clone()).powi_scalar(2).sum().backward())
    });
    let gn_alt = |t: Tensor<Ad, 4>, two_pass: bool| {
        group_norm_affine(t, gamma.clone(), beta.clone(), 32, 1e-5, two_pass)
    };
    let t_gn2_f = median_ms(w, n, || sync(gn_alt(xa.clone(), false).sum()));
    let t_gn2_fb = median_ms(w, n, || {
        drop(gn_alt(xa.clone(), false).powi_scalar(2).sum().backward())
    });
    let t_gn3_fb = median_ms(w, n, || {
        drop(gn_alt(xa.clone(), true).powi_scalar(2).sum().backward())
    });
    let ref_gn = gn.forward(xa.clone());
    let alt_gn = gn_alt(xa.clone(), false);
    op("GroupNorm(32) forward, burn::nn (autodiff)", t_gn_f, false);
    op("GroupNorm(32) fwd+bwd, burn::nn (autodiff)", t_gn_fb, false);
    op(
        "GroupNorm(32) forward, x*a+b form (autodiff)",
        t_gn2_f,
        false,
    );
    op(
        "GroupNorm(32) fwd+bwd, x*a+b form (autodiff)",
        t_gn2_fb,
        false,
    );
    op(
        "GroupNorm(32) fwd+bwd, x*a+b two-pass var (autodiff)",
        t_gn3_fb,
        false,
    );
    println!(
        "  {:<52} {:>9.2e}",
        "  max |burn::nn - x*a+b| of outputs",
        max_abs_diff(ref_gn.inner(), alt_gn.inner())
    );
    let gx = |f: &dyn Fn(Tensor<Ad, 4>) -> Tensor<Ad, 4>| {
        let xg = xa.clone().detach().require_grad();
        let grads = f(xg.clone()).powi_scalar(2).sum().backward();
        xg.grad(&grads).expect("input grad")
    };
    let d = max_abs_diff(gx(&|t| gn.forward(t)), gx(&|t| gn_alt(t, false)));
    println!(
        "  {:<52} {:>9.2e}",
        "  max |difference| of input gradients", d
    );
    let t_relu_fb = median_ms(w, n, || {
        drop(
            burn::tensor::activation::relu(xa.clone())
                .powi_scalar(2)
                .sum()
                .backward(),
        )
    });
    op(
        "ReLU fwd+bwd (+ the sum² loss) (autodiff)",
        t_relu_fb,
        false,
    );
    let t_loss_fb = median_ms(w, n, || drop(xa.clone().powi_scalar(2).sum().backward()));
    op("  [the sum² loss alone, fwd+bwd]", t_loss_fb, false);

    // Eval BatchNorm on a C3-sized tensor, nearest upsampling of P4 to P3.
    let bn: EvalBatchNorm2d<Ad> = EvalBatchNorm2dConfig::new(128).init(&device);
    let xb = Tensor::<Ad, 4>::random([b, 128, s, s], Distribution::Normal(0.0, 1.0), &device)
        .require_grad();
    let t_bn = median_ms(w, n, || {
        drop(bn.forward(xb.clone()).powi_scalar(2).sum().backward())
    });
    let t_bn2 = median_ms(w, n, || {
        drop(
            eval_bn_batched(&bn, xb.clone())
                .powi_scalar(2)
                .sum()
                .backward(),
        )
    });
    op("EvalBatchNorm2d(128) fwd+bwd on C3 (autodiff)", t_bn, false);
    op("  same, scale/shift repeated to [N,C,1,1]", t_bn2, false);
    let scale = crosskd_trainer::model::layers::Scale::<Ad>::new(1.0, &device);
    let reg = Tensor::<Ad, 4>::random([b, 68, s, s], Distribution::Default, &device).require_grad();
    let t_sc = median_ms(w, n, || {
        drop(scale.forward(reg.clone()).powi_scalar(2).sum().backward())
    });
    let t_sc2 = median_ms(w, n, || {
        let sv = scale
            .scale
            .val()
            .reshape([1, 1, 1, 1])
            .repeat_dim(0, b)
            .repeat_dim(1, 68);
        drop((reg.clone() * sv).powi_scalar(2).sum().backward())
    });
    op(
        "Scale fwd+bwd on the GFL P3 reg output [N,68,H,W]",
        t_sc,
        false,
    );
    op("  same, scale repeated to [N,68,1,1]", t_sc2, false);
    let p4 = Tensor::<Ad, 4>::random(
        [b, c, s.div_ceil(2), s.div_ceil(2)],
        Distribution::Normal(0.0, 1.0),
        &device,
    )
    .require_grad();
    let t_up = median_ms(w, n, || {
        let up = interpolate(
            p4.clone(),
            [s, s],
            InterpolateOptions::new(InterpolateMode::Nearest).with_align_corners(false),
        );
        drop(up.powi_scalar(2).sum().backward())
    });
    op("nearest upsample P4->P3 fwd+bwd (autodiff)", t_up, false);
}

fn main() {
    let a = parse_args();
    set_cpu_threads(a.threads);
    println!(
        "burn-flex, rayon pool of {} thread(s), load average {}",
        rayon::current_num_threads(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    if a.params {
        print_params(a.depth);
        return;
    }
    if a.stages {
        profile_stages(&a);
    }
    if a.ops {
        profile_ops(&a);
    }
}

/// CPU time (user + system) of this process in seconds, from /proc/self/stat.
fn cpu_time_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

/// Average number of busy cores while `f` runs.
fn cores_used(f: impl FnOnce()) -> f64 {
    let (c0, t0) = (cpu_time_s(), Instant::now());
    f();
    (cpu_time_s() - c0) / t0.elapsed().as_secs_f64()
}
