import { add, attention, layerNorm, matmul, permute, relu, reshape, scale, slice, softmaxLast } from '../engine/ops/index.js';
import { tidy } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
import { Conv3d, ConvTranspose3d, LayerNorm } from '../nn/layers.js';
import { Linear } from '../nn/linear.js';
import { initContext, Module, type InitContext } from '../nn/module.js';
import { BatchNorm3d, GroupNorm } from '../nn/norm-layers.js';
import { checkBasicInput, NetworkInputError } from './network-input.js';
import { RecordingNetwork, type Put } from './recording-network.js';
import { Stochastic } from './stochastic.js';
import { normalizeTransBTSConfig, type TransBTSConfig } from './transbts-config.js';

/** `F.dropout3d(p=0.2)` of the Unet's first conv: official code runs it in eval mode too (SEMANTICS.md §4.2). */
export const TRANSBTS_INIT_DROPOUT = 0.2;

/** A module that only groups children under a key prefix (`transformer.net.…`, `fn.fn.…`). */
class Container extends Module {}

/** `LearnedPositionalEncoding`: a parameter [1, tokens, E] (zeros; checkpoints overwrite it) added to the tokens. */
class LearnedPositionalEncoding extends Module {
  readonly position_embeddings: Tensor;
  constructor(tokens: number, e: number, init: InitContext) {
    super();
    this.position_embeddings = this.createParameter(init, 'position_embeddings', [1, tokens, e], (n) => new Float32Array(n));
  }
}

const conv3 = (cin: number, cout: number, init: InitContext, stride = 1) => new Conv3d(cin, cout, 3, { stride, padding: 1, init });

/** `InitConv`: Conv3d(in, b, k3, p1) then dropout3d(0.2) (the dropout is applied by the model, which knows the mode). */
class InitConv extends Module {
  readonly conv: Conv3d;
  constructor(cin: number, cout: number, init: InitContext) {
    super();
    this.conv = this.registerModule('conv', conv3(cin, cout, init));
  }
}

/** Unet `EnBlock` (pre-activation): conv2(ReLU(GN2(conv1(ReLU(GN1(x)))))) + x, GroupNorm(8, C). */
class EnBlock extends Module {
  readonly bn1: GroupNorm;
  readonly conv1: Conv3d;
  readonly bn2: GroupNorm;
  readonly conv2: Conv3d;
  constructor(c: number, init: InitContext) {
    super();
    this.bn1 = this.registerModule('bn1', new GroupNorm(8, c, { init }));
    this.conv1 = this.registerModule('conv1', conv3(c, c, init));
    this.bn2 = this.registerModule('bn2', new GroupNorm(8, c, { init }));
    this.conv2 = this.registerModule('conv2', conv3(c, c, init));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const h = this.bn2.forwardRelu(this.conv1.forward(this.bn1.forwardRelu(x)));
      // conv2 adds the residual as it stores its output (no separate pass on inference).
      return this.conv2.forwardFused([h], { residual: x });
    });
  }
}

/** Unet `EnDown`: Conv3d(C, 2C, k3, s2, p1). */
class EnDown extends Module {
  readonly conv: Conv3d;
  constructor(cin: number, cout: number, init: InitContext) {
    super();
    this.conv = this.registerModule('conv', conv3(cin, cout, init, 2));
  }
  forward(x: Tensor): Tensor {
    return this.conv.forward(x);
  }
}

/** The TransBTS `Unet` encoder with base width b (16 officially). */
class Unet extends Module {
  readonly InitConv: InitConv;
  readonly blocks: Record<string, EnBlock | EnDown> = {};
  constructor(cin: number, b: number, init: InitContext) {
    super();
    this.InitConv = this.registerModule('InitConv', new InitConv(cin, b, init));
    const add_ = (name: string, m: EnBlock | EnDown) => (this.blocks[name] = this.registerModule(name, m));
    add_('EnBlock1', new EnBlock(b, init));
    add_('EnDown1', new EnDown(b, 2 * b, init));
    add_('EnBlock2_1', new EnBlock(2 * b, init));
    add_('EnBlock2_2', new EnBlock(2 * b, init));
    add_('EnDown2', new EnDown(2 * b, 4 * b, init));
    add_('EnBlock3_1', new EnBlock(4 * b, init));
    add_('EnBlock3_2', new EnBlock(4 * b, init));
    add_('EnDown3', new EnDown(4 * b, 8 * b, init));
    for (const i of [1, 2, 3, 4]) add_(`EnBlock4_${i}`, new EnBlock(8 * b, init));
  }
  run(y: Tensor, names: string[]): Tensor {
    for (const n of names) y = this.blocks[n]!.forward(y);
    return y;
  }
}

