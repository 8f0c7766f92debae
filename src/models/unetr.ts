import { add, attention, permute, reshape } from '../engine/ops/index.js';
import { tidy } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
import { Conv3d, LayerNorm } from '../nn/layers.js';
import { Linear } from '../nn/linear.js';
import { initContext, Module, ModuleList, Sequential, type InitContext, type Layer } from '../nn/module.js';
import { Convolution } from './blocks/convolution.js';
import { UnetOutBlock } from './blocks/unet-out-block.js';
import { UnetResBlock, UnetrBasicBlock } from './blocks/unet-res-block.js';
import { UnetrUpBlock } from './blocks/unetr-up-block.js';
import { normalizeUNETRConfig, UNETR_PATCH, type UNETRConfig } from './unetr-config.js';
import { NetworkInputError, checkBasicInput } from './network-input.js';
import { RecordingNetwork, type Put } from './recording-network.js';

/** MONAI `MLPBlock` ("vit" mode): linear1 (C→mlp) → exact GELU → linear2; dropouts have p = 0. */
class MLPBlock extends Module {
  readonly linear1: Linear;
  readonly linear2: Linear;
  constructor(hidden: number, mlpDim: number, init: InitContext) {
    super();
    this.linear1 = this.registerModule('linear1', new Linear(hidden, mlpDim, { init }));
    this.linear2 = this.registerModule('linear2', new Linear(mlpDim, hidden, { init }));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.linear2.forward(this.linear1.forwardGelu(x)));
  }
}

/**
 * MONAI 0.9.0 `SABlock`: qkv = Linear(C, 3C, **no bias**) laid out [3][heads][d]; softmax((q·kᵀ)·d^-0.5)
 * (the scale after the product, as MONAI's einsum); heads concatenated; out_proj with bias.
 */
class SABlock extends Module {
  readonly out_proj: Linear;
  readonly qkv: Linear;
  constructor(
    readonly hidden: number,
    readonly heads: number,
    init: InitContext,
  ) {
    super();
    // Registration order = MONAI's: out_proj is created before qkv.
    this.out_proj = this.registerModule('out_proj', new Linear(hidden, hidden, { init }));
    this.qkv = this.registerModule('qkv', new Linear(hidden, 3 * hidden, { bias: false, init }));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const d = this.hidden / this.heads;
      // qkv is [3][heads][d] per token, read in place by the fused op; the scale applies after the product.
      const qkv = this.qkv.forward(x);
      const o = attention(qkv, qkv, qkv, { heads: this.heads, headDim: d, kCol: this.hidden, vCol: 2 * this.hidden, sScale: d ** -0.5 });
      return this.out_proj.forward(o);
    });
  }
}

/** MONAI `TransformerBlock`: x + attn(norm1(x)), then + mlp(norm2(x)). LayerNorm eps 1e-5. */
class TransformerBlock extends Module {
  readonly mlp: MLPBlock;
  readonly norm1: LayerNorm;
  readonly attn: SABlock;
  readonly norm2: LayerNorm;
  constructor(hidden: number, mlpDim: number, heads: number, init: InitContext) {
    super();
    this.mlp = this.registerModule('mlp', new MLPBlock(hidden, mlpDim, init));
    this.norm1 = this.registerModule('norm1', new LayerNorm(hidden, { eps: 1e-5, channelsLast: true, init }));
    this.attn = this.registerModule('attn', new SABlock(hidden, heads, init));
    this.norm2 = this.registerModule('norm2', new LayerNorm(hidden, { eps: 1e-5, channelsLast: true, init }));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const h = add(x, this.attn.forward(this.norm1.forward(x)));
      return add(h, this.mlp.forward(this.norm2.forward(h)));
    });
  }
}

/** `nn.Sequential(Rearrange, Linear)` of the "perceptron" embedding: only child `1` has keys. */
class PerceptronEmbedding extends Module {
  constructor(inFeatures: number, hidden: number, init: InitContext) {
    super();
    this.registerModule('1', new Linear(inFeatures, hidden, { init }));
  }
  get linear(): Linear {
    return this.namedChildren()[0]![1] as Linear;
  }
}

/** MONAI 0.9.0 `PatchEmbeddingBlock` with 16³ patches; position embeddings [1, n_patches, hidden]. */
class PatchEmbeddingBlock extends Module {
  readonly position_embeddings: Tensor;
  readonly patch_embeddings: PerceptronEmbedding | Conv3d;
  constructor(
    readonly cfg: UNETRConfig,
    init: InitContext,
  ) {
    super();
    const grid = cfg.imgSize.map((s) => s / UNETR_PATCH);
    const nPatches = grid[0]! * grid[1]! * grid[2]!;
    // MONAI initialises with trunc_normal(std 0.02); any checkpoint overwrites it.
    this.position_embeddings = this.createParameter(init, 'position_embeddings', [1, nPatches, cfg.hiddenSize], (n, rng) => rng.normalArray(n, 0, 0.02));
    if (cfg.posEmbed === 'perceptron') {
      this.patch_embeddings = this.registerModule('patch_embeddings', new PerceptronEmbedding(UNETR_PATCH ** 3 * cfg.inChannels, cfg.hiddenSize, init));
    } else {
      this.patch_embeddings = this.registerModule('patch_embeddings', new Conv3d(cfg.inChannels, cfg.hiddenSize, UNETR_PATCH, { stride: UNETR_PATCH, init }));
    }
  }

