"""The four comparator networks in plain PyTorch, for the bench's PyTorch peer and bench/torch_check.py.

Re-expressed (not copied) from the classes the 3D UX-Net paper trains them with: SwinUNETR and UNETR from
MONAI 0.9.0 (tag 0.9.0, af0e0e9f), nnFormer and TransBTS as vendored in MASILab/3DUX-Net @ 14ea46b. No
MONAI, einops or timm is needed. Every module carries the official attribute names and registration order,
so `state_dict()` has the official keys in the official order (int64 buffers included) and the fixture
weights load with strict=True. The quirks that change values are reproduced on purpose; the fixtures'
SEMANTICS.md lists them (section numbers below refer to it). This is bench tooling, not product code.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------------------
# MONAI 0.9.0 decoder blocks (shared by SwinUNETR and UNETR). MONAI's `Convolution` wraps the layer, hence
# the `.conv` level in every key (`conv1.conv.weight`). InstanceNorm3d is affine-free: no keys.


class Conv(nn.Module):
    """MONAI's `Convolution(conv_only=True)`: the torch layer sits under `.conv`."""

    def __init__(self, layer):
        super().__init__()
        self.conv = layer

    def forward(self, x):
        return self.conv(x)


class UnetResBlock(nn.Module):
    """conv-IN-lrelu-conv-IN (+ 1x1 conv-IN on the residual when widths differ), then lrelu."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = Conv(nn.Conv3d(cin, cout, 3, padding=1, bias=False))
        self.conv2 = Conv(nn.Conv3d(cout, cout, 3, padding=1, bias=False))
        self.conv3 = Conv(nn.Conv3d(cin, cout, 1, bias=False)) if cin != cout else None

    def forward(self, x):
        y = F.leaky_relu(F.instance_norm(self.conv1(x)), 0.01)
        y = F.instance_norm(self.conv2(y))
        r = F.instance_norm(self.conv3(x)) if self.conv3 is not None else x
        return F.leaky_relu(y + r, 0.01)


class UnetrBasicBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.layer = UnetResBlock(cin, cout)

    def forward(self, x):
        return self.layer(x)


class UnetrUpBlock(nn.Module):
    """ConvTranspose k2 s2 (no bias), then a residual block on cat(upsampled, skip): upsampled FIRST."""

    def __init__(self, cin, cout):
        super().__init__()
        self.transp_conv = Conv(nn.ConvTranspose3d(cin, cout, 2, stride=2, bias=False))
        self.conv_block = UnetResBlock(2 * cout, cout)

    def forward(self, x, skip):
        return self.conv_block(torch.cat([self.transp_conv(x), skip], 1))


class UnetrPrUpBlock(nn.Module):
    """UNETR's skip path: ConvTranspose, then num_layer x [ConvTranspose, residual block]."""

    def __init__(self, cin, cout, num_layer):
        super().__init__()
        self.transp_conv_init = Conv(nn.ConvTranspose3d(cin, cout, 2, stride=2, bias=False))
        up = lambda: Conv(nn.ConvTranspose3d(cout, cout, 2, stride=2, bias=False))  # noqa: E731
        self.blocks = nn.ModuleList([nn.Sequential(up(), UnetResBlock(cout, cout)) for _ in range(num_layer)])

    def forward(self, x):
        x = self.transp_conv_init(x)
        for blk in self.blocks:
            x = blk(x)
        return x


class UnetOutBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = Conv(nn.Conv3d(cin, cout, 1))

    def forward(self, x):
        return self.conv(x)


def drop_path(x, p, training):
    """timm/MONAI DropPath: one Bernoulli(1-p) per sample, kept samples scaled by 1/(1-p)."""
    if p == 0.0 or not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1 - p)
    return x * keep / (1 - p)


# ---------------------------------------------------------------------------------------------------------
# Shifted windows (Swin and nnFormer), channels-last grids [B, D, H, W, C] (SEMANTICS.md §0.4).


