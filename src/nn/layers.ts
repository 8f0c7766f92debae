import type { Triple } from '../engine/kernels.js';
import { conv3d, conv3dConcat, convTranspose3d, gelu, instanceNorm, layerNorm, leakyRelu, type ConvEpilogueOptions } from '../engine/ops/index.js';
import type { Tensor } from '../engine/tensor.js';
import { initContext, Module, type InitOptions, type Layer } from './module.js';
import type { Rng } from '../engine/rng.js';

export type Size3 = number | Triple;

function triple(v: Size3, what: string): Triple {
  const t: Triple = typeof v === 'number' ? [v, v, v] : v;
  if (t.length !== 3 || !t.every((d) => Number.isInteger(d) && d >= 0)) throw new Error(`${what} must be a non-negative integer or three of them, got ${JSON.stringify(v)}`);
  return t;
}

function positiveInt(v: number, what: string): number {
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${what} must be a positive integer, got ${v}`);
  return v;
}

/** U(−bound, bound): PyTorch's default for conv weights (kaiming_uniform with a=√5 gives bound 1/√fan_in) and biases. */
const uniformInit = (bound: number) => (n: number, rng: Rng) => rng.uniformArray(n, -bound, bound);
const constInit = (v: number) => (n: number) => new Float32Array(n).fill(v);

export interface Conv3dOptions extends InitOptions {
  stride?: Size3;
  padding?: Size3;
  groups?: number;
  /** Default true, as in `nn.Conv3d`. */
  bias?: boolean;
}

/**
 * `nn.Conv3d`: weight [out, in/groups, kD, kH, kW], optional bias [out]. Zero padding.
 * Initialisation follows PyTorch's defaults: weight and bias ~ U(±1/√fan_in), fan_in = in/groups·kD·kH·kW.
 */
export class Conv3d extends Module implements Layer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly stride: Triple;
  readonly padding: Triple;
  readonly groups: number;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: Size3,
    opts: Conv3dOptions = {},
  ) {
    super();
    positiveInt(inChannels, 'Conv3d in_channels');
    positiveInt(outChannels, 'Conv3d out_channels');
    const k = triple(kernelSize, 'Conv3d kernel_size');
    this.stride = triple(opts.stride ?? 1, 'Conv3d stride');
    this.padding = triple(opts.padding ?? 0, 'Conv3d padding');
    this.groups = positiveInt(opts.groups ?? 1, 'Conv3d groups');
    if (inChannels % this.groups || outChannels % this.groups)
      throw new Error(`Conv3d: in (${inChannels}) and out (${outChannels}) channels must be divisible by groups (${this.groups})`);
    const ctx = initContext(opts);
    const fanIn = (inChannels / this.groups) * k[0] * k[1] * k[2];
    const bound = 1 / Math.sqrt(fanIn);
    this.weight = this.createParameter(ctx, 'weight', [outChannels, inChannels / this.groups, ...k], uniformInit(bound));
    this.bias = (opts.bias ?? true) ? this.createParameter(ctx, 'bias', [outChannels], uniformInit(bound)) : null;
  }

  forward(x: Tensor): Tensor {
    return conv3d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, groups: this.groups });
  }

  /**
   * This conv over the channel concatenation of `xs`, read in place, with an optional fused epilogue
   * (eval BatchNorm, ReLU, residual) applied as the output is stored (conv3dConcat); same values as
   * the layers one after the other.
   */
  forwardFused(xs: readonly Tensor[], epilogue: ConvEpilogueOptions = {}): Tensor {
    return conv3dConcat(xs, this.weight, this.bias, { stride: this.stride, padding: this.padding, groups: this.groups, ...epilogue });
  }
}

export interface ConvTranspose3dOptions extends InitOptions {
  stride?: Size3;
  padding?: Size3;
  /** Default false (MONAI's blocks); nnFormer and TransBTS use PyTorch's default, true. */
  bias?: boolean;
}

/**
 * `nn.ConvTranspose3d` with groups 1 and no bias (all UX-Net needs): weight [in, out, kD, kH, kW].
 * PyTorch computes the init fan_in from weight dim 1, i.e. out·kD·kH·kW, and so do we: U(±1/√fan_in).
 */
export class ConvTranspose3d extends Module implements Layer {
  readonly weight: Tensor;
  readonly stride: Triple;
  readonly padding: Triple;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: Size3,
    opts: ConvTranspose3dOptions = {},
  ) {
    super();
    positiveInt(inChannels, 'ConvTranspose3d in_channels');
    positiveInt(outChannels, 'ConvTranspose3d out_channels');
    const k = triple(kernelSize, 'ConvTranspose3d kernel_size');
    this.stride = triple(opts.stride ?? 1, 'ConvTranspose3d stride');
    this.padding = triple(opts.padding ?? 0, 'ConvTranspose3d padding');
    const ctx = initContext(opts);
    const fanIn = outChannels * k[0] * k[1] * k[2];
    this.weight = this.createParameter(ctx, 'weight', [inChannels, outChannels, ...k], uniformInit(1 / Math.sqrt(fanIn)));
    this.bias = opts.bias ? this.createParameter(ctx, 'bias', [outChannels], uniformInit(1 / Math.sqrt(fanIn))) : null;
  }
  readonly bias: Tensor | null;

  forward(x: Tensor): Tensor {
    return convTranspose3d(x, this.weight, { stride: this.stride, padding: this.padding, bias: this.bias });
  }
}

export interface LayerNormOptions extends InitOptions {
  /** Default 1e-6, the official UX-Net value (not PyTorch's 1e-5). */
  eps?: number;
  /**
   * false (default): input NCDHW, normalised over axis 1 at every voxel — the official
   * `data_format="channels_first"`. true: normalised over the last axis (`F.layer_norm`).
   */
  channelsLast?: boolean;
}

/**
 * The official UX-Net `LayerNorm`: weight (ones) and bias (zeros) of shape [C], biased variance,
 * eps inside the square root. The ux_block's channels_last LayerNorm (applied after permuting to
 * NDHWC and back) is the same function as the channels-first one applied to NCDHW directly, so the
 * model uses `channelsLast: false` there and skips both permutes.
 */
export class LayerNorm extends Module implements Layer {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly eps: number;
  readonly channelsLast: boolean;

  constructor(
    readonly normalizedShape: number,
    opts: LayerNormOptions = {},
  ) {
    super();
    positiveInt(normalizedShape, 'LayerNorm normalized_shape');
    this.eps = opts.eps ?? 1e-6;
    this.channelsLast = opts.channelsLast ?? false;
    const ctx = initContext(opts);
    this.weight = this.createParameter(ctx, 'weight', [normalizedShape], constInit(1));
    this.bias = this.createParameter(ctx, 'bias', [normalizedShape], constInit(0));
  }

  forward(x: Tensor): Tensor {
    const c = this.channelsLast ? x.shape[x.shape.length - 1] : x.shape[1];
    if (c !== this.normalizedShape) throw new Error(`LayerNorm(${this.normalizedShape}): input shape [${x.shape.join(', ')}] has ${c} channels on the normalised axis`);
    return layerNorm(x, this.weight, this.bias, { eps: this.eps, channelsLast: this.channelsLast });
  }
}

/** `nn.InstanceNorm3d` with PyTorch defaults: eps 1e-5, no affine parameters, no running statistics. */
export class InstanceNorm3d extends Module implements Layer {
  constructor(readonly eps = 1e-5) {
    super();
  }
  forward(x: Tensor): Tensor {
    return instanceNorm(x, { eps: this.eps });
  }
}

/** `nn.LeakyReLU`, default slope 0.01 (MONAI's default activation). */
export class LeakyReLU extends Module implements Layer {
  constructor(readonly negativeSlope = 0.01) {
    super();
  }
  forward(x: Tensor): Tensor {
    return leakyRelu(x, this.negativeSlope);
  }
}

/** `nn.GELU()` with the exact erf formulation (approximate='none'). */
export class GELU extends Module implements Layer {
  forward(x: Tensor): Tensor {
    return gelu(x);
  }
}
