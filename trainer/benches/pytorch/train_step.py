#!/usr/bin/env python3
"""PyTorch reference for `crosskd bench train-step` (forward and forward+backward).

Builds the same networks as trainer/src/model (ResNet in torchvision layout with
BN always in eval mode and stem + layer1 frozen, MMDet FPN with P6/P7 from the
P5 output, and the GFL / RetinaNet / FCOS / ATSS heads) and times them exactly
as trainer/src/bench/train_step.rs does:

* forward: the graph is built (grad enabled, as our autodiff backend does), the
  loss Σ_levels sum(cls²) + sum(bbox²) [+ sum(centerness²)] is computed and read;
* forward + backward: the same, then loss.backward() and the gradients dropped.

Medians (and p90) over --iters timed iterations after --warmup untimed ones.

    python3 trainer/benches/pytorch/train_step.py --detector gfl --json
    python3 trainer/benches/pytorch/train_step.py --detector gfl --print-params
"""

import argparse
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# ----------------------------------------------------------------- backbone


def frozen_bn(c):
    """BatchNorm2d kept in eval mode (see `Detector.train`): running stats only."""
    return nn.BatchNorm2d(c, eps=1e-5)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_c, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_c, planes, 3, stride, 1, bias=False)
        self.bn1 = frozen_bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = frozen_bn(planes)
        self.downsample = None
        if stride != 1 or in_c != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_c, planes, 1, stride, 0, bias=False), frozen_bn(planes)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_c, planes, stride):
        super().__init__()
        out_c = planes * 4
        # pytorch style: stride on the 3x3 conv
        self.conv1 = nn.Conv2d(in_c, planes, 1, 1, 0, bias=False)
        self.bn1 = frozen_bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = frozen_bn(planes)
        self.conv3 = nn.Conv2d(planes, out_c, 1, 1, 0, bias=False)
        self.bn3 = frozen_bn(out_c)
        self.downsample = None
        if stride != 1 or in_c != out_c:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_c, out_c, 1, stride, 0, bias=False), frozen_bn(out_c)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + identity)


class ResNet(nn.Module):
    """torchvision layout without avgpool/fc; returns C3, C4, C5."""

    LAYOUTS = {18: ([2, 2, 2, 2], BasicBlock), 34: ([3, 4, 6, 3], BasicBlock),
               50: ([3, 4, 6, 3], Bottleneck), 101: ([3, 4, 23, 3], Bottleneck)}

    def __init__(self, depth, frozen_stages=1):
        super().__init__()
        blocks, block = self.LAYOUTS[depth]
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = frozen_bn(64)
        in_c = 64
        for stage, (n, planes) in enumerate(zip(blocks, [64, 128, 256, 512])):
            layer = []
            for b in range(n):
                stride = (1 if stage == 0 else 2) if b == 0 else 1
                layer.append(block(in_c, planes, stride))
                in_c = planes * block.expansion
            setattr(self, f"layer{stage + 1}", nn.Sequential(*layer))
        self.out_channels = [c * block.expansion for c in (128, 256, 512)]
        frozen = []
        if frozen_stages >= 0:
            frozen += [self.conv1, self.bn1]
        frozen += [getattr(self, f"layer{i}") for i in range(1, frozen_stages + 1)]
        for m in frozen:
            for p in m.parameters():
                p.requires_grad_(False)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(x, 3, 2, 1)
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c3, c4, c5]


# ----------------------------------------------------------------- neck


class FPN(nn.Module):
    """MMDet FPN, start_level=1, num_outs=5, add_extra_convs='on_output'."""

    def __init__(self, in_channels, out=256, num_outs=5, relu_before_extra_convs=False):
        super().__init__()
        self.lateral_convs = nn.ModuleList(nn.Conv2d(c, out, 1) for c in in_channels)
        self.fpn_convs = nn.ModuleList(nn.Conv2d(out, out, 3, 1, 1) for _ in in_channels)
        for _ in range(len(in_channels), num_outs):
            self.fpn_convs.append(nn.Conv2d(out, out, 3, 2, 1))
        self.relu_before_extra_convs = relu_before_extra_convs

    def forward(self, inputs):
        n = len(self.lateral_convs)
        lat = [conv(x) for conv, x in zip(self.lateral_convs, inputs)]
        for i in range(n - 1, 0, -1):
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[2:], mode="nearest")
        outs = [conv(x) for conv, x in zip(self.fpn_convs, lat)]
        for i in range(n, len(self.fpn_convs)):
            x = outs[i - 1]
            if i > n and self.relu_before_extra_convs:
                x = F.relu(x)
            outs.append(self.fpn_convs[i](x))
        return outs


