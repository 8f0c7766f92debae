import { add, attention, gatherRows, gelu, pad, permute, reshape, roll, slice, tensor } from '../engine/index.js';
import { tidy } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
import { Conv3d, ConvTranspose3d, LayerNorm } from '../nn/layers.js';
import { Linear } from '../nn/linear.js';
import { initContext, Module, ModuleList, type InitContext } from '../nn/module.js';
import { checkBasicInput, NetworkInputError } from './network-input.js';
import { RecordingNetwork, sub, type Put } from './recording-network.js';
import { normalizeNnFormerConfig, type NnFormerConfig } from './nnformer-config.js';
import { Stochastic } from './stochastic.js';
import { attentionMask, regionIds, windowPositionIndex, type Size3 } from './swin-windows.js';

/** A module that only groups children under a key prefix. */
class Container extends Module {}

/**
 * nnFormer's `relative_position_index` for a cubic window w: with a = dᵢ−dⱼ+w−1, b = hᵢ−hⱼ+w−1,
 * c = wᵢ−wⱼ+w−1, idx = a·(3w−1) + b·(2w−1) + c. The multipliers are the official code's (Swin would use
 * (2w−1)² and 2w−1), so different offsets share table rows (SEMANTICS.md §3.6); reproduced on purpose.
 */
export function nnFormerPositionIndex(w: number): Float32Array {
  return windowPositionIndex(w, 3 * w - 1, 2 * w - 1);
}

/** window_partition for a cubic window: [B, P0, P1, P2, C] → [B·nW, w³, C]. */
function partition(x: Tensor, w: number): Tensor {
  const [b, p0, p1, p2, c] = x.shape as [number, number, number, number, number];
  const v = reshape(x, [b, p0 / w, w, p1 / w, w, p2 / w, w, c]);
  return reshape(permute(v, [0, 1, 3, 5, 2, 4, 6, 7]), [-1, w * w * w, c]);
}

function unpartition(x: Tensor, w: number, b: number, padded: Size3): Tensor {
  const c = x.shape[2]!;
  const v = reshape(x, [b, padded[0] / w, padded[1] / w, padded[2] / w, w, w, w, c]);
  return reshape(permute(v, [0, 1, 4, 2, 5, 3, 6, 7]), [b, padded[0], padded[1], padded[2], c]);
}

const padTo = (r: Size3, w: number): Size3 => r.map((d) => Math.ceil(d / w) * w) as Size3;

/** `WindowAttention` / `WindowAttention_kv`: table [(2w−1)³, heads], index buffer [w³, w³], qkv or kv, proj. */
class WindowAttention extends Module {
  readonly relative_position_bias_table: Tensor;
  readonly qkv: Linear | null = null;
  readonly kv: Linear | null = null;
  readonly proj: Linear;
  private readonly rows: Int32Array;
  constructor(
    readonly dim: number,
    readonly window: number,
    readonly heads: number,
    kvOnly: boolean,
    init: InitContext,
  ) {
    super();
    const m = 2 * window - 1;
    this.relative_position_bias_table = this.createParameter(init, 'relative_position_bias_table', [m * m * m, heads], (n, rng) => rng.normalArray(n, 0, 0.02));
    const n = window ** 3;
    const index = nnFormerPositionIndex(window);
    this.registerBuffer('relative_position_index', [n, n], index, 'I64');
    this.rows = Int32Array.from(index);
    if (kvOnly) this.kv = this.registerModule('kv', new Linear(dim, 2 * dim, { init }));
    else this.qkv = this.registerModule('qkv', new Linear(dim, 3 * dim, { init }));
    this.proj = this.registerModule('proj', new Linear(dim, dim, { init }));
  }

  /** The gathered bias [heads, n, n] (`table[index.view(-1)]`, permuted). */
  bias(): Tensor {
    const n = this.window ** 3;
    return permute(gatherRows(this.relative_position_bias_table, this.rows, [n, n, this.heads]), [2, 0, 1]);
  }

  /** Ordinary blocks: q, k, v from `qkv(x)`; kv block: q = x_up (no projection), k, v from `kv(skip)`. */
  forward(x: Tensor, xUp: Tensor | null, mask: Tensor | null, put?: Put): Tensor {
    return tidy(() => {
      const [, n, c] = x.shape as [number, number, number];
      const d = c / this.heads;
      const bias = this.bias();
      put?.('relative_position_bias', bias);
      // Packed projections are [parts][heads][d] per token and x_up is [heads][d]: the fused op reads
      // every head in place. q is scaled before the product (as Swin).
      const opts = { heads: this.heads, headDim: d, bias, mask: mask ? reshape(mask, [mask.shape[1]!, n, n]) : null, qScale: d ** -0.5 };
      let o: Tensor;
      if (this.kv) {
        const kv = this.kv.forward(x);
        o = attention(xUp!, kv, kv, { ...opts, vCol: c });
      } else {
        const qkv = this.qkv!.forward(x);
        o = attention(qkv, qkv, qkv, { ...opts, kCol: c, vCol: 2 * c });
      }
      return this.proj.forward(o);
    });
  }
}

