import type { Tensor } from '../../engine/tensor.js';
import { initContext, Module, type InitOptions, type Layer } from '../../nn/module.js';
import { Convolution } from './convolution.js';

/** MONAI `UnetOutBlock`: a 1×1×1 Conv3d **with** bias. Keys `conv.conv.weight`, `conv.conv.bias`. */
export class UnetOutBlock extends Module implements Layer {
  readonly conv: Convolution;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    opts: InitOptions = {},
  ) {
    super();
    this.conv = this.registerModule('conv', new Convolution(inChannels, outChannels, { kernelSize: 1, stride: 1, bias: true }, initContext(opts)));
  }
  forward(x: Tensor): Tensor {
    return this.conv.forward(x);
  }
}
