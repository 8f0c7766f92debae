import { Conv3d, ConvTranspose3d } from '../../nn/layers.js';
import { Module, type InitContext, type Layer } from '../../nn/module.js';
import type { Tensor } from '../../engine/tensor.js';

/** MONAI `get_padding`: int((k − s + 1) / 2). */
export function monaiPadding(kernel: number, stride: number): number {
  const p = Math.trunc((kernel - stride + 1) / 2);
  if (p < 0) throw new Error(`MONAI padding for kernel ${kernel} and stride ${stride} is negative`);
  return p;
}

/** MONAI `get_output_padding`: 2p + s − k (must be 0 here: the engine's transposed conv has no output padding). */
export function monaiOutputPadding(kernel: number, stride: number, padding: number): number {
  return 2 * padding + stride - kernel;
}

export interface ConvolutionOptions {
  kernelSize: number;
  stride?: number;
  /** MONAI's `get_conv_layer` default is false; only UnetOutBlock passes true. */
  bias?: boolean;
  transposed?: boolean;
}

/**
 * MONAI `Convolution` with `conv_only=True`, as built by `get_conv_layer`: an `nn.Sequential` whose
 * only child is named `conv` — which is why every MONAI key reads `….conv.weight`.
 */
export class Convolution extends Module implements Layer {
  readonly conv: Conv3d | ConvTranspose3d;

  constructor(inChannels: number, outChannels: number, opts: ConvolutionOptions, init: InitContext) {
    super();
    const stride = opts.stride ?? 1;
    const padding = monaiPadding(opts.kernelSize, stride);
    if (opts.transposed) {
      const op = monaiOutputPadding(opts.kernelSize, stride, padding);
      if (op !== 0) throw new Error(`transposed convolution with kernel ${opts.kernelSize} and stride ${stride} needs output_padding ${op}, which is not supported`);
      if (opts.bias) throw new Error('transposed convolution with bias is not supported');
      this.conv = this.registerModule('conv', new ConvTranspose3d(inChannels, outChannels, opts.kernelSize, { stride, padding, init }));
    } else {
      this.conv = this.registerModule('conv', new Conv3d(inChannels, outChannels, opts.kernelSize, { stride, padding, bias: opts.bias ?? false, init }));
    }
  }

  forward(x: Tensor): Tensor {
    return this.conv.forward(x);
  }
}