# ----------------------------------------------------------------- heads


class Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([1.0]))

    def forward(self, x):
        return x * self.scale


def tower(depth, cin, c, gn_groups):
    layers = []
    for i in range(depth):
        layers.append(nn.Conv2d(cin if i == 0 else c, c, 3, 1, 1, bias=gn_groups is None))
        if gn_groups is not None:
            layers.append(nn.GroupNorm(gn_groups, c, eps=1e-5))
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DenseHead(nn.Module):
    """cls/reg towers shared over levels, then per-detector predictors."""

    def __init__(self, kind, num_classes=80, c=256, stacked=4, num_levels=5):
        super().__init__()
        self.kind = kind
        gn = None if kind == "retinanet" else 32
        self.cls_convs = tower(stacked, c, c, gn)
        self.reg_convs = tower(stacked, c, c, gn)
        if kind == "gfl":
            self.cls = nn.Conv2d(c, num_classes, 3, 1, 1)
            self.reg = nn.Conv2d(c, 4 * 17, 3, 1, 1)
        elif kind == "retinanet":
            self.cls = nn.Conv2d(c, 9 * num_classes, 3, 1, 1)
            self.reg = nn.Conv2d(c, 9 * 4, 3, 1, 1)
        else:  # fcos, atss
            self.cls = nn.Conv2d(c, num_classes, 3, 1, 1)
            self.reg = nn.Conv2d(c, 4, 3, 1, 1)
            self.centerness = nn.Conv2d(c, 1, 3, 1, 1)
        if kind != "retinanet":
            self.scales = nn.ModuleList(Scale() for _ in range(num_levels))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.01)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0.0)
        nn.init.constant_(self.cls.bias, -math.log((1 - 0.01) / 0.01))

    def forward_level(self, x, level):
        cls_feat = self.cls_convs(x)
        reg_feat = self.reg_convs(x)
        cls = self.cls(cls_feat)
        ctr = None
        if self.kind == "gfl":
            bbox = self.scales[level](self.reg(reg_feat))
        elif self.kind == "retinanet":
            bbox = self.reg(reg_feat)
        elif self.kind == "fcos":
            bbox = self.scales[level](self.reg(reg_feat)).exp()
            ctr = self.centerness(cls_feat)
        else:  # atss
            bbox = self.scales[level](self.reg(reg_feat))
            ctr = self.centerness(reg_feat)
        return cls, bbox, ctr

    def forward(self, feats):
        return [self.forward_level(x, l) for l, x in enumerate(feats)]


class Detector(nn.Module):
    def __init__(self, kind, depth=18, num_classes=80):
        super().__init__()
        self.backbone = ResNet(depth)
        self.neck = FPN(self.backbone.out_channels, 256, 5, relu_before_extra_convs=kind == "fcos")
        self.head = DenseHead(kind, num_classes)

    def train(self, mode=True):
        super().train(mode)
        # norm_eval: every BN uses its running statistics, also in training.
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def forward(self, x):
        return self.head(self.neck(self.backbone(x)))


def sum_sq(outs):
    total = None
    for cls, bbox, ctr in outs:
        t = cls.pow(2).sum() + bbox.pow(2).sum()
        if ctr is not None:
            t = t + ctr.pow(2).sum()
        total = t if total is None else total + t
    return total


# ----------------------------------------------------------------- bench


def median_p90(samples):
    s = sorted(samples)
    n = len(s)
    med = s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])
    p90 = s[min(max(math.ceil(n * 0.9), 1), n) - 1]
    return med, p90


def count_params(model):
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    bn_stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    parts = {k: sum(p.numel() for p in getattr(model, k).parameters()) for k in ("backbone", "neck", "head")}
    return {"params": total, "trainable": trainable, "bn_running_stats": bn_stats,
            "params_with_bn_stats": total + bn_stats, **{f"{k}_params": v for k, v in parts.items()}}


def time_ms(warmup, iters, f):
    for _ in range(warmup):
        f()
    v = []
    for _ in range(iters):
        t = time.perf_counter()
        f()
        v.append((time.perf_counter() - t) * 1e3)
    return median_p90(v)[0]


