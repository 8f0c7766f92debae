"""PyTorch timings for `npm run bench` (run only when `import torch` works; the project never needs Python).

Times the same workloads as bench/bench.ts on the CPU with the same thread count: min and median of N runs
after one warm-up. Prints one line per workload: `NAME: min X s, median Y s [R GFLOP/s], peak RSS Z MB`,
which bench.ts parses (it runs one workload per process, so the peak RSS is that workload's). The UX-Net
workloads use a PyTorch UX-Net written here from the architecture (the official MASILab/3DUX-Net + MONAI
code is not vendored): the same layers, widths, groups, kernel sizes and strides as src/models/uxnet.ts
(paper configuration: in 1, out 13, feat 48/96/192/384, hidden 768), so the FLOPs and memory traffic
match; initial values do not matter for timing. The comparators (`swin_unetr.*`, `unetr.*`, `nnformer.*`,
`transbts.*`) are bench/torch_nets.py at the official FLARE calls, checked against the fixtures by
bench/torch_check.py. `--tiny` times the small variants bench.ts --tiny times.
"""
import argparse
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import torch_nets  # bench/torch_nets.py: the script's folder is on sys.path

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--reps", type=int, default=3)
ap.add_argument("--tiny", action="store_true", help="the small networks bench.ts --tiny times (8/16/32/64 UX-Net, torch_nets.TINY)")
ap.add_argument(
    "--only",
    type=str,
    default="fwd64,fwd96,train64,train96,conv3x3,dw7,convT,norm,gemm,attn,"
    + ",".join(f"{n}.{w}96" for n in ("swin_unetr", "unetr", "nnformer", "transbts") for w in ("fwd", "train")),
)
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)
ONLY = set(args.only.split(","))

# Multiply-adds x 2 of the paper configuration, from the layer shapes (same count as bench.ts uses).
FWD_GFLOP = {64: 342.3, 96: 1155.4}


class LayerNormCF(nn.Module):
    """LayerNorm over channels of [N, C, D, H, W] (the official `channels_first` LayerNorm)."""

    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None, None] * x + self.bias[:, None, None, None]


class UxBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dwconv = nn.Conv3d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Conv3d(dim, 4 * dim, 1, groups=dim)
        self.pwconv2 = nn.Conv3d(4 * dim, dim, 1, groups=dim)
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 4, 1)
        y = self.norm(y).permute(0, 4, 1, 2, 3)
        y = self.pwconv2(F.gelu(self.pwconv1(y)))
        return x + self.gamma[:, None, None, None] * y


class ResBlock(nn.Module):
    """MONAI UnetResBlock: conv-IN-lrelu-conv-IN (+ 1x1 conv-IN residual when widths differ), lrelu."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv3d(cout, cout, 3, padding=1, bias=False)
        self.conv3 = nn.Conv3d(cin, cout, 1, bias=False) if cin != cout else None

    def forward(self, x):
        y = F.leaky_relu(F.instance_norm(self.conv1(x)), 0.01)
        y = F.instance_norm(self.conv2(y))
        r = F.instance_norm(self.conv3(x)) if self.conv3 is not None else x
        return F.leaky_relu(y + r, 0.01)


class UpBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.transp_conv = nn.ConvTranspose3d(cin, cout, 2, stride=2, bias=False)
        self.conv_block = ResBlock(2 * cout, cout)

    def forward(self, x, skip):
        return self.conv_block(torch.cat([self.transp_conv(x), skip], 1))


class UXNet(nn.Module):
    def __init__(self, cin=1, cout=13, feat=(48, 96, 192, 384), hidden=768):
        super().__init__()
        self.down = nn.ModuleList([nn.Sequential(nn.Conv3d(cin, feat[0], 7, stride=2, padding=3), LayerNormCF(feat[0]))])
        for i in range(3):
            self.down.append(nn.Sequential(LayerNormCF(feat[i]), nn.Conv3d(feat[i], feat[i + 1], 2, stride=2)))
        self.stages = nn.ModuleList([nn.Sequential(UxBlock(f), UxBlock(f)) for f in feat])
        self.norms = nn.ModuleList([LayerNormCF(f) for f in feat])
        self.encoder1 = ResBlock(cin, feat[0])
        self.encoder2 = ResBlock(feat[0], feat[1])
        self.encoder3 = ResBlock(feat[1], feat[2])
        self.encoder4 = ResBlock(feat[2], feat[3])
        self.encoder5 = ResBlock(feat[3], hidden)
        self.decoder5 = UpBlock(hidden, feat[3])
        self.decoder4 = UpBlock(feat[3], feat[2])
        self.decoder3 = UpBlock(feat[2], feat[1])
        self.decoder2 = UpBlock(feat[1], feat[0])
        self.decoder1 = ResBlock(feat[0], feat[0])
        self.out = nn.Conv3d(feat[0], cout, 1)

    def forward(self, x):
        outs, h = [], x
        for i in range(4):
            h = self.stages[i](self.down[i](h))
            outs.append(self.norms[i](h))
        enc1 = self.encoder1(x)
        enc2 = self.encoder2(outs[0])
        enc3 = self.encoder3(outs[1])
        enc4 = self.encoder4(outs[2])
        hid = self.encoder5(outs[3])
        d = self.decoder5(hid, enc4)
        d = self.decoder4(d, enc3)
        d = self.decoder3(d, enc2)
        d = self.decoder2(d, enc1)
        return self.out(self.decoder1(d))


def timed(fn, reps, grad=False):
    ctx = torch.enable_grad() if grad else torch.no_grad()
    with ctx:
        fn()
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return ts


def report(name, ts, gflop):
    """One line per workload; bench.ts parses it. Peak RSS is this process's so far (bench.ts runs one
    workload per process, so it is that workload's)."""
    med = statistics.median(ts)
    rate = f" {gflop / med:.{0 if gflop / med >= 10 else 1}f} GFLOP/s" if gflop else ""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"{name}: min {min(ts):.3f} s, median {med:.3f} s{rate}, peak RSS {rss:.0f} MB", flush=True)