def window_partition(x, ws):
    b, d, h, w, c = x.shape
    x = x.view(b, d // ws[0], ws[0], h // ws[1], ws[1], w // ws[2], ws[2], c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, ws[0] * ws[1] * ws[2], c)


def window_reverse(x, ws, b, d, h, w):
    x = x.view(b, d // ws[0], h // ws[1], w // ws[2], ws[0], ws[1], ws[2], -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, d, h, w, -1)


def region_mask(padded, ws, ss):
    """The -100/0 shift mask on the padded grid in the rolled frame. The Python slices are kept as written
    upstream: with a shift of 0, slice(-w, -0) is empty and slice(-0, None) is the whole axis."""
    m, cnt = torch.zeros(1, *padded, 1), 0
    sl = [(slice(-ws[i]), slice(-ws[i], -ss[i]), slice(-ss[i], None)) for i in range(3)]
    for a in sl[0]:
        for b in sl[1]:
            for c in sl[2]:
                m[:, a, b, c, :] = cnt
                cnt += 1
    ids = window_partition(m, ws).squeeze(-1)
    diff = ids.unsqueeze(1) - ids.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


def windowed(x, ws, ss, mask, attend):
    """pad at the end (after the norm: pad tokens are zeros and stay unmasked), roll, partition, attend,
    reverse, roll back, crop. `attend` maps [nW*B, n, C] window tokens (and the mask or None) to the same."""
    b, d, h, w, _ = x[0].shape
    p = [(ws[i] - s % ws[i]) % ws[i] for i, s in enumerate((d, h, w))]
    shifted = any(s > 0 for s in ss)
    wins = []
    for t in x:
        t = F.pad(t, (0, 0, 0, p[2], 0, p[1], 0, p[0]))
        if shifted:
            t = torch.roll(t, shifts=(-ss[0], -ss[1], -ss[2]), dims=(1, 2, 3))
        wins.append(window_partition(t, ws))
    y = window_reverse(attend(*wins, mask if shifted else None), ws, b, d + p[0], h + p[1], w + p[2])
    if shifted:
        y = torch.roll(y, shifts=tuple(ss), dims=(1, 2, 3))
    return y[:, :d, :h, :w].contiguous()


def window_attention(q, k, v, heads, bias, mask, scale_q):
    """softmax(q·kᵀ·scale + bias [+ mask]) @ v over [nW*B, n, C] tokens laid out [heads][head_dim]."""
    bn, n, c = q.shape
    q, k, v = (t.reshape(bn, n, heads, c // heads).transpose(1, 2) for t in (q, k, v))
    attn = (q * scale_q) @ k.transpose(-2, -1) + bias.unsqueeze(0)
    if mask is not None:
        nw = mask.shape[0]
        attn = (attn.view(bn // nw, nw, heads, n, n) + mask.unsqueeze(1).unsqueeze(0)).view(bn, heads, n, n)
    return (attn.softmax(-1) @ v).transpose(1, 2).reshape(bn, n, c)


# ---------------------------------------------------------------------------------------------------------
# SwinUNETR (MONAI 0.9.0, SEMANTICS.md §1)


def swin_window_size(size, shift):
    """MONAI get_window_size, per dimension: a dimension <= 7 takes window = size and shift 0."""
    ws, ss = [7, 7, 7], [shift] * 3
    for i in range(3):
        if size[i] <= 7:
            ws[i], ss[i] = size[i], 0
    return ws, ss


class SwinWindowAttention(nn.Module):
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

    def forward(self, x, mask):
        n, c = x.shape[1], x.shape[2]
        q, k, v = self.qkv(x).split(c, -1)
        # §1.6: a shrunken window of n tokens takes the top-left n x n block of the 7³ index
        idx = self.relative_position_index[:n, :n].reshape(-1)
        bias = self.relative_position_bias_table[idx].reshape(n, n, -1).permute(2, 0, 1)
        return self.proj(window_attention(q, k, v, self.heads, bias, mask, (c // self.heads) ** -0.5))


class SwinMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.linear2(F.gelu(self.linear1(x)))


class SwinBlock(nn.Module):
    def __init__(self, dim, heads, shift, drop_path_rate=0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SwinWindowAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = SwinMlp(dim, 4 * dim)
        self.shift, self.dp = shift, drop_path_rate

    def forward(self, x, mask):
        ws, ss = swin_window_size(x.shape[1:4], self.shift)
        x = x + drop_path(windowed([self.norm1(x)], ws, ss, mask, self.attn), self.dp, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.dp, self.training)


class SwinPatchMerging(nn.Module):
    """MONAI 0.9.0 PatchMerging, its slice order included: (0,1,0) and (0,0,1) twice, (1,1,0) and (0,1,1)
    never (§1.8). Sizes are even here (multiples of 32), so the 0.9.0 odd-size pad never applies."""

    def __init__(self, dim):
        super().__init__()
        self.reduction = nn.Linear(8 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(8 * dim)

    def forward(self, x):
        o = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 0, 1), (0, 1, 0), (0, 0, 1), (1, 1, 1)]
        return self.reduction(self.norm(torch.cat([x[:, i::2, j::2, k::2, :] for i, j, k in o], -1)))


class SwinBasicLayer(nn.Module):
    def __init__(self, dim, depth, heads):
        super().__init__()
        self.blocks = nn.ModuleList([SwinBlock(dim, heads, 0 if j % 2 == 0 else 3) for j in range(depth)])
        self.downsample = SwinPatchMerging(dim)

    def forward(self, x):
        size = x.shape[2:]
        ws, ss = swin_window_size(size, 3)
        mask = region_mask([math.ceil(s / ws[i]) * ws[i] for i, s in enumerate(size)], ws, ss) if any(ss) else None
        x = x.permute(0, 2, 3, 4, 1)
        for blk in self.blocks:
            x = blk(x, mask)
        return self.downsample(x).permute(0, 4, 1, 2, 3)


class SwinPatchEmbed(nn.Module):
    def __init__(self, cin, dim):
        super().__init__()
        self.proj = nn.Conv3d(cin, dim, 2, stride=2)

    def forward(self, x):
        return self.proj(x)


class SwinTransformer(nn.Module):
    def __init__(self, cin, f, depths, heads):
        super().__init__()
        self.patch_embed = SwinPatchEmbed(cin, f)
        for i in range(4):
            setattr(self, f"layers{i + 1}", nn.ModuleList([SwinBasicLayer(f * 2**i, depths[i], heads[i])]))

    def forward(self, x):
        xs = [self.patch_embed(x)]
        for i in range(4):
            xs.append(getattr(self, f"layers{i + 1}")[0](xs[-1].contiguous()))
        # proj_out: LayerNorm over channels WITHOUT affine, only on the copies sent to the decoder (§1.3)
        return [F.layer_norm(t.permute(0, 2, 3, 4, 1), [t.shape[1]]).permute(0, 4, 1, 2, 3) for t in xs]


class SwinUNETR(nn.Module):
    """monai.networks.nets.SwinUNETR (0.9.0) with norm_name 'instance', dropouts 0, normalize=True."""

    def __init__(self, img_size=(96, 96, 96), in_channels=1, out_channels=5, depths=(2, 2, 2, 2), num_heads=(3, 6, 12, 24), feature_size=48, **_):
        super().__init__()
        f = feature_size
        assert f % 12 == 0 and all(s % 32 == 0 for s in img_size), "SwinUNETR: feature_size % 12, img_size % 32"
        self.swinViT = SwinTransformer(in_channels, f, depths, num_heads)
        self.encoder1 = UnetrBasicBlock(in_channels, f)
        self.encoder2 = UnetrBasicBlock(f, f)
        self.encoder3 = UnetrBasicBlock(2 * f, 2 * f)
        self.encoder4 = UnetrBasicBlock(4 * f, 4 * f)
        self.encoder10 = UnetrBasicBlock(16 * f, 16 * f)
        self.decoder5 = UnetrUpBlock(16 * f, 8 * f)
        self.decoder4 = UnetrUpBlock(8 * f, 4 * f)
        self.decoder3 = UnetrUpBlock(4 * f, 2 * f)
        self.decoder2 = UnetrUpBlock(2 * f, f)
        self.decoder1 = UnetrUpBlock(f, f)
        self.out = UnetOutBlock(f, out_channels)

    def forward(self, x):
        h = self.swinViT(x)
        enc0, enc1, enc2, enc3 = self.encoder1(x), self.encoder2(h[0]), self.encoder3(h[1]), self.encoder4(h[2])
        dec3 = self.decoder5(self.encoder10(h[4]), h[3])
        dec0 = self.decoder2(self.decoder3(self.decoder4(dec3, enc3), enc2), enc1)
        return self.out(self.decoder1(dec0, enc0))


# ---------------------------------------------------------------------------------------------------------
# UNETR (MONAI 0.9.0, SEMANTICS.md §2)


class Patchify(nn.Module):
    """einops 'b c (h p1) (w p2) (d p3) -> b (h w d) (p1 p2 p3 c)': the channel innermost (§2.2)."""

    def __init__(self, p=16):
        super().__init__()
        self.p = p

    def forward(self, x):
        b, c, d, h, w = x.shape
        p = self.p
        x = x.reshape(b, c, d // p, p, h // p, p, w // p, p).permute(0, 2, 4, 6, 3, 5, 7, 1)
        return x.reshape(b, (d // p) * (h // p) * (w // p), p**3 * c)


class PatchEmbeddingBlock(nn.Module):
    def __init__(self, cin, n_patches, hidden):
        super().__init__()
        self.position_embeddings = nn.Parameter(torch.randn(1, n_patches, hidden) * 0.02)
        self.patch_embeddings = nn.Sequential(Patchify(16), nn.Linear(16**3 * cin, hidden))

    def forward(self, x):
        return self.patch_embeddings(x) + self.position_embeddings


class MLPBlock(nn.Module):
    def __init__(self, hidden, mlp):
        super().__init__()
        self.linear1 = nn.Linear(hidden, mlp)
        self.linear2 = nn.Linear(mlp, hidden)

    def forward(self, x):
        return self.linear2(F.gelu(self.linear1(x)))


class SABlock(nn.Module):
    """0.9.0 self-attention: qkv WITHOUT bias; the product is scaled after q·kᵀ (§0.3)."""

    def __init__(self, hidden, heads):
        super().__init__()
        self.out_proj = nn.Linear(hidden, hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=False)
        self.heads = heads

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        att = ((qkv[0] @ qkv[1].transpose(-2, -1)) * (c // self.heads) ** -0.5).softmax(-1)
        return self.out_proj((att @ qkv[2]).transpose(1, 2).reshape(b, n, c))


class TransformerBlock(nn.Module):
    def __init__(self, hidden, mlp, heads):
        super().__init__()
        self.mlp = MLPBlock(hidden, mlp)
        self.norm1 = nn.LayerNorm(hidden)
        self.attn = SABlock(hidden, heads)
        self.norm2 = nn.LayerNorm(hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(self, cin, n_patches, hidden, mlp, heads):
        super().__init__()
        self.patch_embedding = PatchEmbeddingBlock(cin, n_patches, hidden)
        self.blocks = nn.ModuleList([TransformerBlock(hidden, mlp, heads) for _ in range(12)])
        self.norm = nn.LayerNorm(hidden)

    def forward(self, x):
        x, hidden = self.patch_embedding(x), []
        for blk in self.blocks:
            x = blk(x)
            hidden.append(x)
        return self.norm(x), hidden


class UNETR(nn.Module):
    """monai.networks.nets.UNETR (0.9.0), pos_embed 'perceptron', norm 'instance', res_block True."""

    def __init__(self, in_channels=1, out_channels=5, img_size=(96, 96, 96), feature_size=16, hidden_size=768, mlp_dim=3072, num_heads=12, **_):
        super().__init__()
        fs, hd = feature_size, hidden_size
        self.grid = [s // 16 for s in img_size]
        self.hidden = hd
        self.vit = ViT(in_channels, math.prod(self.grid), hd, mlp_dim, num_heads)
        self.encoder1 = UnetrBasicBlock(in_channels, fs)
        self.encoder2 = UnetrPrUpBlock(hd, 2 * fs, 2)
        self.encoder3 = UnetrPrUpBlock(hd, 4 * fs, 1)
        self.encoder4 = UnetrPrUpBlock(hd, 8 * fs, 0)
        self.decoder5 = UnetrUpBlock(hd, 8 * fs)
        self.decoder4 = UnetrUpBlock(8 * fs, 4 * fs)
        self.decoder3 = UnetrUpBlock(4 * fs, 2 * fs)
        self.decoder2 = UnetrUpBlock(2 * fs, fs)
        self.out = UnetOutBlock(fs, out_channels)

    def proj_feat(self, t):
        return t.view(t.shape[0], *self.grid, self.hidden).permute(0, 4, 1, 2, 3)

    def forward(self, x):
        h, hid = self.vit(x)
        enc1 = self.encoder1(x)
        enc2, enc3, enc4 = (e(self.proj_feat(hid[i])) for e, i in ((self.encoder2, 3), (self.encoder3, 6), (self.encoder4, 9)))
        dec3 = self.decoder5(self.proj_feat(h), enc4)
        return self.out(self.decoder2(self.decoder3(self.decoder4(dec3, enc3), enc2), enc1))


# ---------------------------------------------------------------------------------------------------------
# nnFormer (MASILab/3DUX-Net @ 14ea46b networks/nnFormer/nnFormer_seg.py, SEMANTICS.md §3)


def channel_norm(norm, x):
    """LayerNorm over the channels of [B, C, D, H, W] at every voxel."""
    return norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)


class NFMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class NFWindowAttention(nn.Module):
    """Window attention with nnFormer's relative-position index: multipliers (3w-1) and (2w-1), so different
    offsets share table rows (§3.6). `kv=True` is the decoder's first block: k, v from Linear(skip) and q the
    normalised x_up itself, without a projection (§3.8)."""

    def __init__(self, dim, w, heads, kv=False):
        super().__init__()
        self.relative_position_bias_table = nn.Parameter(torch.randn((2 * w - 1) ** 3, heads) * 0.02)
        c = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), torch.arange(w), indexing="ij")).flatten(1)
        r = (c[:, :, None] - c[:, None, :]).permute(1, 2, 0) + (w - 1)
        self.register_buffer("relative_position_index", r[..., 0] * (3 * w - 1) + r[..., 1] * (2 * w - 1) + r[..., 2])
        if kv:
            self.kv = nn.Linear(dim, 2 * dim)
        else:
            self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.heads, self.is_kv = heads, kv

    def forward(self, x, *rest):
        c = x.shape[2]
        if self.is_kv:  # (skip windows, x_up windows, mask)
            (k, v), q, mask = self.kv(x).split(c, -1), rest[0], rest[1]
        else:
            (q, k, v), mask = self.qkv(x).split(c, -1), rest[0]
        n = x.shape[1]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1).permute(2, 0, 1)
        return self.proj(window_attention(q, k, v, self.heads, bias, mask, (c // self.heads) ** -0.5))


class NFBlock(nn.Module):
    """SwinTransformerBlock(_kv) of nnFormer. Window and shift are fixed at construction from the layer's
    resolution: min(res) <= w gives the cubic window min(res) and shift 0 (note the <=, §3.3)."""

    def __init__(self, dim, res, heads, w, shift, drop_path_rate, kv=False):
        super().__init__()
        if min(res) <= w:
            w, shift = min(res), 0
        self.res, self.w, self.shift, self.dp = res, w, shift, drop_path_rate
        self.norm1 = nn.LayerNorm(dim)
        self.attn = NFWindowAttention(dim, w, heads, kv)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = NFMlp(dim, 4 * dim)

    def forward(self, x, mask, skip=None, x_up=None):
        b, _, c = x.shape
        grid = lambda t: t.view(b, *self.res, c)  # noqa: E731
        ins = [self.norm1(x)] if skip is None else [self.norm1(skip), self.norm1(x_up)]  # one LayerNorm for both
        y = windowed([grid(t) for t in ins], [self.w] * 3, [self.shift] * 3, mask, self.attn)
        x = x + drop_path(y.view(b, -1, c), self.dp, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.dp, self.training)


class NFPatchMerging(nn.Module):
    """GELU, then LayerNorm, then Conv3d k3 s2 p1 (C -> 2C)."""

    def __init__(self, dim):
        super().__init__()
        self.reduction = nn.Conv3d(dim, 2 * dim, 3, stride=2, padding=1)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x, res):
        b, _, c = x.shape
        x = self.norm(F.gelu(x.view(b, *res, c))).permute(0, 4, 1, 2, 3)
        return self.reduction(x).permute(0, 2, 3, 4, 1).reshape(b, -1, 2 * c)


class NFPatchExpanding(nn.Module):
    """LayerNorm(2C), then ConvTranspose3d k2 s2 (2C -> C, with bias)."""

    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.up = nn.ConvTranspose3d(dim, dim // 2, 2, 2)

    def forward(self, x, res):
        b, _, c = x.shape
        x = self.up(self.norm(x.view(b, *res, c)).permute(0, 4, 1, 2, 3))
        return x.permute(0, 2, 3, 4, 1).reshape(b, -1, c // 2)


def nf_layer_mask(res, w):
    """The layer's mask, always with the layer's own (unshrunken) window and shift w // 2 (§3.5)."""
    s = w // 2
    return region_mask([math.ceil(r / w) * w for r in res], [w] * 3, [s] * 3)


class NFBasicLayer(nn.Module):
    def __init__(self, dim, res, depth, heads, w, dpr, downsample):
        super().__init__()
        self.res, self.w = res, w
        self.blocks = nn.ModuleList([NFBlock(dim, res, heads, w, 0 if i % 2 == 0 else w // 2, dpr[i]) for i in range(depth)])
        self.downsample = NFPatchMerging(dim) if downsample else None

    def forward(self, x):
        mask = nf_layer_mask(self.res, self.w) if any(b.shift > 0 for b in self.blocks) else None
        for blk in self.blocks:
            x = blk(x, mask)
        return x, (self.downsample(x, self.res) if self.downsample is not None else x)


class NFBasicLayerUp(nn.Module):
    """Decoder layer: x_up = expand(x); the kv block on x_up + skip; every later block shifted (§3.8)."""

    def __init__(self, dim, res, depth, heads, w, dpr):
        super().__init__()
        self.res, self.w = res, w
        self.blocks = nn.ModuleList([NFBlock(dim, res, heads, w, 0, dpr[0], kv=True)])
        self.blocks.extend(NFBlock(dim, res, heads, w, w // 2, dpr[i + 1]) for i in range(depth - 1))
        self.Upsample = NFPatchExpanding(2 * dim)

    def forward(self, x, skip):
        x_up = self.Upsample(x, [r // 2 for r in self.res])
        mask = nf_layer_mask(self.res, self.w) if any(b.shift > 0 for b in self.blocks) else None
        x = self.blocks[0](x_up + skip, None, skip=skip, x_up=x_up)
        for blk in self.blocks[1:]:
            x = blk(x, mask)
        return x


class NFProject(nn.Module):
    def __init__(self, cin, cout, stride, last):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 3, stride=stride, padding=1)
        self.conv2 = nn.Conv3d(cout, cout, 3, padding=1)
        self.norm1 = nn.LayerNorm(cout)
        self.norm2 = None if last else nn.LayerNorm(cout)

    def forward(self, x):
        x = self.conv2(channel_norm(self.norm1, F.gelu(self.conv1(x))))
        return x if self.norm2 is None else channel_norm(self.norm2, F.gelu(x))


class NFPatchEmbed(nn.Module):
    """Two conv 'project' blocks (strides [p0, p1/2, p2/2] then [p0/2, p1/2, p2/2]) and a channel LayerNorm.
    Valid crops are multiples of the patch size, so the official end-padding never applies."""

    def __init__(self, cin, dim, p):
        super().__init__()
        self.proj1 = NFProject(cin, dim // 2, [p[0], p[1] // 2, p[2] // 2], False)
        self.proj2 = NFProject(dim // 2, dim, [p[0] // 2, p[1] // 2, p[2] // 2], True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return channel_norm(self.norm, self.proj2(self.proj1(x)))


class NFEncoder(nn.Module):
    def __init__(self, crop, cin, dim, p, depths, heads, windows, drop_path_rate):
        super().__init__()
        self.patch_embed = NFPatchEmbed(cin, dim, p)
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.res = [[crop[k] // p[k] // 2**i for k in range(3)] for i in range(4)]
        self.layers = nn.ModuleList(
            NFBasicLayer(dim * 2**i, self.res[i], depths[i], heads[i], windows[i], dpr[sum(depths[:i]) : sum(depths[: i + 1])], i < 3) for i in range(4)
        )
        for i in range(4):
            setattr(self, f"norm{i}", nn.LayerNorm(dim * 2**i))

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        skips = []
        for i, layer in enumerate(self.layers):
            out, x = layer(x)
            skips.append(getattr(self, f"norm{i}")(out))  # tokens [B, L, C]; the next stage gets `x` un-normalised
        return skips


class NFDecoder(nn.Module):
    def __init__(self, crop, dim, p, depths, heads, windows, drop_path_rate):
        super().__init__()
        # the official call passes the encoder lists reversed minus the bottleneck, and builds layer i_layer = 2, 1, 0
        dd, hh, ww = depths[::-1][1:], heads[::-1][1:], windows[::-1][1:]
        dpr = torch.linspace(0, drop_path_rate, sum(dd)).tolist()
        self.layers = nn.ModuleList()
        for i in (2, 1, 0):
            k = 2 - i  # decoder.layers[k] mirrors encoder stage k
            res = [crop[j] // p[j] // 2**k for j in range(3)]
            self.layers.append(NFBasicLayerUp(dim * 2**k, res, dd[i], hh[i], ww[i], dpr[sum(dd[:i]) : sum(dd[: i + 1])]))

    def forward(self, x, skips):
        for k in (2, 1, 0):
            x = self.layers[k](x, skips[k])
        return x


class NFFinal(nn.Module):
    def __init__(self, dim, classes, p):
        super().__init__()
        self.up = nn.ConvTranspose3d(dim, classes, p, p)

    def forward(self, x):
        return self.up(x)


class nnFormer(nn.Module):
    """nnFormer_seg.nnFormer (deep_supervision False). The input must be exactly crop_size. DropPath uses the
    official hidden default rate 0.2 in training mode; pass drop_path_rate=0 for a deterministic step."""

    def __init__(self, crop_size=(96, 96, 96), embedding_dim=192, input_channels=1, num_classes=14, depths=(2, 2, 2, 2), num_heads=(6, 12, 24, 48), patch_size=(2, 4, 4), window_size=(4, 4, 8, 4), drop_path_rate=0.2, **_):
        super().__init__()
        self.model_down = NFEncoder(crop_size, input_channels, embedding_dim, patch_size, depths, num_heads, window_size, drop_path_rate)
        self.decoder = NFDecoder(crop_size, embedding_dim, patch_size, depths, num_heads, window_size, drop_path_rate)
        self.final = nn.ModuleList([NFFinal(embedding_dim, num_classes, patch_size)])
        self.res0 = self.model_down.res[0]

    def forward(self, x):
        skips = self.model_down(x)
        y = self.decoder(skips[3], skips)
        b, _, c = y.shape
        return self.final[0](y.view(b, *self.res0, c).permute(0, 4, 1, 2, 3))


# ---------------------------------------------------------------------------------------------------------
# TransBTS (MASILab/3DUX-Net @ 14ea46b networks/TransBTS/*, SEMANTICS.md §4), with the fixtures' documented
# generalisation of the hard-coded widths (unet_base_channels b, embedding_dim E = 32b, img_dim): at b = 16,
# E = 512, img_dim = 96 it is the official network exactly.


class InitConv(nn.Module):
    """conv, then F.dropout3d(p) whose `training` defaults to True: ACTIVE IN EVAL MODE (§4.2). `p` = 0
    makes it the identity (the fixtures' deterministic path); `mask` ([N, C] of 0/1) replays a recorded draw
    as ATen does, conv * (mask * 1/(1-p))."""

    def __init__(self, cin, cout, p=0.2):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 3, padding=1)
        self.p, self.mask = p, None

    def forward(self, x):
        y = self.conv(x)
        if self.mask is not None:
            return y * (self.mask * (1 / (1 - self.p)))[:, :, None, None, None]
        return F.dropout3d(y, self.p) if self.p > 0 else y


class GNBlock(nn.Module):
    """Unet EnBlock, pre-activation: conv2(relu(GN(conv1(relu(GN(x)))))) + x; its GroupNorms are named bn."""

    def __init__(self, c):
        super().__init__()
        self.bn1 = nn.GroupNorm(8, c)
        self.conv1 = nn.Conv3d(c, c, 3, padding=1)
        self.bn2 = nn.GroupNorm(8, c)
        self.conv2 = nn.Conv3d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x)))))) + x


class EnDown(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class BTSUnet(nn.Module):
    def __init__(self, cin, b):
        super().__init__()
        self.InitConv = InitConv(cin, b)
        self.EnBlock1 = GNBlock(b)
        self.EnDown1 = EnDown(b, 2 * b)
        self.EnBlock2_1, self.EnBlock2_2 = GNBlock(2 * b), GNBlock(2 * b)
        self.EnDown2 = EnDown(2 * b, 4 * b)
        self.EnBlock3_1, self.EnBlock3_2 = GNBlock(4 * b), GNBlock(4 * b)
        self.EnDown3 = EnDown(4 * b, 8 * b)
        self.EnBlock4_1, self.EnBlock4_2, self.EnBlock4_3, self.EnBlock4_4 = (GNBlock(8 * b) for _ in range(4))

    def forward(self, x):
        x1 = self.EnBlock1(self.InitConv(x))
        x2 = self.EnBlock2_2(self.EnBlock2_1(self.EnDown1(x1)))
        x3 = self.EnBlock3_2(self.EnBlock3_1(self.EnDown2(x2)))
        x4 = self.EnDown3(x3)
        for blk in (self.EnBlock4_1, self.EnBlock4_2, self.EnBlock4_3, self.EnBlock4_4):
            x4 = blk(x4)
        return x1, x2, x3, x4


class BTSSelfAttention(nn.Module):
    def __init__(self, dim, heads, p):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attn_drop = nn.Dropout(p)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(p)
        self.heads = heads

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        att = self.attn_drop(((qkv[0] @ qkv[1].transpose(-2, -1)) * (c // self.heads) ** -0.5).softmax(-1))
        return self.proj_drop(self.proj((att @ qkv[2]).transpose(1, 2).reshape(b, n, c)))


class PreNorm(nn.Module):
    """Residual(PreNorm / PreNormDrop(fn)) flattened into one module: keys `fn.norm.*`, `fn.fn.*`."""

    def __init__(self, dim, fn, p=None):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(p) if p is not None else nn.Identity()
        self.fn = fn

    def forward(self, x):
        return self.dropout(self.fn(self.norm(x)))


class Residual(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x) + x


class FeedForward(nn.Module):
    def __init__(self, dim, hidden, p):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(p), nn.Linear(hidden, dim), nn.Dropout(p))

    def forward(self, x):
        return self.net(x)


class BTSTransformer(nn.Module):
    def __init__(self, dim, depth, heads, hidden, p, p_attn):
        super().__init__()
        layers = []
        for _ in range(depth):
            layers += [Residual(PreNorm(dim, BTSSelfAttention(dim, heads, p_attn), p)), Residual(PreNorm(dim, FeedForward(dim, hidden, p)))]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        intmd = []
        for m in self.net:
            x = m(x)
            intmd.append(x)
        return x, intmd


class PositionEncoding(nn.Module):
    def __init__(self, n, dim):
        super().__init__()
        self.position_embeddings = nn.Parameter(torch.zeros(1, n, dim))

    def forward(self, x):
        return x + self.position_embeddings


class BNBlock(nn.Module):
    """EnBlock1/EnBlock2/DeBlock: relu(BN(conv2(relu(BN(conv1(x)))))) [+ x]; `order` keeps each official
    class's registration order, hence its key order."""

    def __init__(self, cin, cout, residual, order):
        super().__init__()
        make = {"bn1": lambda: nn.BatchNorm3d(cout), "bn2": lambda: nn.BatchNorm3d(cout), "conv1": lambda: nn.Conv3d(cin, cout, 3, padding=1), "conv2": lambda: nn.Conv3d(cout, cout, 3, padding=1)}
        for name in order:
            setattr(self, name, make[name]())
        self.residual = residual

    def forward(self, x):
        y = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return y + x if self.residual else y


class DeUpCat(nn.Module):
    """1x1 conv, ConvTranspose k2 s2, cat((SKIP, up)) -- skip first, unlike MONAI -- and a 1x1 conv."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 1)
        self.conv2 = nn.ConvTranspose3d(cout, cout, 2, stride=2)
        self.conv3 = nn.Conv3d(2 * cout, cout, 1)

    def forward(self, x, prev):
        return self.conv3(torch.cat((prev, self.conv2(self.conv1(x))), 1))


class TransBTS(nn.Module):
    """BTS(img_dim, patch_dim 8, num_channels, num_classes, embedding_dim, num_heads, num_layers, hidden_dim,
    dropout_rate, attn_dropout_rate, conv_patch_representation=True, learned positions)."""

    def __init__(self, num_classes, img_dim=96, patch_dim=8, num_channels=1, embedding_dim=512, num_heads=8, num_layers=4, hidden_dim=4096, dropout_rate=0.1, attn_dropout_rate=0.1, unet_base_channels=16, **_):
        super().__init__()
        b, e, g = unet_base_channels, embedding_dim, img_dim // patch_dim
        assert num_layers >= 4 and b % 8 == 0 and e == 32 * b, "TransBTS: num_layers >= 4, b % 8 == 0, embedding_dim == 32 b"
        self.g, self.e = g, e
        self.linear_encoding = nn.Linear(128 * num_channels, e)  # never used (conv patch representation)
        self.position_encoding = PositionEncoding(g**3, e)
        self.pe_dropout = nn.Dropout(dropout_rate)
        self.transformer = BTSTransformer(e, num_layers, num_heads, hidden_dim, dropout_rate, attn_dropout_rate)
        self.pre_head_ln = nn.LayerNorm(e)  # computed by the official encode(), never used by decode()
        self.conv_x = nn.Conv3d(8 * b, e, 3, padding=1)
        self.Unet = BTSUnet(num_channels, b)
        self.bn = nn.BatchNorm3d(8 * b)
        self.Enblock8_1 = BNBlock(e, e // 4, False, ("bn1", "bn2", "conv1", "conv2"))
        self.Enblock8_2 = BNBlock(e // 4, e // 4, True, ("conv1", "bn1", "bn2", "conv2"))
        for k, c in ((4, e // 8), (3, e // 16), (2, e // 32)):
            setattr(self, f"DeUp{k}", DeUpCat(2 * c, c))
            setattr(self, f"DeBlock{k}", BNBlock(c, c, True, ("bn1", "conv1", "conv2", "bn2")))
        self.endconv = nn.Conv3d(e // 32, num_classes, 1)

    def forward(self, x):
        x1, x2, x3, u = self.Unet(x)
        t = self.conv_x(F.relu(self.bn(u))).permute(0, 2, 3, 4, 1).reshape(x.shape[0], -1, self.e)
        h, intmd = self.transformer(self.pe_dropout(self.position_encoding(t)))
        self.pre_head_ln(h)  # the official forward computes it and throws it away
        # decode reads intmd['7'], transformer layer 4's output WITHOUT pre_head_ln (§4.5)
        x8 = intmd[7].view(x.shape[0], self.g, self.g, self.g, self.e).permute(0, 4, 1, 2, 3)
        x8 = self.Enblock8_2(self.Enblock8_1(x8))
        y = self.DeBlock4(self.DeUp4(x8, x3))
        y = self.DeBlock3(self.DeUp3(y, x2))
        y = self.DeBlock2(self.DeUp2(y, x1))
        return self.endconv(y)


def deterministic(model):
    """Every dropout p = 0, TransBTS's always-on dropout3d off, DropPath off: the fixtures' training step and
    our bench's timing runs (a few elementwise products less)."""
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        if isinstance(m, InitConv):
            m.p = 0.0
        if hasattr(m, "dp"):
            m.dp = 0.0
    return model


# The official full configurations (FLARE, 5 classes) and their parameter counts, counted by instantiating
# the real classes (fixtures' baselines_param_counts.json; TransBTS: 'flare' gives the code's 4 classes,
# 31,577,268, and 31,577,285 with 5).
OFFICIAL = {
    "swin_unetr": (SwinUNETR, dict(img_size=(96, 96, 96), in_channels=1, out_channels=5, feature_size=48), 62186855),
    "unetr": (UNETR, dict(in_channels=1, out_channels=5, img_size=(96, 96, 96), feature_size=16, hidden_size=768, mlp_dim=3072, num_heads=12), 92783893),
    "nnformer": (nnFormer, dict(input_channels=1, num_classes=5), 149265629),
    "transbts": (TransBTS, dict(num_classes=5), 31577285),
}
# `--tiny`: the small variants bench/worker.ts times with --tiny (same input 96³).
TINY = {
    "swin_unetr": dict(img_size=(96, 96, 96), in_channels=1, out_channels=5, feature_size=12),
    "unetr": dict(in_channels=1, out_channels=5, img_size=(96, 96, 96), feature_size=4, hidden_size=48, mlp_dim=96, num_heads=4),
    "nnformer": dict(input_channels=1, num_classes=5, embedding_dim=12, num_heads=(1, 2, 4, 8)),
    "transbts": dict(num_classes=5, unet_base_channels=8, embedding_dim=256, hidden_dim=64),
}
CLASSES = {"swin_unetr": SwinUNETR, "unetr": UNETR, "nnformer": nnFormer, "transbts": TransBTS}


def count(model):
    return sum(p.numel() for p in model.parameters())


def build(net, tiny=False):
    """The network at the official FLARE call (parameter count asserted) or its --tiny variant."""
    cls, kwargs, n = OFFICIAL[net]
    if tiny:
        return cls(**TINY[net])
    model = cls(**kwargs)
    assert count(model) == n, f"{net}: {count(model)} parameters, the official class has {n}"
    return model


def dice_ce(logits, labels):
    """MONAI 0.9.0 DiceCELoss(to_onehot_y=True, softmax=True): mean soft Dice loss over (batch, class), each
    over the voxels with smooth 1e-5 on both sides, plus mean cross-entropy. `labels` are [B, 1, ...] ints."""
    p = torch.softmax(logits, 1)
    onehot = F.one_hot(labels[:, 0], logits.shape[1]).movedim(-1, 1).to(logits.dtype)
    dims = tuple(range(2, logits.dim()))
    inter = (p * onehot).sum(dims)
    denom = p.sum(dims) + onehot.sum(dims)
    dice = 1 - (2 * inter + 1e-5) / (denom + 1e-5)
    return dice.mean() + F.cross_entropy(logits, labels[:, 0])
