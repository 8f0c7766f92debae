import { add, attention, concat, gatherRows, layerNorm, matmul, pad, permute, reshape, roll, slice, tensor } from '../engine/index.js';
import { tidy } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
import { Conv3d, LayerNorm } from '../nn/layers.js';
import { Linear } from '../nn/linear.js';
import { initContext, Module, ModuleList, type InitContext } from '../nn/module.js';
import { UnetOutBlock } from './blocks/unet-out-block.js';
import { UnetrBasicBlock } from './blocks/unet-res-block.js';
import { UnetrUpBlock } from './blocks/unetr-up-block.js';
import { checkBasicInput, NetworkInputError } from './network-input.js';
import { RecordingNetwork, sub, type Put } from './recording-network.js';
import { normalizeSwinUNETRConfig, SWIN_PATCH, SWIN_WINDOW, type SwinUNETRConfig } from './swin-unetr-config.js';
import { attentionMaskFactors, biasRows, getWindowSize, paddedSize, regionIds, relativePositionIndex, type Size3 } from './swin-windows.js';

const FULL_INDEX = relativePositionIndex(SWIN_WINDOW);
const FULL_N = SWIN_WINDOW ** 3;

/** MONAI 0.9.0 `WindowAttention` for the 7³ window: table [13³, heads], index buffer [343, 343]. */
class WindowAttention extends Module {
  readonly relative_position_bias_table: Tensor;
  readonly qkv: Linear;
  readonly proj: Linear;
  private readonly rows = new Map<number, Int32Array>();

  constructor(
    readonly dim: number,
    readonly heads: number,
    init: InitContext,
  ) {
    super();
    const m = 2 * SWIN_WINDOW - 1;
    // MONAI: trunc_normal_(std=0.02); checkpoints overwrite it.
    this.relative_position_bias_table = this.createParameter(init, 'relative_position_bias_table', [m * m * m, heads], (n, rng) => rng.normalArray(n, 0, 0.02));
    this.registerBuffer('relative_position_index', [FULL_N, FULL_N], FULL_INDEX, 'I64');
    this.qkv = this.registerModule('qkv', new Linear(dim, 3 * dim, { init }));
    this.proj = this.registerModule('proj', new Linear(dim, dim, { init }));
  }

  /** The gathered bias [heads, n, n] as MONAI adds it (the `[:n, :n]` slice of the 7³ index). */
  bias(n: number): Tensor {
    let rows = this.rows.get(n);
    if (!rows) this.rows.set(n, (rows = biasRows(FULL_INDEX, FULL_N, n)));
    return permute(gatherRows(this.relative_position_bias_table, rows, [n, n, this.heads]), [2, 0, 1]);
  }

  /** x [b, n, C] window tokens; mask [1, nW, 1, n, n] or null. */
  forward(x: Tensor, mask: Tensor | null, put?: Put): Tensor {
    return tidy(() => {
      const [, n, c] = x.shape as [number, number, number];
      const d = c / this.heads;
      const bias = this.bias(n);
      put?.('relative_position_bias', bias);
      // The packed qkv output is [3][heads][d] per token: the fused op reads q, k, v in place. MONAI
      // scales q before the product (SEMANTICS.md §0.3); window b gets mask[b mod nW].
      const qkv = this.qkv.forward(x);
      const o = attention(qkv, qkv, qkv, {
        heads: this.heads,
        headDim: d,
        kCol: c,
        vCol: 2 * c,
        bias,
        mask: mask ? reshape(mask, [mask.shape[1]!, n, n]) : null,
        qScale: d ** -0.5,
      });
      return this.proj.forward(o);
    });
  }
}

/** MONAI `MLPBlock` in "swin" mode: linear1 (C→4C) → GELU → linear2; dropouts p = 0 (no keys). */
class SwinMLP extends Module {
  readonly linear1: Linear;
  readonly linear2: Linear;
  constructor(dim: number, hidden: number, init: InitContext) {
    super();
    this.linear1 = this.registerModule('linear1', new Linear(dim, hidden, { init }));
    this.linear2 = this.registerModule('linear2', new Linear(hidden, dim, { init }));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.linear2.forward(this.linear1.forwardGelu(x)));
  }
}