def micro(a):
    """The op timings of examples/profile_stages.rs: P3 tower conv and GroupNorm."""
    s, b, c = a.size // 8, a.batch, 256
    w, n = max(a.warmup, 1), max(a.iters, 3)
    flops = 2.0 * b * c * s * s * c * 9
    x = torch.randn(b, c, s, s)
    g = torch.randn(b, c, s, s)
    wt = torch.randn(c, c, 3, 3) * 0.01
    conv_bwd = torch.ops.aten.convolution_backward
    args = ([0], [1, 1], [1, 1], [1, 1], False, [0, 0], 1)
    rows = []
    with torch.no_grad():
        rows.append(("conv3x3 256->256 forward", time_ms(w, n, lambda: F.conv2d(x, wt, None, 1, 1)), True))
        rows.append(("  input grad", time_ms(w, n, lambda: conv_bwd(g, x, wt, *args, [True, False, False])), True))
        rows.append(("  weight grad", time_ms(w, n, lambda: conv_bwd(g, x, wt, *args, [False, True, False])), True))
    xa = x.clone().requires_grad_()
    wa = wt.clone().requires_grad_()
    rows.append(("conv3x3 forward + backward (autograd)",
                 time_ms(w, n, lambda: F.conv2d(xa, wa, None, 1, 1).sum().backward()), False))
    gn = nn.GroupNorm(32, c)
    rows.append(("GroupNorm(32) forward (autograd graph)", time_ms(w, n, lambda: gn(xa).sum().item()), False))
    rows.append(("GroupNorm(32) fwd+bwd (autograd)", time_ms(w, n, lambda: gn(xa).pow(2).sum().backward()), False))
    rows.append(("ReLU fwd+bwd (+ the sum² loss)", time_ms(w, n, lambda: F.relu(xa).pow(2).sum().backward()), False))
    rows.append(("  [the sum² loss alone, fwd+bwd]", time_ms(w, n, lambda: xa.pow(2).sum().backward()), False))
    print(f"torch ops on P3-sized tensors [{b}, {c}, {s}, {s}], {torch.get_num_threads()} threads, median of {n} (ms)")
    for name, ms, is_conv in rows:
        gf = f"{flops / (ms * 1e-3) / 1e9:9.1f}" if is_conv else ""
        print(f"  {name:<52} {ms:>9.1f} {gf}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detector", choices=["gfl", "retinanet", "fcos", "atss"], default="gfl")
    ap.add_argument("--backbone", default="r18")
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--num-classes", type=int, default=80)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--print-params", action="store_true", help="print parameter counts and exit")
    ap.add_argument("--micro", action="store_true", help="time the P3 tower conv and GroupNorm ops and exit")
    a = ap.parse_args()

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(a.seed)
    depth = int(a.backbone.lstrip("rR"))
    model = Detector(a.detector, depth, a.num_classes)
    model.train()
    if a.micro:
        micro(a)
        return
    if a.print_params:
        print(json.dumps({"detector": a.detector, "depth": depth, **count_params(model)}))
        return
    x = torch.randn(a.batch, 3, a.size, a.size)

    fwd, fb = [], []
    for i in range(a.warmup + a.iters):
        keep = i >= a.warmup
        t = time.perf_counter()
        loss = sum_sq(model(x))
        _ = loss.item()
        del loss
        dt = (time.perf_counter() - t) * 1e3
        if keep:
            fwd.append(dt)
        t = time.perf_counter()
        loss = sum_sq(model(x))
        loss.backward()
        model.zero_grad(set_to_none=True)
        dt = (time.perf_counter() - t) * 1e3
        if keep:
            fb.append(dt)

    report = {
        "backend": f"torch {torch.__version__} cpu ({torch.get_num_threads()} threads, "
                   f"{torch.backends.cpu.get_cpu_capability()}, mkldnn={torch.backends.mkldnn.is_available()})",
        "detector": a.detector, "depth": depth, "size": a.size, "batch": a.batch,
        "forward_ms": median_p90(fwd), "forward_backward_ms": median_p90(fb),
    }
    if a.json:
        print(json.dumps(report))
    else:
        print(f"{a.detector} R{depth} {a.size}x{a.size} batch {a.batch} on {report['backend']}")
        print(f"  {'':<34} {'median ms':>10} {'p90 ms':>10}")
        for name, (m, p) in (("forward", report["forward_ms"]),
                             ("forward + backward (sum² loss)", report["forward_backward_ms"])):
            print(f"  {name:<34} {m:>10.1f} {p:>10.1f}")


if __name__ == "__main__":
    sys.exit(main())