def build(net):
    """(model, classes). The comparators come from bench/torch_nets.py (official parameter counts asserted
    there) with every stochastic part off, as bench/worker.ts times ours."""
    if net == "uxnet":
        return (UXNet(feat=(8, 16, 32, 64), hidden=128) if args.tiny else UXNet()), 13
    return torch_nets.deterministic(torch_nets.build(net, tiny=args.tiny)), 5


for net, s in [("uxnet", 64), ("uxnet", 96), ("swin_unetr", 96), ("unetr", 96), ("nnformer", 96), ("transbts", 96)]:
    pre = "" if net == "uxnet" else net + "."
    if f"{pre}fwd{s}" in ONLY:
        model = build(net)[0].eval()
        x = torch.randn(1, 1, s, s, s)
        report(f"{pre}fwd{s}", timed(lambda: model(x), args.reps), FWD_GFLOP[s] if net == "uxnet" and not args.tiny else 0)
        del model
    if f"{pre}train{s}" in ONLY:
        model, classes = build(net)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        x = torch.randn(1, 1, s, s, s)
        y = torch.randint(0, classes, (1, 1, s, s, s))

        def step():
            opt.zero_grad(set_to_none=True)
            loss = torch_nets.dice_ce(model(x), y)
            loss.backward()
            opt.step()

        report(f"{pre}train{s}", timed(step, args.reps, grad=True), 0)
        del model, opt

if "conv3x3" in ONLY:
    x = torch.randn(1, 48, 96, 96, 96)
    w = torch.randn(48, 48, 3, 3, 3) * 0.05
    report("conv3x3", timed(lambda: F.conv3d(x, w, padding=1), args.reps), 2 * 48 * 48 * 27 * 96**3 / 1e9)
if "dw7" in ONLY:
    xd = torch.randn(1, 48, 48, 48, 48)
    wd = torch.randn(48, 1, 7, 7, 7) * 0.05
    report("dw7", timed(lambda: F.conv3d(xd, wd, padding=3, groups=48), args.reps), 2 * 48 * 343 * 48**3 / 1e9)
if "convT" in ONLY:
    xt = torch.randn(1, 96, 48, 48, 48)
    wt = torch.randn(96, 48, 2, 2, 2) * 0.05
    report("convT", timed(lambda: F.conv_transpose3d(xt, wt, stride=2), args.reps), 2 * 96 * 48 * 8 * 48**3 / 1e9)
if "norm" in ONLY:
    xn = torch.randn(1, 48, 96, 96, 96)
    report("norm", timed(lambda: F.leaky_relu(F.instance_norm(xn), 0.01), args.reps), 0)
if "gemm" in ONLY:
    xg = torch.randn(4096, 768)
    wg = torch.randn(768, 768) * 0.05
    report("gemm", timed(lambda: F.linear(xg, wg), args.reps), 2 * 4096 * 768 * 768 / 1e9)
if "attn" in ONLY:
    qa = torch.randn(1029, 343, 16)
    ka = torch.randn(1029, 343, 16)
    report("attn", timed(lambda: torch.bmm(qa, ka.transpose(1, 2)), args.reps), 2 * 1029 * 343 * 343 * 16 / 1e9)
