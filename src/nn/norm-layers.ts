import { add, batchNormEval, batchNormTrain, groupNorm, relu } from '../engine/ops/index.js';
import { keep } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
import { initContext, Module, type BufferSlot, type InitOptions, type Layer } from './module.js';

/**
 * `nn.GroupNorm(numGroups, numChannels)` with affine weight (ones) and bias (zeros), eps 1e-5. No running
 * statistics: the same in training and eval.
 */
export class GroupNorm extends Module implements Layer {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(
    readonly numGroups: number,
    readonly numChannels: number,
    opts: InitOptions & { eps?: number } = {},
  ) {
    super();
    if (!Number.isInteger(numGroups) || numGroups < 1 || numChannels % numGroups !== 0)
      throw new Error(`GroupNorm(${numGroups}, ${numChannels}): num_channels must be divisible by num_groups`);
    const ctx = initContext(opts);
    this.eps = opts.eps ?? 1e-5;
    this.weight = this.createParameter(ctx, 'weight', [numChannels], (n) => new Float32Array(n).fill(1));
    this.bias = this.createParameter(ctx, 'bias', [numChannels], (n) => new Float32Array(n));
  }
  readonly eps: number;
  forward(x: Tensor): Tensor {
    return groupNorm(x, this.numGroups, this.weight, this.bias, { eps: this.eps });
  }
  /** ReLU(forward(x)), fused into one pass on inference (pre-activation blocks). */
  forwardRelu(x: Tensor): Tensor {
    return groupNorm(x, this.numGroups, this.weight, this.bias, { eps: this.eps, relu: true });
  }
}

/**
 * `nn.BatchNorm3d(C)` with PyTorch's defaults (affine, eps 1e-5, momentum 0.1, track_running_stats):
 * state-dict keys weight, bias, running_mean, running_var, num_batches_tracked (int64, 0-dimensional).
 * Training mode normalises with the batch statistics and folds them into the running statistics
 * (mean, and the unbiased variance) with momentum 0.1; eval mode uses the running statistics.
 *
 * The running statistics live on the host. On a backend without synchronous reads (WebGPU) a training
 * forward leaves the update pending until `flushStatsAsync()` (or a synchronous flush on a CPU backend).
 */
export class BatchNorm3d extends Module implements Layer {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly momentum = 0.1;
  readonly eps = 1e-5;
  private readonly runningMean: BufferSlot;
  private readonly runningVar: BufferSlot;
  private readonly tracked: BufferSlot;
  private pending: { mean: Tensor; varUnbiased: Tensor }[] = [];

  constructor(
    readonly numFeatures: number,
    opts: InitOptions = {},
  ) {
    super();
    const ctx = initContext(opts);
    this.weight = this.createParameter(ctx, 'weight', [numFeatures], (n) => new Float32Array(n).fill(1));
    this.bias = this.createParameter(ctx, 'bias', [numFeatures], (n) => new Float32Array(n));
    this.runningMean = this.registerBuffer('running_mean', [numFeatures], new Float32Array(numFeatures), 'F32', { mutable: true });
    this.runningVar = this.registerBuffer('running_var', [numFeatures], new Float32Array(numFeatures).fill(1), 'F32', { mutable: true });
    this.tracked = this.registerBuffer('num_batches_tracked', [], new Float32Array(1), 'I64', { mutable: true });
  }

  forward(x: Tensor): Tensor {
    if (!this.training) {
      this.flushStats();
      return batchNormEval(x, this.runningMean.values, this.runningVar.values, this.weight, this.bias, { eps: this.eps });
    }
    return this.forwardTrain(x);
  }

  /** ReLU(forward(x)) (+ residual): one fused pass in eval mode on inference (post-activation blocks). */
  forwardRelu(x: Tensor, residual?: Tensor): Tensor {
    if (!this.training) {
      this.flushStats();
      return batchNormEval(x, this.runningMean.values, this.runningVar.values, this.weight, this.bias, { eps: this.eps, relu: true, residual });
    }
    const y = relu(this.forwardTrain(x));
    return residual ? add(y, residual) : y;
  }

  /** The eval-mode normalisation (running statistics, current values; pending batches folded in) for fused ops. */
  evalNorm(): { runningMean: Float32Array; runningVar: Float32Array; eps: number; w: Tensor; b: Tensor } {
    this.flushStats();
    return { runningMean: this.runningMean.values, runningVar: this.runningVar.values, eps: this.eps, w: this.weight, b: this.bias };
  }

  private forwardTrain(x: Tensor): Tensor {
    const { y, mean, varUnbiased } = batchNormTrain(x, this.weight, this.bias, { eps: this.eps });
    // keep(): the statistics outlive the forward's tidy scopes until they are folded in.
    this.pending.push({ mean: keep(mean), varUnbiased: keep(varUnbiased) });
    try {
      this.flushStats();
    } catch {
      // No synchronous reads on this backend: flushStatsAsync() folds the statistics in later.
    }
    return y;
  }

  /** Folds pending batch statistics into the running statistics (synchronous reads). */
  flushStats(): void {
    while (this.pending.length) {
      const s = this.pending[0]!;
      this.fold(s.mean.dataSync(), s.varUnbiased.dataSync());
      this.pending.shift();
      s.mean.dispose();
      s.varUnbiased.dispose();
    }
  }

  async flushStatsAsync(): Promise<void> {
    while (this.pending.length) {
      const s = this.pending.shift()!;
      this.fold(await s.mean.data(), await s.varUnbiased.data());
      s.mean.dispose();
      s.varUnbiased.dispose();
    }
  }

  /** running ← momentum·batch + (1 − momentum)·running, in double and rounded once, as PyTorch's CPU kernel. */
  private fold(mean: Float32Array, varU: Float32Array): void {
    const m = this.momentum;
    const rm = this.runningMean.values;
    const rv = this.runningVar.values;
    for (let i = 0; i < rm.length; i++) {
      rm[i] = m * mean[i]! + (1 - m) * rm[i]!;
      rv[i] = m * varU[i]! + (1 - m) * rv[i]!;
    }
    this.tracked.values[0] = this.tracked.values[0]! + 1;
  }

  /** The current running statistics (copies), after folding in any pending batch. */
  runningStats(): { mean: Float32Array; var: Float32Array; numBatchesTracked: number } {
    this.flushStats();
    return { mean: this.runningMean.values.slice(), var: this.runningVar.values.slice(), numBatchesTracked: this.tracked.values[0]! };
  }
}

/** Folds every BatchNorm's pending statistics (after training-mode forwards on WebGPU). */
export async function flushBatchNormStats(m: Module): Promise<void> {
  for (const [, sub] of m.namedModules()) if (sub instanceof BatchNorm3d) await sub.flushStatsAsync();
}
