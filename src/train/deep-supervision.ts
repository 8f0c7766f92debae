import { tensor } from '../engine/creation.js';
import { add, scale } from '../engine/ops/index.js';
import { tidy } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
import { Conv3d } from '../nn/layers.js';
import { initContext, Module } from '../nn/module.js';
import type { DiceCELoss, DiceCELossResult } from './dice-ce-loss.js';

/**
 * nnU-Net's deep-supervision weights: level k (0 = the network's own full-resolution output, k = 1.. the
 * decoder's outputs at 1/2^k) gets 1/2^k, normalised to sum to 1. nnU-Net also gives its coarsest decoder
 * level a zero weight; here the caller simply supervises fewer levels.
 */
export function deepSupervisionWeights(levels: number): number[] {
  if (!Number.isInteger(levels) || levels < 0) throw new Error(`deep supervision levels must be a non-negative integer, got ${levels}`);
  const w = Array.from({ length: levels + 1 }, (_, k) => 2 ** -k);
  const sum = w.reduce((a, b) => a + b, 0);
  return w.map((v) => v / sum);
}

/**
 * A [N, 1, D, H, W] class-index label at 1/factor of its size: output voxel i takes input voxel
 * i·factor + ⌊factor/2⌋, the centre of its block (PyTorch's `nearest-exact`), so no label value is invented.
 */
export function downsampleLabel(
  label: Float32Array,
  shape: readonly [number, number, number, number],
  factor: number,
): { data: Float32Array; shape: [number, number, number, number] } {
  const [n, d, h, w] = shape;
  if (!Number.isInteger(factor) || factor < 1 || d % factor || h % factor || w % factor) throw new Error(`downsampleLabel: ${d}x${h}x${w} is not divisible by ${factor}`);
  const [od, oh, ow] = [d / factor, h / factor, w / factor];
  const out = new Float32Array(n * od * oh * ow);
  const c = Math.floor(factor / 2);
  let o = 0;
  for (let b = 0; b < n; b++)
    for (let z = 0; z < od; z++)
      for (let y = 0; y < oh; y++) {
        const row = ((b * d + z * factor + c) * h + y * factor + c) * w + c;
        for (let x = 0; x < ow; x++) out[o++] = label[row + x * factor]!;
      }
  return { data: out, shape: [n, od, oh, ow] };
}

export interface DeepSupervisionLoss {
  /** The weighted sum over levels: what is minimised. */
  loss: Tensor;
  /** The full-resolution output's own DiceCE (comparable with a run without deep supervision). */
  main: DiceCELossResult;
}

/**
 * Training-only 1x1x1 heads on the decoder's outputs below full resolution (nnU-Net's deep supervision).
 * The heads are not part of the network: model folders hold the network alone, so a model trained with
 * them is used exactly as one trained without. Their parameters (and AdamW state) are saved in training
 * checkpoints under the `ds.` prefix, so `--resume` continues exactly.
 */
export class DeepSupervisionHeads extends Module {
  readonly heads: Conv3d[];
  readonly weights: number[];

  /** `channels[k]`: channel count of the decoder output at 1/2^(k+1). */
  constructor(
    channels: readonly number[],
    readonly classes: number,
    opts: { seed?: number } = {},
  ) {
    super();
    if (!channels.length) throw new Error('deep supervision needs at least one decoder level');
    // A generator of its own (seeded apart from the network's), so turning it on leaves the network's initial weights unchanged.
    const init = initContext({ seed: (opts.seed ?? 0) + 0x5eed });
    this.heads = channels.map((ch, k) => this.registerModule(String(k), new Conv3d(ch, classes, 1, { init })));
    this.weights = deepSupervisionWeights(channels.length);
  }

  /**
   * Σ_k w_k · DiceCE(level k): level 0 is `logits` against `label`, level k ≥ 1 is head k−1 on `decoder[k−1]` against
   * the label downsampled by 2^k. `labelData`/`labelShape` are the label's values, [N, D, H, W].
   */
  loss(
    lossFn: DiceCELoss,
    logits: Tensor,
    decoder: readonly Tensor[],
    label: Tensor,
    labelData: Float32Array,
    labelShape: readonly [number, number, number, number],
  ): DeepSupervisionLoss {
    if (decoder.length < this.heads.length) throw new Error(`deep supervision: ${this.heads.length} heads but the network gave ${decoder.length} decoder levels`);
    return tidy(() => {
      const main = lossFn.forward(logits, label);
      let total = scale(main.loss, this.weights[0]!);
      this.heads.forEach((head, k) => {
        const y = downsampleLabel(labelData, labelShape, 2 ** (k + 1));
        const r = lossFn.forward(head.forward(decoder[k]!), tensor(y.data, [y.shape[0], 1, y.shape[1], y.shape[2], y.shape[3]]));
        total = add(total, scale(r.loss, this.weights[k + 1]!));
      });
      return { loss: total, main };
    });
  }
}
