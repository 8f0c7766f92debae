import { concatChannels } from '../../engine/ops/index.js';
import { tidy } from '../../engine/scope.js';
import type { Tensor } from '../../engine/tensor.js';
import { initContext, Module, type InitOptions } from '../../nn/module.js';
import { Convolution } from './convolution.js';
import { UnetResBlock } from './unet-res-block.js';

export interface UnetrUpBlockOptions extends InitOptions {
  kernelSize?: number;
  upsampleKernelSize?: number;
}

/**
 * MONAI 0.9.0 `UnetrUpBlock` with res_block=True: `transp_conv` (ConvTranspose3d k2 s2, no bias)
 * doubles every spatial size, the result is concatenated **before** the skip (`cat((up, skip), 1)`),
 * then `conv_block` = UnetResBlock(2·out → out).
 */
export class UnetrUpBlock extends Module {
  readonly transp_conv: Convolution;
  readonly conv_block: UnetResBlock;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    opts: UnetrUpBlockOptions = {},
  ) {
    super();
    const init = initContext(opts);
    const up = opts.upsampleKernelSize ?? 2;
    this.transp_conv = this.registerModule('transp_conv', new Convolution(inChannels, outChannels, { kernelSize: up, stride: up, transposed: true }, init));
    this.conv_block = this.registerModule('conv_block', new UnetResBlock(2 * outChannels, outChannels, { kernelSize: opts.kernelSize ?? 3, stride: 1, init }));
  }

  forward(inp: Tensor, skip: Tensor): Tensor {
    return this.forwardDetailed(inp, skip, false).out;
  }

  /** Like forward; with `keepUpsampled` also returns the transposed-conv output (otherwise freed early). */
  forwardDetailed(inp: Tensor, skip: Tensor, keepUpsampled: boolean): { out: Tensor; upsampled: Tensor | null } {
    return tidy(() => {
      const up = this.transp_conv.forward(inp);
      const s = up.shape;
      if (skip.rank !== 5 || skip.shape[0] !== s[0] || skip.shape.slice(2).some((d, i) => d !== s[i + 2])) {
        throw new Error(`UnetrUpBlock: upsampled tensor [${s.join(', ')}] and skip [${skip.shape.join(', ')}] differ in batch or spatial size`);
      }
      const cat = concatChannels([up, skip]);
      if (!keepUpsampled) up.dispose();
      const out = this.conv_block.forward(cat);
      cat.dispose();
      return { out, upsampled: keepUpsampled ? up : null };
    });
  }
}