/** `Mlp`: fc1 → GELU → fc2 (dropouts p = 0). */
class Mlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(dim: number, init: InitContext) {
    super();
    this.fc1 = this.registerModule('fc1', new Linear(dim, 4 * dim, { init }));
    this.fc2 = this.registerModule('fc2', new Linear(4 * dim, dim, { init }));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.fc2.forward(this.fc1.forwardGelu(x)));
  }
}

/**
 * `SwinTransformerBlock` (kv = false) and `SwinTransformerBlock_kv` (kv = true). The window and shift are
 * fixed at construction: if min(resolution) ≤ window, the window becomes min(resolution) and the shift 0.
 */
class Block extends Module {
  readonly norm1: LayerNorm;
  readonly attn: WindowAttention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;
  readonly window: number;
  readonly shift: number;
  constructor(
    readonly dim: number,
    readonly res: Size3,
    heads: number,
    window: number,
    shift: number,
    readonly kv: boolean,
    readonly dropPathRate: number,
    private readonly st: Stochastic,
    init: InitContext,
  ) {
    super();
    const small = Math.min(...res) <= window;
    this.window = small ? Math.min(...res) : window;
    this.shift = small ? 0 : shift;
    this.norm1 = this.registerModule('norm1', new LayerNorm(dim, { eps: 1e-5, channelsLast: true, init }));
    this.attn = this.registerModule('attn', new WindowAttention(dim, this.window, heads, kv, init));
    this.norm2 = this.registerModule('norm2', new LayerNorm(dim, { eps: 1e-5, channelsLast: true, init }));
    this.mlp = this.registerModule('mlp', new Mlp(dim, init));
  }

  /** x [B, S, H, W, C] channels-last; for the kv block also skip and x_up (x = x_up + skip). */
  forward(x: Tensor, mask: Tensor | null, put?: Put, skip?: Tensor, xUp?: Tensor): Tensor {
    return tidy(() => {
      const [b, r0, r1, r2] = x.shape as number[] as [number, number, number, number];
      const w = this.window;
      const padded = padTo([r0!, r1!, r2!], w);
      const needsPad = padded.some((p, i) => p !== [r0, r1, r2][i]);
      const prep = (t: Tensor) => {
        let h = this.norm1.forward(t);
        if (needsPad)
          h = pad(h, [
            [0, 0],
            [0, padded[0] - r0!],
            [0, padded[1] - r1!],
            [0, padded[2] - r2!],
            [0, 0],
          ]);
        if (this.shift > 0) h = roll(h, [-this.shift, -this.shift, -this.shift], [1, 2, 3]);
        return partition(h, w);
      };
      let att: Tensor;
      if (this.kv) {
        const s = prep(skip!);
        const u = prep(xUp!);
        put?.('attn.input_skip', s);
        put?.('attn.input_x_up', u);
        att = this.attn.forward(s, u, this.shift > 0 ? mask : null, sub(put, 'attn.'));
      } else {
        const win = prep(x);
        put?.('attn.input', win);
        att = this.attn.forward(win, null, this.shift > 0 ? mask : null, sub(put, 'attn.'));
      }
      put?.('attn.output', att);
      let h = unpartition(att, w, b!, padded);
      if (this.shift > 0) h = roll(h, [this.shift, this.shift, this.shift], [1, 2, 3]);
      if (needsPad) h = slice(h, [0, 0, 0, 0, 0], [b!, r0!, r1!, r2!, this.dim]);
      const y = add(x, this.st.dropPath(h, this.dropPathRate, this.training));
      return add(y, this.st.dropPath(this.mlp.forward(this.norm2.forward(y)), this.dropPathRate, this.training));
    });
  }
}

/** A layer's region ids and −100/0 mask values: fixed by its resolution and window, so built once per layer. */
interface MaskValues {
  ids: Float32Array;
  values: Float32Array;
  nW: number;
  n: number;
}

function maskValues(res: Size3, w: number): MaskValues {
  const s = Math.floor(w / 2);
  const { ids, nW, n } = regionIds(padTo(res, w), [w, w, w], [s, s, s]);
  return { ids, values: attentionMask(ids, nW, n), nW, n };
}

