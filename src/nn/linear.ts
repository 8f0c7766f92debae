import type { Tensor } from '../engine/tensor.js';
import { linear, linearGelu } from '../engine/ops/index.js';
import { initContext, Module, type InitOptions, type Layer } from './module.js';
import type { Rng } from '../engine/rng.js';

export interface LinearOptions extends InitOptions {
  /** Default true, as in `nn.Linear`. */
  bias?: boolean;
}

/**
 * `nn.Linear`: weight [out, in], optional bias [out], y = x·Wᵀ + b over the last axis. PyTorch's
 * default initialisation: weight and bias ~ U(±1/√in).
 */
export class Linear extends Module implements Layer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: LinearOptions = {},
  ) {
    super();
    if (!Number.isInteger(inFeatures) || inFeatures <= 0 || !Number.isInteger(outFeatures) || outFeatures <= 0)
      throw new Error(`Linear(${inFeatures}, ${outFeatures}): sizes must be positive integers`);
    const ctx = initContext(opts);
    const bound = 1 / Math.sqrt(inFeatures);
    const init = (n: number, rng: Rng) => rng.uniformArray(n, -bound, bound);
    this.weight = this.createParameter(ctx, 'weight', [outFeatures, inFeatures], init);
    this.bias = (opts.bias ?? true) ? this.createParameter(ctx, 'bias', [outFeatures], init) : null;
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }

  /** gelu(forward(x)) as one fused op (transformer MLPs: Linear → exact GELU); same values and gradients. */
  forwardGelu(x: Tensor): Tensor {
    return linearGelu(x, this.weight, this.bias);
  }
}