/** Per-stage geometry shared by the blocks of a stage. */
interface StageGeometry {
  window: Size3;
  padded: Size3;
  /** [1, nW, 1, n, n] additive mask for shifted blocks, or null when the stage's shift is 0 everywhere. */
  mask: Tensor | null;
}

/** window_partition: [B, P0, P1, P2, C] → [B·nW, n, C], windows batch-major, tokens (d, h, w) row-major. */
function partition(x: Tensor, w: Size3): Tensor {
  const [b, p0, p1, p2, c] = x.shape as [number, number, number, number, number];
  const v = reshape(x, [b, p0 / w[0], w[0], p1 / w[1], w[1], p2 / w[2], w[2], c]);
  return reshape(permute(v, [0, 1, 3, 5, 2, 4, 6, 7]), [-1, w[0] * w[1] * w[2], c]);
}

/** window_reverse: the inverse of partition. */
function unpartition(x: Tensor, w: Size3, b: number, padded: Size3): Tensor {
  const c = x.shape[2]!;
  const v = reshape(x, [b, padded[0] / w[0], padded[1] / w[1], padded[2] / w[2], w[0], w[1], w[2], c]);
  return reshape(permute(v, [0, 1, 4, 2, 5, 3, 6, 7]), [b, padded[0], padded[1], padded[2], c]);
}

/** MONAI 0.9.0 `SwinTransformerBlock` (channels-last tokens). */
class SwinTransformerBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn: WindowAttention;
  readonly norm2: LayerNorm;
  readonly mlp: SwinMLP;

  constructor(
    readonly dim: number,
    heads: number,
    readonly shift: Size3,
    init: InitContext,
  ) {
    super();
    this.norm1 = this.registerModule('norm1', new LayerNorm(dim, { eps: 1e-5, channelsLast: true, init }));
    this.attn = this.registerModule('attn', new WindowAttention(dim, heads, init));
    this.norm2 = this.registerModule('norm2', new LayerNorm(dim, { eps: 1e-5, channelsLast: true, init }));
    this.mlp = this.registerModule('mlp', new SwinMLP(dim, 4 * dim, init));
  }

  forward(x: Tensor, geo: StageGeometry, put?: Put): Tensor {
    return tidy(() => {
      const [b, r0, r1, r2] = x.shape as [number, number, number, number, number];
      const size: Size3 = [r0, r1, r2];
      const { window, shift } = getWindowSize(size, [SWIN_WINDOW, SWIN_WINDOW, SWIN_WINDOW], this.shift);
      const padded = paddedSize(size, window);
      const needsPad = padded.some((p, i) => p !== size[i]);
      // Pad tokens are zeros after the norm and take part in attention unmasked (SEMANTICS.md §1.5).
      let h = this.norm1.forward(x);
      if (needsPad)
        h = pad(h, [
          [0, 0],
          [0, padded[0] - r0],
          [0, padded[1] - r1],
          [0, padded[2] - r2],
          [0, 0],
        ]);
      const shifted = shift.some((s) => s > 0);
      if (shifted)
        h = roll(
          h,
          shift.map((s) => -s),
          [1, 2, 3],
        );
      const windows = partition(h, window);
      put?.('attn.input', windows);
      const att = this.attn.forward(windows, shifted ? geo.mask : null, put ? (n, t) => put(`attn.${n}`, t) : undefined);
      put?.('attn.output', att);
      h = unpartition(att, window, b, padded);
      if (shifted) h = roll(h, [...shift], [1, 2, 3]);
      if (needsPad) h = slice(h, [0, 0, 0, 0, 0], [b, r0, r1, r2, this.dim]);
      const y = add(x, h);
      return add(y, this.mlp.forward(this.norm2.forward(y)));
    });
  }
}