/**
 * The mask a layer computes with its own (unshrunk) window and shift w//2: region ids and the −100/0 mask.
 * The values come from the layer's cache: building them in JS took ~10-20 ms of CPU per forward at the
 * first stage (432 windows × 64² values), beside the backend's threads.
 */
function layerMask(layer: { res: Size3; window: number; maskCache: MaskValues | null }, put?: Put): Tensor | null {
  if (Math.floor(layer.window / 2) === 0) return null;
  const m = (layer.maskCache ??= maskValues(layer.res, layer.window));
  put?.('mask_windows', tensor(m.ids, [m.nW, m.n]));
  const mask = tensor(m.values, [1, m.nW, 1, m.n, m.n]);
  put?.('attn_mask', reshape(mask, [m.nW, m.n, m.n]));
  return mask;
}

/** `PatchMerging`: GELU → LayerNorm(C) → Conv3d(C, 2C, k3, s2, p1) (channels-last in and out). Keys reduction, norm. */
class PatchMerging extends Module {
  readonly reduction: Conv3d;
  readonly norm: LayerNorm;
  constructor(dim: number, init: InitContext) {
    super();
    this.reduction = this.registerModule('reduction', new Conv3d(dim, 2 * dim, 3, { stride: 2, padding: 1, init }));
    this.norm = this.registerModule('norm', new LayerNorm(dim, { eps: 1e-5, channelsLast: true, init }));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => permute(this.reduction.forward(permute(this.norm.forward(gelu(x)), [0, 4, 1, 2, 3])), [0, 2, 3, 4, 1]));
  }
}

/** `Patch_Expanding(2C)`: LayerNorm(2C) → ConvTranspose3d(2C, C, k2, s2, bias) (channels-last in and out). */
class PatchExpanding extends Module {
  readonly norm: LayerNorm;
  readonly up: ConvTranspose3d;
  constructor(dim: number, init: InitContext) {
    super();
    this.norm = this.registerModule('norm', new LayerNorm(dim, { eps: 1e-5, channelsLast: true, init }));
    this.up = this.registerModule('up', new ConvTranspose3d(dim, dim / 2, 2, { stride: 2, bias: true, init }));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => permute(this.up.forward(permute(this.norm.forward(x), [0, 4, 1, 2, 3])), [0, 2, 3, 4, 1]));
  }
}

/** `project`: conv1 (k3, stride, p1) → GELU → LN over channels → conv2 (k3, p1) [→ GELU → LN]. Keys conv1, conv2, norm1[, norm2]. */
class Project extends Module {
  readonly conv1: Conv3d;
  readonly conv2: Conv3d;
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm | null;
  constructor(cin: number, cout: number, stride: Size3, last: boolean, init: InitContext) {
    super();
    this.conv1 = this.registerModule('conv1', new Conv3d(cin, cout, 3, { stride, padding: 1, init }));
    this.conv2 = this.registerModule('conv2', new Conv3d(cout, cout, 3, { padding: 1, init }));
    // LayerNorm over channels at every voxel: the channels-first form is the same function as the official flatten/transpose/LN.
    this.norm1 = this.registerModule('norm1', new LayerNorm(cout, { eps: 1e-5, init }));
    this.norm2 = last ? null : this.registerModule('norm2', new LayerNorm(cout, { eps: 1e-5, init }));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const h = this.conv2.forward(this.norm1.forward(gelu(this.conv1.forward(x))));
      return this.norm2 ? this.norm2.forward(gelu(h)) : h;
    });
  }
}

class PatchEmbed extends Module {
  readonly proj1: Project;
  readonly proj2: Project;
  readonly norm: LayerNorm;
  constructor(cin: number, e: number, p: Size3, init: InitContext) {
    super();
    this.proj1 = this.registerModule('proj1', new Project(cin, e / 2, [p[0], p[1] / 2, p[2] / 2], false, init));
    this.proj2 = this.registerModule('proj2', new Project(e / 2, e, [p[0] / 2, p[1] / 2, p[2] / 2], true, init));
    this.norm = this.registerModule('norm', new LayerNorm(e, { eps: 1e-5, init }));
  }
}

