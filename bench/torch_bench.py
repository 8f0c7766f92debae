"""PyTorch timings for `npm run bench` (run only when `import torch` works; the project never needs Python).

Times the same workloads as bench/bench.ts on the CPU with the same thread count: min and median of N runs
after one warm-up. Prints one line per workload: `NAME: min X s, median Y s [R GFLOP/s]`, which bench.ts
parses. The whole-network workloads use a PyTorch UX-Net written here from the architecture (the official
MASILab/3DUX-Net + MONAI code is not vendored): the same layers, widths, groups, kernel sizes and strides
as src/models/uxnet.ts (paper configuration: in 1, out 13, feat 48/96/192/384, hidden 768), so the FLOPs
and memory traffic match; initial values do not matter for timing.
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--reps", type=int, default=3)
ap.add_argument("--only", type=str, default="fwd64,fwd96,train64,train96,conv3x3,dw7,convT,norm,gemm,attn,swin_unetr.fwd96,swin_unetr.train96,unetr.fwd96,unetr.train96")
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


# ---- the comparators: MONAI 0.9.0's SwinUNETR and UNETR re-expressed in plain PyTorch (no MONAI/einops
# here), the same layers, widths and attention layout as src/models/swin-unetr.ts and unetr.ts, at the
# official FLARE calls. The parameter counts are asserted against MONAI's (baselines_param_counts.json).


class SwinAttention(nn.Module):
    def __init__(self, dim, heads, w=7):
        super().__init__()
        m = 2 * w - 1
        self.relative_position_bias_table = nn.Parameter(torch.randn(m**3, heads) * 0.02)
        c = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), torch.arange(w), indexing="ij")).flatten(1)
        r = (c[:, :, None] - c[:, None, :]).permute(1, 2, 0) + (w - 1)
        self.register_buffer("relative_position_index", r[..., 0] * m * m + r[..., 1] * m + r[..., 2])
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.heads = heads
        self.scale = (dim // heads) ** -0.5

    def forward(self, x, mask):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (qkv[0] * self.scale) @ qkv[1].transpose(-2, -1)
        # MONAI 0.9.0: a shrunken window takes the top-left n x n block of the 7^3 index
        bias = self.relative_position_bias_table[self.relative_position_index[:n, :n].reshape(-1)].reshape(n, n, -1).permute(2, 0, 1)
        attn = attn + bias.unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(b // nw, nw, self.heads, n, n) + mask.unsqueeze(1).unsqueeze(0)).view(-1, self.heads, n, n)
        return self.proj((attn.softmax(-1) @ qkv[2]).transpose(1, 2).reshape(b, n, c))


def swin_window(size, shift):
    ws, ss = [7, 7, 7], [shift] * 3
    for i in range(3):
        if size[i] <= 7:
            ws[i], ss[i] = size[i], 0
    return ws, ss


def win_partition(x, ws):
    b, d, h, w, c = x.shape
    x = x.view(b, d // ws[0], ws[0], h // ws[1], ws[1], w // ws[2], ws[2], c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, ws[0] * ws[1] * ws[2], c)


def win_reverse(x, ws, b, d, h, w):
    x = x.view(b, d // ws[0], h // ws[1], w // ws[2], ws[0], ws[1], ws[2], -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, d, h, w, -1)


def swin_mask(dims, ws, ss):
    m, cnt = torch.zeros(1, *dims, 1), 0
    sl = [(slice(-ws[i]), slice(-ws[i], -ss[i]), slice(-ss[i], None)) for i in range(3)]
    for a in sl[0]:
        for b in sl[1]:
            for c in sl[2]:
                m[:, a, b, c, :] = cnt
                cnt += 1
    mw = win_partition(m, ws).squeeze(-1)
    am = mw.unsqueeze(1) - mw.unsqueeze(2)
    return am.masked_fill(am != 0, -100.0).masked_fill(am == 0, 0.0)


class SwinBlock(nn.Module):
    def __init__(self, dim, heads, shift):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SwinAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.shift = shift

    def forward(self, x, mask):
        b, d, h, w, c = x.shape
        ws, ss = swin_window((d, h, w), self.shift)
        y = self.norm1(x)
        p = [(ws[i] - s % ws[i]) % ws[i] for i, s in enumerate((d, h, w))]
        y = F.pad(y, (0, 0, 0, p[2], 0, p[1], 0, p[0]))
        dp, hp, wp = y.shape[1:4]
        shifted = any(ss)
        if shifted:
            y = torch.roll(y, shifts=(-ss[0], -ss[1], -ss[2]), dims=(1, 2, 3))
        y = win_reverse(self.attn(win_partition(y, ws), mask if shifted else None), ws, b, dp, hp, wp)
        if shifted:
            y = torch.roll(y, shifts=tuple(ss), dims=(1, 2, 3))
        x = x + y[:, :d, :h, :w].contiguous()
        return x + self.mlp(self.norm2(x))


class SwinMerge(nn.Module):
    """MONAI 0.9.0 PatchMerging, its slice order included (two duplicated slices)."""

    def __init__(self, dim):
        super().__init__()
        self.reduction = nn.Linear(8 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(8 * dim)

    def forward(self, x):
        o = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 0, 1), (0, 1, 0), (0, 0, 1), (1, 1, 1)]
        return self.reduction(self.norm(torch.cat([x[:, i::2, j::2, k::2, :] for i, j, k in o], -1)))


class SwinStage(nn.Module):
    def __init__(self, dim, depth, heads):
        super().__init__()
        self.blocks = nn.ModuleList([SwinBlock(dim, heads, 0 if j % 2 == 0 else 3) for j in range(depth)])
        self.downsample = SwinMerge(dim)

    def forward(self, x):
        d, h, w = x.shape[2:]
        ws, ss = swin_window((d, h, w), 3)
        mask = swin_mask([-(-s // ws[i]) * ws[i] for i, s in enumerate((d, h, w))], ws, ss) if any(ss) else None
        x = x.permute(0, 2, 3, 4, 1)
        for blk in self.blocks:
            x = blk(x, mask)
        return self.downsample(x).permute(0, 4, 1, 2, 3)


class SwinUNETR(nn.Module):
    def __init__(self, cin=1, cout=5, f=48, depths=(2, 2, 2, 2), heads=(3, 6, 12, 24)):
        super().__init__()
        self.patch_embed = nn.Conv3d(cin, f, 2, stride=2)
        self.layers = nn.ModuleList([SwinStage(f * 2**i, depths[i], heads[i]) for i in range(4)])
        self.encoder1 = ResBlock(cin, f)
        self.encoder2 = ResBlock(f, f)
        self.encoder3 = ResBlock(2 * f, 2 * f)
        self.encoder4 = ResBlock(4 * f, 4 * f)
        self.encoder10 = ResBlock(16 * f, 16 * f)
        self.decoder5 = UpBlock(16 * f, 8 * f)
        self.decoder4 = UpBlock(8 * f, 4 * f)
        self.decoder3 = UpBlock(4 * f, 2 * f)
        self.decoder2 = UpBlock(2 * f, f)
        self.decoder1 = UpBlock(f, f)
        self.out = nn.Conv3d(f, cout, 1)

    def forward(self, x):
        xs = [self.patch_embed(x)]
        for layer in self.layers:
            xs.append(layer(xs[-1]))
        hs = [F.layer_norm(t.permute(0, 2, 3, 4, 1), [t.shape[1]]).permute(0, 4, 1, 2, 3) for t in xs]
        enc0, enc1, enc2, enc3 = self.encoder1(x), self.encoder2(hs[0]), self.encoder3(hs[1]), self.encoder4(hs[2])
        d = self.decoder5(self.encoder10(hs[4]), hs[3])
        d = self.decoder2(self.decoder3(self.decoder4(d, enc3), enc2), enc1)
        return self.out(self.decoder1(d, enc0))


class ViTBlock(nn.Module):
    def __init__(self, hidden, mlp, heads):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(hidden, mlp), nn.GELU(), nn.Linear(mlp, hidden))
        self.norm1 = nn.LayerNorm(hidden)
        self.out_proj = nn.Linear(hidden, hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=False)
        self.norm2 = nn.LayerNorm(hidden)
        self.heads = heads

    def attn(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        att = ((qkv[0] @ qkv[1].transpose(-2, -1)) * (c // self.heads) ** -0.5).softmax(-1)
        return self.out_proj((att @ qkv[2]).transpose(1, 2).reshape(b, n, c))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PrUpBlock(nn.Module):
    def __init__(self, cin, cout, layers):
        super().__init__()
        self.transp_conv_init = nn.ConvTranspose3d(cin, cout, 2, stride=2, bias=False)
        self.blocks = nn.ModuleList([nn.Sequential(nn.ConvTranspose3d(cout, cout, 2, stride=2, bias=False), ResBlock(cout, cout)) for _ in range(layers)])

    def forward(self, x):
        x = self.transp_conv_init(x)
        for b in self.blocks:
            x = b(x)
        return x


class UNETR(nn.Module):
    def __init__(self, cin=1, cout=5, img=96, fs=16, hidden=768, mlp=3072, heads=12):
        super().__init__()
        self.g = img // 16
        self.hidden = hidden
        self.position_embeddings = nn.Parameter(torch.randn(1, self.g**3, hidden) * 0.02)
        self.patch = nn.Linear(16**3 * cin, hidden)
        self.blocks = nn.ModuleList([ViTBlock(hidden, mlp, heads) for _ in range(12)])
        self.norm = nn.LayerNorm(hidden)
        self.encoder1 = ResBlock(cin, fs)
        self.encoder2 = PrUpBlock(hidden, 2 * fs, 2)
        self.encoder3 = PrUpBlock(hidden, 4 * fs, 1)
        self.encoder4 = PrUpBlock(hidden, 8 * fs, 0)
        self.decoder5 = UpBlock(hidden, 8 * fs)
        self.decoder4 = UpBlock(8 * fs, 4 * fs)
        self.decoder3 = UpBlock(4 * fs, 2 * fs)
        self.decoder2 = UpBlock(2 * fs, fs)
        self.out = nn.Conv3d(fs, cout, 1)

    def proj(self, t):
        return t.view(t.shape[0], self.g, self.g, self.g, self.hidden).permute(0, 4, 1, 2, 3)

    def forward(self, x):
        b, c, g = x.shape[0], x.shape[1], self.g
        p = x.reshape(b, c, g, 16, g, 16, g, 16).permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(b, g**3, -1)
        h, hid = self.patch(p) + self.position_embeddings, []
        for blk in self.blocks:
            h = blk(h)
            hid.append(h)
        enc1 = self.encoder1(x)
        enc2, enc3, enc4 = self.encoder2(self.proj(hid[3])), self.encoder3(self.proj(hid[6])), self.encoder4(self.proj(hid[9]))
        d = self.decoder5(self.proj(self.norm(h)), enc4)
        return self.out(self.decoder2(self.decoder3(self.decoder4(d, enc3), enc2), enc1))


COMPARATORS = {"swin_unetr": (SwinUNETR, 62186855), "unetr": (UNETR, 92783893)}


def dice_ce(logits, labels):
    """MONAI DiceCELoss(to_onehot_y=True, softmax=True) semantics: mean soft Dice loss + cross-entropy."""
    p = torch.softmax(logits, 1)
    onehot = F.one_hot(labels[:, 0], logits.shape[1]).permute(0, 4, 1, 2, 3).float()
    dims = (2, 3, 4)
    inter = (p * onehot).sum(dims)
    denom = p.sum(dims) + onehot.sum(dims)
    dice = 1 - (2 * inter + 1e-5) / (denom + 1e-5)
    return dice.mean() + F.cross_entropy(logits, labels[:, 0])


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
    med = statistics.median(ts)
    rate = f" {gflop / med:.{0 if gflop / med >= 10 else 1}f} GFLOP/s" if gflop else ""
    print(f"{name}: min {min(ts):.3f} s, median {med:.3f} s{rate}", flush=True)


def build(net):
    if net == "uxnet":
        return UXNet(), 13
    cls, count = COMPARATORS[net]
    model = cls()
    n = sum(p.numel() for p in model.parameters())
    assert n == count, f"{net}: {n} parameters, MONAI 0.9.0 has {count}"
    return model, 5


for net, s in [("uxnet", 64), ("uxnet", 96), ("swin_unetr", 96), ("unetr", 96)]:
    pre = "" if net == "uxnet" else net + "."
    if f"{pre}fwd{s}" in ONLY:
        model = build(net)[0].eval()
        x = torch.randn(1, 1, s, s, s)
        report(f"{pre}fwd{s}", timed(lambda: model(x), args.reps), FWD_GFLOP[s] if net == "uxnet" else 0)
        del model
    if f"{pre}train{s}" in ONLY:
        model, classes = build(net)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-5)
        x = torch.randn(1, 1, s, s, s)
        y = torch.randint(0, classes, (1, 1, s, s, s))

        def step():
            opt.zero_grad(set_to_none=True)
            loss = dice_ce(model(x), y)
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