/** TransBTS `SelfAttention`: qkv Linear(E, 3E, no bias) [3][heads][d]; softmax((q·kᵀ)·d^-0.5) (scale after the product); proj. */
class SelfAttention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  constructor(
    readonly dim: number,
    readonly heads: number,
    init: InitContext,
    private readonly rates: { attn: number },
    private readonly st: Stochastic,
  ) {
    super();
    this.qkv = this.registerModule('qkv', new Linear(dim, 3 * dim, { bias: false, init }));
    this.proj = this.registerModule('proj', new Linear(dim, dim, { init }));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const [b, n, c] = x.shape as [number, number, number];
      const d = c / this.heads;
      const projected = this.qkv.forward(x);
      let o: Tensor;
      if (!this.st.isActive(this.rates.attn, this.training)) {
        // qkv is [3][heads][d] per token, read in place by the fused op; the scale applies after the product.
        o = attention(projected, projected, projected, { heads: this.heads, headDim: d, kCol: c, vCol: 2 * c, sScale: d ** -0.5 });
      } else {
        // Dropout on the probabilities needs them materialised: the unfused path.
        const qkv = permute(reshape(projected, [b, n, 3, this.heads, d]), [2, 0, 3, 1, 4]);
        const part = (i: number) => reshape(slice(qkv, [i, 0, 0, 0, 0], [i + 1, b, this.heads, n, d]), [b, this.heads, n, d]);
        let attn = softmaxLast(scale(matmul(part(0), part(1), { transB: true }), d ** -0.5));
        attn = this.st.dropout(attn, this.rates.attn, this.training);
        o = reshape(permute(matmul(attn, part(2)), [0, 2, 1, 3]), [b, n, c]);
      }
      return this.st.dropout(this.proj.forward(o), this.rates.attn, this.training);
    });
  }
}

/** `FeedForward`: net.0 Linear(E, hidden) → GELU → Dropout → net.3 Linear(hidden, E) → Dropout. */
class FeedForward extends Module {
  readonly lin0: Linear;
  readonly lin3: Linear;
  constructor(
    dim: number,
    hidden: number,
    init: InitContext,
    private readonly rate: number,
    private readonly st: Stochastic,
  ) {
    super();
    const net = new Container();
    this.lin0 = net.registerModule('0', new Linear(dim, hidden, { init }));
    this.lin3 = net.registerModule('3', new Linear(hidden, dim, { init }));
    this.registerModule('net', net);
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const h = this.st.dropout(this.lin0.forwardGelu(x), this.rate, this.training);
      return this.st.dropout(this.lin3.forward(h), this.rate, this.training);
    });
  }
}

/** `Residual(PreNormDrop(...))` / `Residual(PreNorm(...))`: keys `fn.norm.*`, `fn.fn.*`. x + [Dropout](fn(LN(x))). */
class ResidualPreNorm extends Module {
  constructor(
    readonly body: SelfAttention | FeedForward,
    dim: number,
    init: InitContext,
    private readonly dropRate: number,
    private readonly st: Stochastic,
  ) {
    super();
    const fn = new Container();
    this.norm = fn.registerModule('norm', new LayerNorm(dim, { eps: 1e-5, channelsLast: true, init }));
    fn.registerModule('fn', body);
    this.registerModule('fn', fn);
  }
  readonly norm: LayerNorm;
  forward(x: Tensor): Tensor {
    return tidy(() => add(x, this.st.dropout(this.body.forward(this.norm.forward(x)), this.dropRate, this.training)));
  }
}