/**
 * MONAI 0.9.0 `PatchMerging`: eight strided slices concatenated on channels in 0.9.0's order, with two
 * duplicates — offsets (0,0,0),(1,0,0),(0,1,0),(0,0,1),(1,0,1),(0,1,0),(0,0,1),(1,1,1) — so the voxels at
 * (1,1,0) and (0,1,1) of every 2×2×2 cell are dropped (SEMANTICS.md §1.8); then LN(8C) and Linear(8C→2C, no bias).
 */
class PatchMerging extends Module {
  static readonly OFFSETS = [
    [0, 0, 0],
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 1],
    [1, 0, 1],
    [0, 1, 0],
    [0, 0, 1],
    [1, 1, 1],
  ] as const;
  readonly reduction: Linear;
  readonly norm: LayerNorm;
  constructor(
    readonly dim: number,
    init: InitContext,
  ) {
    super();
    this.reduction = this.registerModule('reduction', new Linear(8 * dim, 2 * dim, { bias: false, init }));
    this.norm = this.registerModule('norm', new LayerNorm(8 * dim, { eps: 1e-5, channelsLast: true, init }));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const [b, d, h, w, c] = x.shape as [number, number, number, number, number];
      // Every size is even for valid inputs (multiples of 32), so 0.9.0's odd-size pad (itself buggy) never runs.
      if (d % 2 || h % 2 || w % 2) throw new Error(`PatchMerging: odd size ${d}×${h}×${w} (inputs must be multiples of 32)`);
      const parts = PatchMerging.OFFSETS.map(([i, j, k]) => slice(x, [0, i, j, k, 0], [b, d, h, w, c], [1, 2, 2, 2, 1]));
      return this.reduction.forward(this.norm.forward(concat(parts, -1)));
    });
  }
}

/** MONAI 0.9.0 `BasicLayer`: depth blocks (odd ones shifted by 3), then PatchMerging. Channels-first in and out. */
class BasicLayer extends Module {
  readonly blocks: ModuleList<SwinTransformerBlock>;
  readonly downsample: PatchMerging;
  constructor(
    readonly dim: number,
    depth: number,
    heads: number,
    init: InitContext,
  ) {
    super();
    const half = Math.floor(SWIN_WINDOW / 2);
    const blocks: SwinTransformerBlock[] = [];
    for (let j = 0; j < depth; j++) blocks.push(new SwinTransformerBlock(dim, heads, j % 2 === 0 ? [0, 0, 0] : [half, half, half], init));
    this.blocks = this.registerModule('blocks', new ModuleList(blocks));
    this.downsample = this.registerModule('downsample', new PatchMerging(dim, init));
  }

  forward(x: Tensor, put?: Put): Tensor {
    return tidy(() => {
      const [, , d, h, w] = x.shape as [number, number, number, number, number];
      const half = Math.floor(SWIN_WINDOW / 2);
      const { window, shift } = getWindowSize([d, h, w], [SWIN_WINDOW, SWIN_WINDOW, SWIN_WINDOW], [half, half, half]);
      const padded = paddedSize([d, h, w], window);
      // MONAI computes the mask once per stage with the adjusted window and shift; blocks use it only when shifted.
      let mask: Tensor | null = null;
      if (shift.some((s) => s > 0) && this.blocks.length > 1) {
        const { ids, nW, n } = regionIds(padded, window, shift);
        put?.('mask_windows', tensor(ids, [nW, n]));
        const f = attentionMaskFactors(ids, nW, n);
        mask = reshape(matmul(tensor(f.a, [nW, n, f.k]), tensor(f.b, [nW, n, f.k]), { transB: true }), [1, nW, 1, n, n]);
        put?.('attn_mask', reshape(mask, [nW, n, n]));
      }
      let t = permute(x, [0, 2, 3, 4, 1]);
      this.blocks.items.forEach((blk, j) => {
        t = blk.forward(t, { window, padded, mask }, sub(put, `blocks.${j}.`));
        put?.(`blocks.${j}`, t);
      });
      const y = this.downsample.forward(t);
      put?.('downsample', y);
      return permute(y, [0, 4, 1, 2, 3]);
    });
  }
}