/** Encoder stage: blocks (odd ones shifted by w//2) then, except for the last stage, PatchMerging. */
class EncoderLayer extends Module {
  readonly blocks: ModuleList<Block>;
  maskCache: MaskValues | null = null;
  readonly downsample: PatchMerging | null;
  constructor(
    readonly dim: number,
    readonly res: Size3,
    depth: number,
    heads: number,
    readonly window: number,
    dpr: number[],
    last: boolean,
    st: Stochastic,
    init: InitContext,
  ) {
    super();
    const blocks: Block[] = [];
    for (let j = 0; j < depth; j++) blocks.push(new Block(dim, res, heads, window, j % 2 === 0 ? 0 : Math.floor(window / 2), false, dpr[j]!, st, init));
    this.blocks = this.registerModule('blocks', new ModuleList(blocks));
    this.downsample = last ? null : this.registerModule('downsample', new PatchMerging(dim, init));
  }
}

/** Decoder stage (`BasicLayer_up`): kv block, then blocks all shifted by w//2; Upsample = Patch_Expanding(2·dim). */
class DecoderLayer extends Module {
  readonly blocks: ModuleList<Block>;
  maskCache: MaskValues | null = null;
  readonly Upsample: PatchExpanding;
  constructor(
    readonly dim: number,
    readonly res: Size3,
    depth: number,
    heads: number,
    readonly window: number,
    dpr: number[],
    st: Stochastic,
    init: InitContext,
  ) {
    super();
    const blocks = [new Block(dim, res, heads, window, 0, true, dpr[0]!, st, init)];
    for (let j = 1; j < depth; j++) blocks.push(new Block(dim, res, heads, window, Math.floor(window / 2), false, dpr[j]!, st, init));
    this.blocks = this.registerModule('blocks', new ModuleList(blocks));
    this.Upsample = this.registerModule('Upsample', new PatchExpanding(2 * dim, init));
  }
}

/** torch.linspace(0, end, n) as float32 values. */
function linspace(end: number, n: number): number[] {
  if (n === 1) return [0];
  return Array.from({ length: n }, (_, i) => Math.fround((end * i) / (n - 1)));
}

/** Names of the main tensors `forwardWithIntermediates` returns (block-level ones are added too). */
export const NNFORMER_ACTIVATIONS = ['input', 'model_down.patch_embed.proj1', 'model_down.patch_embed', 'skip0', 'skip1', 'skip2', 'skip3', 'logits'] as const;

/**
 * nnFormer (Zhou et al., 2021) as vendored in the official 3D UX-Net repository (networks/nnFormer/
 * nnFormer_seg.py), with its state-dict keys and order (the int64 `relative_position_index` buffers
 * included) and its quirks reproduced on purpose: the relative-position index with multipliers (3w−1) and
 * (2w−1), windows and shifts fixed at construction from crop_size (min(res) ≤ w shrinks the window and
 * drops the shift), the decoder's kv block (q = norm1(x_up) without projection, k, v from norm1(skip)),
 * every decoder block after it shifted, unmasked pad tokens, the −100 mask, GELU before PatchMerging's
 * LayerNorm, and the (2,4,4) transposed conv with bias at the end. Inputs must be exactly crop_size.
 * DropPath (0…drop_path_rate, default 0.2) is active in training mode only, with masks from `stochastic`.
 */
export class NnFormer extends RecordingNetwork {
  readonly config: Readonly<NnFormerConfig>;
  readonly stochastic: Stochastic;
  readonly patchEmbed: PatchEmbed;
  readonly down: EncoderLayer[] = [];
  readonly norms: LayerNorm[] = [];
  readonly up: DecoderLayer[] = [];
  readonly finalUp: ConvTranspose3d;