/**
 * ReLU(bn(conv(x))) (+ residual). In eval mode it is one fused conv (conv3dConcat applies the BatchNorm, the
 * ReLU and the residual as it stores its output, on inference); in training the layers one after the other.
 */
function convBnRelu(conv: Conv3d, bn: BatchNorm3d, x: Tensor, residual?: Tensor): Tensor {
  if (bn.training) return bn.forwardRelu(conv.forward(x), residual);
  return conv.forwardFused([x], { bnEval: bn.evalNorm(), relu: true, residual });
}

/** `EnBlock1` of the decoder head (Enblock8_1): ReLU(BN2(conv2(ReLU(BN1(conv1(x)))))), E → E/4, no residual. */
class Enblock8First extends Module {
  readonly bn1: BatchNorm3d;
  readonly bn2: BatchNorm3d;
  readonly conv1: Conv3d;
  readonly conv2: Conv3d;
  constructor(e: number, init: InitContext) {
    super();
    this.bn1 = this.registerModule('bn1', new BatchNorm3d(e / 4, { init }));
    this.bn2 = this.registerModule('bn2', new BatchNorm3d(e / 4, { init }));
    this.conv1 = this.registerModule('conv1', conv3(e, e / 4, init));
    this.conv2 = this.registerModule('conv2', conv3(e / 4, e / 4, init));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => convBnRelu(this.conv2, this.bn2, convBnRelu(this.conv1, this.bn1, x)));
  }
}

/** `EnBlock2` (Enblock8_2) and `DeBlock`: ReLU(BN2(conv2(ReLU(BN1(conv1(x)))))) + x; only the key order differs. */
class PostActBlock extends Module {
  readonly bn1: BatchNorm3d;
  readonly bn2: BatchNorm3d;
  readonly conv1: Conv3d;
  readonly conv2: Conv3d;
  constructor(c: number, order: readonly ('bn1' | 'bn2' | 'conv1' | 'conv2')[], init: InitContext) {
    super();
    const made = {
      bn1: () => new BatchNorm3d(c, { init }),
      bn2: () => new BatchNorm3d(c, { init }),
      conv1: () => conv3(c, c, init),
      conv2: () => conv3(c, c, init),
    };
    const m: Record<string, Module> = {};
    for (const k of order) m[k] = this.registerModule(k, made[k]());
    this.bn1 = m.bn1 as BatchNorm3d;
    this.bn2 = m.bn2 as BatchNorm3d;
    this.conv1 = m.conv1 as Conv3d;
    this.conv2 = m.conv2 as Conv3d;
  }
  forward(x: Tensor): Tensor {
    return tidy(() => convBnRelu(this.conv2, this.bn2, convBnRelu(this.conv1, this.bn1, x), x));
  }
}

/** `DeUp_Cat`: conv3(cat(prev, ConvT(k2, s2, bias)(conv1(x)))), skip first. */
class DeUpCat extends Module {
  readonly conv1: Conv3d;
  readonly conv2: ConvTranspose3d;
  readonly conv3: Conv3d;
  constructor(cin: number, cout: number, init: InitContext) {
    super();
    this.conv1 = this.registerModule('conv1', new Conv3d(cin, cout, 1, { init }));
    this.conv2 = this.registerModule('conv2', new ConvTranspose3d(cout, cout, 2, { stride: 2, bias: true, init }));
    this.conv3 = this.registerModule('conv3', new Conv3d(2 * cout, cout, 1, { init }));
  }
  forward(x: Tensor, prev: Tensor): Tensor {
    // The 1×1 conv reads the skip and the up-sampled tensor in place (no concatenation on inference).
    return tidy(() => this.conv3.forwardFused([prev, this.conv2.forward(this.conv1.forward(x))]));
  }
}