/** MONAI 0.9.0 `PatchEmbed` without norm (patch_norm is False): Conv3d(in, F, k2, s2, bias). */
class PatchEmbed extends Module {
  readonly proj: Conv3d;
  constructor(inChannels: number, dim: number, init: InitContext) {
    super();
    this.proj = this.registerModule('proj', new Conv3d(inChannels, dim, SWIN_PATCH, { stride: SWIN_PATCH, init }));
  }
}

/** MONAI 0.9.0 `SwinTransformer` (`swinViT`): keys `layers{1..4}.0.…` (each stage is a one-element ModuleList). */
class SwinTransformer extends Module {
  readonly patch_embed: PatchEmbed;
  readonly layers: BasicLayer[];
  constructor(cfg: SwinUNETRConfig, init: InitContext) {
    super();
    this.patch_embed = this.registerModule('patch_embed', new PatchEmbed(cfg.inChannels, cfg.featureSize, init));
    this.layers = [0, 1, 2, 3].map((i) => {
      const layer = new BasicLayer(cfg.featureSize * 2 ** i, cfg.depths[i]!, cfg.numHeads[i]!, init);
      this.registerModule(`layers${i + 1}`, new ModuleList([layer]));
      return layer;
    });
  }
}

/** Names of the main tensors `forwardWithIntermediates` returns (fixture names; block-level ones are added too). */
export const SWIN_UNETR_ACTIVATIONS = [
  'input',
  'x0',
  'x1',
  'x2',
  'x3',
  'x4',
  ...[0, 1, 2, 3, 4].map((i) => `hidden_states_out.${i}`),
  'enc0',
  'enc1',
  'enc2',
  'enc3',
  'dec4',
  'dec3',
  'dec2',
  'dec1',
  'dec0',
  'logits',
] as const;

/**
 * SwinUNETR (Hatamizadeh et al., 2022), a port of MONAI 0.9.0's `SwinUNETR` with its state-dict keys
 * and order (the int64 `relative_position_index` buffers included), reproducing 0.9.0's quirks on
 * purpose: the PatchMerging slice order, the `[:n, :n]` bias slice of shrunken windows, unmasked pad
 * tokens and the −100 shift mask. Inputs [N, inChannels, D, H, W] with D, H, W multiples of 32 (any
 * such size, whatever `img_size` says); output raw logits of the same spatial size.
 */
export class SwinUNETR extends RecordingNetwork {
  readonly config: Readonly<SwinUNETRConfig>;
  readonly swinViT: SwinTransformer;
  readonly encoder1: UnetrBasicBlock;
  readonly encoder2: UnetrBasicBlock;
  readonly encoder3: UnetrBasicBlock;
  readonly encoder4: UnetrBasicBlock;
  readonly encoder10: UnetrBasicBlock;
  readonly decoder5: UnetrUpBlock;
  readonly decoder4: UnetrUpBlock;
  readonly decoder3: UnetrUpBlock;
  readonly decoder2: UnetrUpBlock;
  readonly decoder1: UnetrUpBlock;
  readonly out: UnetOutBlock;

  constructor(config: unknown, opts: { seed?: number; meta?: boolean } = {}) {
    super();
    const cfg = normalizeSwinUNETRConfig(config);
    this.config = Object.freeze(cfg);
    const init = initContext({ seed: opts.seed, meta: opts.meta });
    const f = cfg.featureSize;
    const res = { kernelSize: 3, stride: 1, init };
    const up = { kernelSize: 3, upsampleKernelSize: 2, init };
    this.swinViT = this.registerModule('swinViT', new SwinTransformer(cfg, init));
    this.encoder1 = this.registerModule('encoder1', new UnetrBasicBlock(cfg.inChannels, f, res));
    this.encoder2 = this.registerModule('encoder2', new UnetrBasicBlock(f, f, res));
    this.encoder3 = this.registerModule('encoder3', new UnetrBasicBlock(2 * f, 2 * f, res));
    this.encoder4 = this.registerModule('encoder4', new UnetrBasicBlock(4 * f, 4 * f, res));
    this.encoder10 = this.registerModule('encoder10', new UnetrBasicBlock(16 * f, 16 * f, res));
    this.decoder5 = this.registerModule('decoder5', new UnetrUpBlock(16 * f, 8 * f, up));
    this.decoder4 = this.registerModule('decoder4', new UnetrUpBlock(8 * f, 4 * f, up));
    this.decoder3 = this.registerModule('decoder3', new UnetrUpBlock(4 * f, 2 * f, up));
    this.decoder2 = this.registerModule('decoder2', new UnetrUpBlock(2 * f, f, up));
    this.decoder1 = this.registerModule('decoder1', new UnetrUpBlock(f, f, up));
    this.out = this.registerModule('out', new UnetOutBlock(f, cfg.outChannels, { init }));
  }

