import { add } from '../../engine/ops/index.js';
import { tidy } from '../../engine/scope.js';
import type { Tensor } from '../../engine/tensor.js';
import { InstanceNorm3d, LeakyReLU } from '../../nn/layers.js';
import { initContext, Module, type InitOptions, type Layer } from '../../nn/module.js';
import { step } from '../../nn/step.js';
import { Convolution } from './convolution.js';

export interface UnetResBlockOptions extends InitOptions {
  kernelSize?: number;
  stride?: number;
  /** LeakyReLU negative slope; MONAI's default is 0.01. */
  negativeSlope?: number;
}

/**
 * MONAI 0.9.0 `UnetResBlock` (norm "instance", act leakyrelu 0.01):
 * conv1 → IN → lrelu → conv2 → IN, plus a residual (identity, or conv3 1×1×1 → IN when the channel
 * count or stride changes), then lrelu after the add. Convs have no bias.
 * Keys: `conv1.conv.weight`, `conv2.conv.weight`, and `conv3.conv.weight` when present.
 */
export class UnetResBlock extends Module implements Layer {
  readonly conv1: Convolution;
  readonly conv2: Convolution;
  readonly conv3: Convolution | null;
  readonly lrelu: LeakyReLU;
  readonly norm1: InstanceNorm3d;
  readonly norm2: InstanceNorm3d;
  readonly norm3: InstanceNorm3d | null;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    opts: UnetResBlockOptions = {},
  ) {
    super();
    const init = initContext(opts);
    const k = opts.kernelSize ?? 3;
    const stride = opts.stride ?? 1;
    this.conv1 = this.registerModule('conv1', new Convolution(inChannels, outChannels, { kernelSize: k, stride }, init));
    this.conv2 = this.registerModule('conv2', new Convolution(outChannels, outChannels, { kernelSize: k, stride: 1 }, init));
    this.lrelu = this.registerModule('lrelu', new LeakyReLU(opts.negativeSlope ?? 0.01));
    this.norm1 = this.registerModule('norm1', new InstanceNorm3d());
    this.norm2 = this.registerModule('norm2', new InstanceNorm3d());
    const downsample = inChannels !== outChannels || stride !== 1;
    this.conv3 = downsample ? this.registerModule('conv3', new Convolution(inChannels, outChannels, { kernelSize: 1, stride }, init)) : null;
    this.norm3 = downsample ? this.registerModule('norm3', new InstanceNorm3d()) : null;
  }

  forward(inp: Tensor): Tensor {
    return tidy(() => {
      let out = this.conv1.forward(inp);
      out = step(out, (t) => this.norm1.forward(t));
      out = step(out, (t) => this.lrelu.forward(t));
      out = step(out, (t) => this.conv2.forward(t));
      out = step(out, (t) => this.norm2.forward(t));
      let residual = inp;
      if (this.conv3 && this.norm3) residual = step(this.conv3.forward(inp), (t) => this.norm3!.forward(t));
      const sum = add(out, residual);
      out.dispose();
      if (residual !== inp) residual.dispose();
      return step(sum, (t) => this.lrelu.forward(t));
    });
  }
}

/** MONAI `UnetrBasicBlock` with res_block=True: a thin wrapper, hence the `layer.` key prefix. */
export class UnetrBasicBlock extends Module implements Layer {
  readonly layer: UnetResBlock;
  constructor(inChannels: number, outChannels: number, opts: UnetResBlockOptions = {}) {
    super();
    this.layer = this.registerModule('layer', new UnetResBlock(inChannels, outChannels, { ...opts, init: initContext(opts) }));
  }
  forward(x: Tensor): Tensor {
    return this.layer.forward(x);
  }
}