/** Names of the main tensors `forwardWithIntermediates` returns (the fixture names). */
export const TRANSBTS_ACTIVATIONS = [
  'input',
  'Unet.InitConv',
  'x1_1',
  'x2_1',
  'x3_1',
  'unet_x',
  'bn',
  'conv_x',
  'tokens',
  'tokens_pe',
  'pre_head_ln',
  'x8',
  'Enblock8_1',
  'Enblock8_2',
  'DeUp4',
  'DeBlock4',
  'DeUp3',
  'DeBlock3',
  'DeUp2',
  'DeBlock2',
  'logits',
] as const;

/**
 * TransBTS (Wang et al., 2021) as vendored in the official 3D UX-Net repository (`BTS` of
 * TransBTS_downsample8x_skipconnection.py), with its state-dict keys and order (BatchNorm running
 * statistics and int64 `num_batches_tracked` included) and its quirks: the decoder reads transformer
 * layer 4's output without `pre_head_ln`, (skip, up) concatenation, the unused `linear_encoding` and
 * `pre_head_ln` parameters. The Unet width b (`unet_base_channels`, 16 officially), `img_dim` and the class
 * count are options (the official literals are the defaults). Inputs must be exactly img_dim³.
 *
 * Eval mode is deterministic by default; `official_eval_dropout: true` applies the official always-on
 * `F.dropout3d(p=0.2)` after the first conv (masks from `stochastic`). In training mode every dropout
 * (rates dropout_rate / attn_dropout_rate, and the dropout3d) is active unless `stochastic.enabled` is false.
 */
export class TransBTS extends RecordingNetwork {
  readonly config: Readonly<TransBTSConfig>;
  readonly stochastic: Stochastic;
  readonly linear_encoding: Linear;
  readonly position_embeddings: Tensor;
  readonly layers: ResidualPreNorm[] = [];
  readonly pre_head_ln: LayerNorm;
  readonly conv_x: Conv3d;
  readonly Unet: Unet;
  readonly bn: BatchNorm3d;
  readonly Enblock8_1: Enblock8First;
  readonly Enblock8_2: PostActBlock;
  readonly de: { up: DeUpCat; block: PostActBlock }[] = [];
  readonly endconv: Conv3d;

  constructor(config: unknown, opts: { seed?: number; meta?: boolean } = {}) {
    super();
    const cfg = normalizeTransBTSConfig(config);
    this.config = Object.freeze(cfg);
    this.stochastic = new Stochastic(opts.seed ?? 0);
    const init = initContext({ seed: opts.seed, meta: opts.meta });
    const e = cfg.embeddingDim;
    const b = cfg.unetBaseChannels;
    const tokens = (cfg.imgDim / cfg.patchDim) ** 3;
    this.linear_encoding = this.registerModule('linear_encoding', new Linear(128 * cfg.numChannels, e, { init }));
    this.position_embeddings = this.registerModule('position_encoding', new LearnedPositionalEncoding(tokens, e, init)).position_embeddings;
    const transformer = new Container();
    const net = new Container();
    for (let i = 0; i < cfg.numLayers; i++) {
      const attn = new ResidualPreNorm(new SelfAttention(e, cfg.numHeads, init, { attn: cfg.attnDropoutRate }, this.stochastic), e, init, cfg.dropoutRate, this.stochastic);
      const ff = new ResidualPreNorm(new FeedForward(e, cfg.hiddenDim, init, cfg.dropoutRate, this.stochastic), e, init, 0, this.stochastic);
      this.layers.push(net.registerModule(String(2 * i), attn), net.registerModule(String(2 * i + 1), ff));
    }
    transformer.registerModule('net', net);
    this.registerModule('transformer', transformer);
    this.pre_head_ln = this.registerModule('pre_head_ln', new LayerNorm(e, { eps: 1e-5, channelsLast: true, init }));
    this.conv_x = this.registerModule('conv_x', new Conv3d(8 * b, e, 3, { padding: 1, init }));
    this.Unet = this.registerModule('Unet', new Unet(cfg.numChannels, b, init));
    this.bn = this.registerModule('bn', new BatchNorm3d(8 * b, { init }));
    this.Enblock8_1 = this.registerModule('Enblock8_1', new Enblock8First(e, init));
    this.Enblock8_2 = this.registerModule('Enblock8_2', new PostActBlock(e / 4, ['conv1', 'bn1', 'bn2', 'conv2'], init));
    for (const k of [4, 3, 2]) {
      const cin = (e / 4) * 2 ** (k - 4);
      const up = this.registerModule(`DeUp${k}`, new DeUpCat(cin, cin / 2, init));
      const block = this.registerModule(`DeBlock${k}`, new PostActBlock(cin / 2, ['bn1', 'conv1', 'conv2', 'bn2'], init));
      this.de.push({ up, block });
    }
    this.endconv = this.registerModule('endconv', new Conv3d(b, cfg.numClasses, 1, { init }));
  }