  /** Patch vectors [B, N, 16³·C] in MONAI's order: tokens (d, h, w) row-major, features (p1, p2, p3, c). */
  static patches(x: Tensor): Tensor {
    const [b, c, d, h, w] = x.shape as [number, number, number, number, number];
    const p = UNETR_PATCH;
    const g = [d / p, h / p, w / p] as const;
    return reshape(permute(reshape(x, [b, c, g[0], p, g[1], p, g[2], p]), [0, 2, 4, 6, 3, 5, 7, 1]), [b, g[0] * g[1] * g[2], p * p * p * c]);
  }

  forward(x: Tensor, put?: Put): Tensor {
    return tidy(() => {
      let tokens: Tensor;
      if (this.patch_embeddings instanceof PerceptronEmbedding) {
        const patches = PatchEmbeddingBlock.patches(x);
        put?.('patches', patches);
        tokens = this.patch_embeddings.linear.forward(patches);
      } else {
        const y = this.patch_embeddings.forward(x);
        const [b, hidden] = y.shape as [number, number];
        tokens = permute(reshape(y, [b, hidden, -1]), [0, 2, 1]);
      }
      put?.('tokens', tokens);
      const emb = add(tokens, this.position_embeddings);
      put?.('embeddings', emb);
      return emb;
    });
  }
}

/** MONAI 0.9.0 `ViT` as UNETR uses it (classification off): 12 blocks; returns the normed output and every block's output. */
class ViT extends Module {
  readonly patch_embedding: PatchEmbeddingBlock;
  readonly blocks: ModuleList<TransformerBlock>;
  readonly norm: LayerNorm;
  constructor(cfg: UNETRConfig, init: InitContext) {
    super();
    this.patch_embedding = this.registerModule('patch_embedding', new PatchEmbeddingBlock(cfg, init));
    const blocks: TransformerBlock[] = [];
    for (let i = 0; i < 12; i++) blocks.push(new TransformerBlock(cfg.hiddenSize, cfg.mlpDim, cfg.numHeads, init));
    this.blocks = this.registerModule('blocks', new ModuleList(blocks));
    this.norm = this.registerModule('norm', new LayerNorm(cfg.hiddenSize, { eps: 1e-5, channelsLast: true, init }));
  }
}

/**
 * MONAI `UnetrPrUpBlock` (conv_block and res_block true): ConvTranspose k2 s2 (no bias), then
 * `num_layer` × [ConvTranspose k2 s2, UnetResBlock(out → out)].
 */
export class UnetrPrUpBlock extends Module implements Layer {
  readonly transp_conv_init: Convolution;
  readonly blocks: ModuleList<Sequential>;
  constructor(inChannels: number, outChannels: number, numLayer: number, init: InitContext) {
    super();
    this.transp_conv_init = this.registerModule('transp_conv_init', new Convolution(inChannels, outChannels, { kernelSize: 2, stride: 2, transposed: true }, init));
    const blocks: Sequential[] = [];
    for (let i = 0; i < numLayer; i++) {
      blocks.push(
        new Sequential([
          new Convolution(outChannels, outChannels, { kernelSize: 2, stride: 2, transposed: true }, init),
          new UnetResBlock(outChannels, outChannels, { kernelSize: 3, stride: 1, init }),
        ]),
      );
    }
    this.blocks = this.registerModule('blocks', new ModuleList(blocks));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      let h = this.transp_conv_init.forward(x);
      for (const b of this.blocks.items) h = b.forward(h);
      return h;
    });
  }
}

/** Names of the tensors `forwardWithIntermediates` returns (the fixture names). */
export const UNETR_ACTIVATIONS = [
  'input',
  'patches',
  'tokens',
  'embeddings',
  ...Array.from({ length: 12 }, (_, i) => `hidden_states_out.${i}`),
  'x',
  'enc1',
  'proj_feat.x2',
  'enc2',
  'proj_feat.x3',
  'enc3',
  'proj_feat.x4',
  'enc4',
  'dec4',
  'dec3',
  'dec2',
  'dec1',
  'out',
  'logits',
] as const;

/**
 * UNETR (Hatamizadeh et al., WACV 2022), a port of MONAI 0.9.0's `UNETR` with its state-dict keys and
 * order. Input [N, inChannels, ...imgSize] exactly (the position embeddings fix the token grid);
 * output raw logits [N, outChannels, ...imgSize].
 */