  get inChannels(): number {
    return this.config.inChannels;
  }
  get outChannels(): number {
    return this.config.outChannels;
  }
  /** Any multiple of 32 works, so there is no fixed input size. */
  get fixedInputSize(): null {
    return null;
  }

  checkInputShape(shape: readonly number[]): void {
    checkBasicInput('SwinUNETR', shape, this.config.inChannels);
    const sp = shape.slice(2);
    if (sp.some((d) => d < 32 || d % 32 !== 0)) {
      throw new NetworkInputError(
        `SwinUNETR input spatial size ${sp.join('×')} is invalid: every spatial dimension must be a positive multiple of 32 (the network halves the size five times); pad or crop the volume, or use sliding-window inference`,
      );
    }
    if (sp.every((d) => d === 32))
      throw new NetworkInputError(
        `SwinUNETR input spatial size ${sp.join('×')} gives a 1×1×1 bottleneck, where instance normalisation is undefined (PyTorch refuses it too); use at least 64 in one dimension`,
      );
  }

  private projOut(x: Tensor): Tensor {
    if (!this.config.normalize) return x;
    return tidy(() => permute(layerNorm(permute(x, [0, 2, 3, 4, 1]), null, null, { eps: 1e-5, channelsLast: true }), [0, 4, 1, 2, 3]));
  }

  /**
   * Records under the fixture names: SWIN_UNETR_ACTIVATIONS plus `swinViT.layers{s}.0.…` (blocks,
   * attention inputs/outputs, gathered biases, region ids, masks, downsample).
   */
  protected run(x: Tensor, put?: Put): Tensor {
    const vit = this.swinViT;
    const x0 = vit.patch_embed.proj.forward(x);
    put?.('x0', x0);
    const xs = [x0];
    vit.layers.forEach((layer, i) => {
      const y = layer.forward(xs[i]!, sub(put, `swinViT.layers${i + 1}.0.`));
      put?.(`x${i + 1}`, y);
      xs.push(y);
    });
    const hs = xs.map((t, i) => {
      const h = this.projOut(t);
      put?.(`hidden_states_out.${i}`, h);
      return h;
    });
    // The un-normalised stage outputs are no longer needed (autograd keeps its own references).
    if (!put) for (const t of xs) if (!hs.includes(t)) t.dispose();
    const enc0 = this.encoder1.forward(x);
    const enc1 = this.encoder2.forward(hs[0]!);
    const enc2 = this.encoder3.forward(hs[1]!);
    const enc3 = this.encoder4.forward(hs[2]!);
    const dec4 = this.encoder10.forward(hs[4]!);
    const dec3 = this.decoder5.forward(dec4, hs[3]!);
    const dec2 = this.decoder4.forward(dec3, enc3);
    const dec1 = this.decoder3.forward(dec2, enc2);
    const dec0 = this.decoder2.forward(dec1, enc1);
    const out = this.decoder1.forward(dec0, enc0);
    if (put) for (const [n, t] of Object.entries({ enc0, enc1, enc2, enc3, dec4, dec3, dec2, dec1, dec0 })) put(n, t);
    return this.out.forward(out);
  }

  static countParameters(config: unknown): number {
    return new SwinUNETR(config, { meta: true }).numParameters();
  }
}