  get inChannels(): number {
    return this.config.numChannels;
  }
  get outChannels(): number {
    return this.config.numClasses;
  }
  /** The position embeddings fix the input to img_dim³. */
  get fixedInputSize(): [number, number, number] {
    const d = this.config.imgDim;
    return [d, d, d];
  }

  checkInputShape(shape: readonly number[]): void {
    checkBasicInput('TransBTS', shape, this.config.numChannels);
    const d = this.config.imgDim;
    if (shape.slice(2).some((s) => s !== d))
      throw new NetworkInputError(
        `TransBTS input spatial size ${shape.slice(2).join('×')} is invalid: the network takes exactly img_dim³ = ${d}×${d}×${d} (its ${(d / 8) ** 3} position embeddings are fixed); use sliding-window inference with that window`,
      );
  }

  protected run(x: Tensor, put?: Put): Tensor {
    const cfg = this.config;
    const e = cfg.embeddingDim;
    const u = this.Unet;
    let y = u.InitConv.conv.forward(x);
    y = this.stochastic.dropoutChannels(y, TRANSBTS_INIT_DROPOUT, this.training || cfg.officialEvalDropout);
    put?.('Unet.InitConv', y);
    const x1 = u.run(y, ['EnBlock1']);
    const x2 = u.run(x1, ['EnDown1', 'EnBlock2_1', 'EnBlock2_2']);
    const x3 = u.run(x2, ['EnDown2', 'EnBlock3_1', 'EnBlock3_2']);
    const ux = u.run(x3, ['EnDown3', 'EnBlock4_1', 'EnBlock4_2', 'EnBlock4_3', 'EnBlock4_4']);
    const bn = this.bn.forward(ux);
    const convX = this.conv_x.forward(relu(bn));
    const batch = x.shape[0]!;
    const tokens = reshape(permute(convX, [0, 2, 3, 4, 1]), [batch, -1, e]);
    let h = this.stochastic.dropout(add(tokens, this.position_embeddings), cfg.dropoutRate, this.training);
    if (put) for (const [n, t] of Object.entries({ x1_1: x1, x2_1: x2, x3_1: x3, unet_x: ux, bn, conv_x: convX, tokens, tokens_pe: h })) put(n, t);
    let layer4: Tensor | null = null;
    this.layers.forEach((l, i) => {
      h = l.forward(h);
      put?.(`intmd.${i}`, h);
      if (i === 7) layer4 = h;
    });
    // encode() computes pre_head_ln(x); decode() never uses it.
    if (put) put('pre_head_ln', layerNorm(h, this.pre_head_ln.weight, this.pre_head_ln.bias, { eps: 1e-5, channelsLast: true }));
    const g = cfg.imgDim / cfg.patchDim;
    let z = permute(reshape(layer4!, [batch, g, g, g, e]), [0, 4, 1, 2, 3]);
    put?.('x8', z);
    z = this.Enblock8_1.forward(z);
    put?.('Enblock8_1', z);
    z = this.Enblock8_2.forward(z);
    put?.('Enblock8_2', z);
    const skips = [x3, x2, x1];
    this.de.forEach(({ up, block }, i) => {
      const k = 4 - i;
      z = up.forward(z, skips[i]!);
      put?.(`DeUp${k}`, z);
      z = block.forward(z);
      put?.(`DeBlock${k}`, z);
    });
    return this.endconv.forward(z);
  }

  static countParameters(config: unknown): number {
    return new TransBTS(config, { meta: true }).numParameters();
  }
}