export class UNETR extends RecordingNetwork {
  readonly config: Readonly<UNETRConfig>;
  readonly vit: ViT;
  readonly encoder1: UnetrBasicBlock;
  readonly encoder2: UnetrPrUpBlock;
  readonly encoder3: UnetrPrUpBlock;
  readonly encoder4: UnetrPrUpBlock;
  readonly decoder5: UnetrUpBlock;
  readonly decoder4: UnetrUpBlock;
  readonly decoder3: UnetrUpBlock;
  readonly decoder2: UnetrUpBlock;
  readonly out: UnetOutBlock;

  constructor(config: unknown, opts: { seed?: number; meta?: boolean } = {}) {
    super();
    const cfg = normalizeUNETRConfig(config);
    this.config = Object.freeze(cfg);
    const init = initContext({ seed: opts.seed, meta: opts.meta });
    const fs = cfg.featureSize;
    const hs = cfg.hiddenSize;
    const res = { kernelSize: 3, stride: 1, init };
    const up = { kernelSize: 3, upsampleKernelSize: 2, init };
    this.vit = this.registerModule('vit', new ViT(cfg, init));
    this.encoder1 = this.registerModule('encoder1', new UnetrBasicBlock(cfg.inChannels, fs, res));
    this.encoder2 = this.registerModule('encoder2', new UnetrPrUpBlock(hs, fs * 2, 2, init));
    this.encoder3 = this.registerModule('encoder3', new UnetrPrUpBlock(hs, fs * 4, 1, init));
    this.encoder4 = this.registerModule('encoder4', new UnetrPrUpBlock(hs, fs * 8, 0, init));
    this.decoder5 = this.registerModule('decoder5', new UnetrUpBlock(hs, fs * 8, up));
    this.decoder4 = this.registerModule('decoder4', new UnetrUpBlock(fs * 8, fs * 4, up));
    this.decoder3 = this.registerModule('decoder3', new UnetrUpBlock(fs * 4, fs * 2, up));
    this.decoder2 = this.registerModule('decoder2', new UnetrUpBlock(fs * 2, fs, up));
    this.out = this.registerModule('out', new UnetOutBlock(fs, cfg.outChannels, { init }));
  }

  get inChannels(): number {
    return this.config.inChannels;
  }
  get outChannels(): number {
    return this.config.outChannels;
  }
  /** The only input size this network takes, so sliding-window inference uses it as its window. */
  get fixedInputSize(): [number, number, number] {
    return [...this.config.imgSize];
  }

  checkInputShape(shape: readonly number[]): void {
    checkBasicInput('UNETR', shape, this.config.inChannels);
    const sp = shape.slice(2);
    if (sp.some((d, i) => d !== this.config.imgSize[i])) {
      throw new NetworkInputError(
        `UNETR input spatial size ${sp.join('×')} is invalid: this network takes exactly img_size ${this.config.imgSize.join('×')} (its position embeddings are sized for it); crop or pad the volume, or use sliding-window inference with that window`,
      );
    }
  }

  private projFeat(t: Tensor): Tensor {
    const g = this.config.imgSize.map((s) => s / UNETR_PATCH);
    return permute(reshape(t, [t.shape[0]!, g[0]!, g[1]!, g[2]!, this.config.hiddenSize]), [0, 4, 1, 2, 3]);
  }

  /** Records under the fixture names (UNETR_ACTIVATIONS). */
  protected run(x: Tensor, put?: Put): Tensor {
    let h = this.vit.patch_embedding.forward(x, put);
    const hidden: Tensor[] = [];
    this.vit.blocks.items.forEach((blk, i) => {
      h = blk.forward(h);
      put?.(`hidden_states_out.${i}`, h);
      hidden.push(h);
    });
    const xn = this.vit.norm.forward(h);
    put?.('x', xn);
    const enc1 = this.encoder1.forward(x);
    put?.('enc1', enc1);
    const x2 = this.projFeat(hidden[3]!);
    put?.('proj_feat.x2', x2);
    const enc2 = this.encoder2.forward(x2);
    put?.('enc2', enc2);
    const x3 = this.projFeat(hidden[6]!);
    put?.('proj_feat.x3', x3);
    const enc3 = this.encoder3.forward(x3);
    put?.('enc3', enc3);
    const x4 = this.projFeat(hidden[9]!);
    put?.('proj_feat.x4', x4);
    const enc4 = this.encoder4.forward(x4);
    put?.('enc4', enc4);
    const dec4 = this.projFeat(xn);
    put?.('dec4', dec4);
    const dec3 = this.decoder5.forward(dec4, enc4);
    put?.('dec3', dec3);
    const dec2 = this.decoder4.forward(dec3, enc3);
    put?.('dec2', dec2);
    const dec1 = this.decoder3.forward(dec2, enc2);
    put?.('dec1', dec1);
    const out = this.decoder2.forward(dec1, enc1);
    put?.('out', out);
    return this.out.forward(out);
  }

  static countParameters(config: unknown): number {
    return new UNETR(config, { meta: true }).numParameters();
  }
}