  constructor(config: unknown, opts: { seed?: number; meta?: boolean } = {}) {
    super();
    const cfg = normalizeNnFormerConfig(config);
    this.config = Object.freeze(cfg);
    this.stochastic = new Stochastic(opts.seed ?? 0);
    const init = initContext({ seed: opts.seed, meta: opts.meta });
    const e = cfg.embeddingDim;
    const res = (i: number): Size3 => cfg.cropSize.map((d, k) => d / cfg.patchSize[k]! / 2 ** i) as Size3;
    const md = this.registerModule('model_down', new Container());
    this.patchEmbed = md.registerModule('patch_embed', new PatchEmbed(cfg.inputChannels, e, cfg.patchSize, init));
    const dprE = linspace(
      cfg.dropPathRate,
      cfg.depths.reduce((a, b) => a + b, 0),
    );
    const layers = md.registerModule('layers', new Container());
    let at = 0;
    for (let i = 0; i < 4; i++) {
      const d = cfg.depths[i]!;
      this.down.push(
        layers.registerModule(String(i), new EncoderLayer(e * 2 ** i, res(i), d, cfg.numHeads[i]!, cfg.windowSize[i]!, dprE.slice(at, at + d), i === 3, this.stochastic, init)),
      );
      at += d;
    }
    for (let i = 0; i < 4; i++) this.norms.push(md.registerModule(`norm${i}`, new LayerNorm(e * 2 ** i, { eps: 1e-5, channelsLast: true, init })));
    // Decoder(depths = depths[::-1][1:]): layers built for i_layer = 2, 1, 0, so layers[k] mirrors encoder stage k;
    // its DropPath rates run from the coarsest decoder stage up.
    const dec = this.registerModule('decoder', new Container());
    const decLayers = dec.registerModule('layers', new Container());
    const decDepths = [cfg.depths[2]!, cfg.depths[1]!, cfg.depths[0]!];
    const dprD = linspace(
      cfg.dropPathRate,
      decDepths.reduce((a, b) => a + b, 0),
    );
    for (let k = 0; k < 3; k++) {
      const iLayer = 2 - k;
      const start = decDepths.slice(0, iLayer).reduce((a, b) => a + b, 0);
      const d = cfg.depths[k]!;
      this.up.push(
        decLayers.registerModule(String(k), new DecoderLayer(e * 2 ** k, res(k), d, cfg.numHeads[k]!, cfg.windowSize[k]!, dprD.slice(start, start + d), this.stochastic, init)),
      );
    }
    const fin = this.registerModule('final', new Container());
    const f0 = fin.registerModule('0', new Container());
    this.finalUp = f0.registerModule('up', new ConvTranspose3d(e, cfg.numClasses, cfg.patchSize, { stride: cfg.patchSize, bias: true, init }));
  }

  get inChannels(): number {
    return this.config.inputChannels;
  }
  get outChannels(): number {
    return this.config.numClasses;
  }
  /** Windows and token counts are fixed at construction from crop_size. */
  get fixedInputSize(): [number, number, number] {
    return [...this.config.cropSize] as [number, number, number];
  }

  checkInputShape(shape: readonly number[]): void {
    checkBasicInput('nnFormer', shape, this.config.inputChannels);
    const c = this.config.cropSize;
    if (shape.slice(2).some((s, i) => s !== c[i]))
      throw new NetworkInputError(
        `nnFormer input spatial size ${shape.slice(2).join('×')} is invalid: the network takes exactly crop_size = ${c.join('×')} (its windows are fixed at construction); use sliding-window inference with that window`,
      );
  }

  protected run(x: Tensor, put?: Put): Tensor {
    const tokens = (t: Tensor) => reshape(t, [t.shape[0]!, -1, t.shape[4]!]);
    const pe = this.patchEmbed;
    const p1 = pe.proj1.forward(x);
    put?.('model_down.patch_embed.proj1', p1);
    const emb = pe.norm.forward(pe.proj2.forward(p1));
    put?.('model_down.patch_embed', emb);
    let h = permute(emb, [0, 2, 3, 4, 1]);
    const skips: Tensor[] = [];
    this.down.forEach((layer, i) => {
      const lp = sub(put, `model_down.layers.${i}.`);
      const mask = layer.blocks.items.some((b) => b.shift > 0) ? layerMask(layer, lp) : null;
      layer.blocks.items.forEach((blk, j) => {
        h = blk.forward(h, mask, sub(lp, `blocks.${j}.`));
        if (put) lp!(`blocks.${j}`, tokens(h));
      });
      const s = this.norms[i]!.forward(h);
      skips.push(s);
      put?.(`skip${i}`, permute(s, [0, 4, 1, 2, 3]));
      if (layer.downsample) {
        h = layer.downsample.forward(h);
        if (put) lp!('downsample', tokens(h));
      }
    });
    h = skips[3]!;
    for (let k = 2; k >= 0; k--) {
      const layer = this.up[k]!;
      const lp = sub(put, `decoder.layers.${k}.`);
      const xUp = layer.Upsample.forward(h);
      if (put) lp!('Upsample', tokens(xUp));
      h = add(xUp, skips[k]!);
      const mask = layer.blocks.items.some((b) => b.shift > 0) ? layerMask(layer, lp) : null;
      layer.blocks.items.forEach((blk, j) => {
        h = j === 0 ? blk.forward(h, null, sub(lp, 'blocks.0.'), skips[k], xUp) : blk.forward(h, mask, sub(lp, `blocks.${j}.`));
        if (put) lp!(`blocks.${j}`, tokens(h));
      });
    }
    return this.finalUp.forward(permute(h, [0, 4, 1, 2, 3]));
  }

  static countParameters(config: unknown): number {
    return new NnFormer(config, { meta: true }).numParameters();
  }
}
