/**
 * MONAI 0.9.0 `sliding_window_inference` (monai/inferers/utils.py), glued from the pieces in
 * ./sliding-window-geometry.ts. Memory: besides the model's own work, one batch of windows, one
 * predictor output and the full-size result (plus one D·H·W count map per image in flight); the
 * input is never padded or copied.
 *
 * Order of work is MONAI's: windows of all images are enumerated image-major, then in row-major
 * (D, H, W) window order, and consecutive runs of swBatchSize windows (possibly spanning two images)
 * form one predictor batch. Blending and the final division round exactly as torch does, so with a
 * predictor that reproduces the model's logits the result matches MONAI up to the model's own
 * rounding.
 */
import { noGrad } from '../engine/scope.js';
import { tensor } from '../engine/creation.js';
import type { Tensor } from '../engine/tensor.js';
import { planSlidingWindow, importanceMap, extractWindow, SlidingWindowAccumulator, type BlendMode, type Size3 } from './sliding-window-geometry.js';

/** Runs the model on a batch of windows [B, Cin, d, h, w] (C order) and returns logits [B, Cout, d, h, w]. */
export type WindowPredictor = (batch: Float32Array, shape: [number, number, number, number, number]) => Promise<Float32Array> | Float32Array;

export interface SlidingWindowOptions {
  /** Fraction of overlap between windows, [0, 1). MONAI default 0.25. */
  overlap?: number;
  /** Blending mode. MONAI default 'constant'. */
  mode?: BlendMode;
  /** Gaussian sigma as a fraction of the ROI (default 0.125). */
  sigmaScale?: number | readonly number[];
  /** Which MONAI Gaussian map: 0.9.0 (default, the official repo's pin) or >= 1.1. */
  variant?: 'monai09' | 'monai1x';
  /** Windows per predictor call. MONAI default 1. */
  swBatchSize?: number;
  /** Padding value where the image is smaller than the ROI (MONAI cval, default 0). */
  cval?: number;
  /** Explicit per-window weight map (MONAI roi_weight_map), used as given (no clamp). */
  weightMap?: Float32Array;
  /** Called after each predictor batch with (windows done, windows total). */
  onProgress?: (done: number, total: number) => void;
}

export interface VolumeData {
  data: Float32Array;
  /** [N, C, D, H, W] */
  shape: readonly number[];
}

export async function slidingWindowInference(
  input: VolumeData,
  roi: readonly number[],
  predictor: WindowPredictor,
  opts: SlidingWindowOptions = {},
): Promise<{ data: Float32Array; shape: [number, number, number, number, number] }> {
  if (input.shape.length !== 5) throw new RangeError(`input must be [N, C, D, H, W], got ${JSON.stringify(input.shape)}`);
  const [N, C, D, H, W] = input.shape as [number, number, number, number, number];
  const vox = D * H * W;
  if (input.data.length !== N * C * vox) throw new RangeError(`input has ${input.data.length} values, shape ${JSON.stringify(input.shape)} needs ${N * C * vox}`);
  const swBatch = opts.swBatchSize ?? 1;
  if (!(Number.isInteger(swBatch) && swBatch >= 1)) throw new RangeError(`swBatchSize must be a positive integer, got ${swBatch}`);
  const imageSize: Size3 = [D, H, W];
  const plan = planSlidingWindow(imageSize, roi, opts.overlap ?? 0.25);
  const [rd, rh, rw] = plan.roi;
  const rv = rd * rh * rw;
  const weights = opts.weightMap ?? importanceMap(plan.roi, opts.mode ?? 'constant', { sigmaScale: opts.sigmaScale, variant: opts.variant });
  if (weights.length !== rv) throw new RangeError(`weightMap has ${weights.length} values, the ROI ${plan.roi.join('x')} needs ${rv}`);

  const numWin = plan.starts.length;
  const total = numWin * N;
  let outC = 0;
  let output: Float32Array | null = null;
  const accs: (SlidingWindowAccumulator | null)[] = new Array(N).fill(null);
  const batchBuf = new Float32Array(Math.min(swBatch, total) * C * rv);

  for (let g = 0; g < total; g += swBatch) {
    const count = Math.min(swBatch, total - g);
    for (let b = 0; b < count; b++) {
      const idx = g + b;
      const img = Math.floor(idx / numWin);
      extractWindow(
        input.data.subarray(img * C * vox, (img + 1) * C * vox),
        C,
        imageSize,
        plan.padding.before,
        plan.starts[idx % numWin]!,
        plan.roi,
        batchBuf.subarray(b * C * rv, (b + 1) * C * rv),
        opts.cval ?? 0,
      );
    }
    const batch = count === batchBuf.length / (C * rv) ? batchBuf : batchBuf.subarray(0, count * C * rv);
    const pred = await predictor(batch, [count, C, rd, rh, rw]);
    if (output === null) {
      // The number of output channels is known only from the first prediction.
      outC = pred.length / (count * rv);
      if (!Number.isInteger(outC) || outC < 1) throw new RangeError(`predictor returned ${pred.length} values for ${count} windows of ${rv} voxels`);
      output = new Float32Array(N * outC * vox);
    } else if (pred.length !== count * outC * rv) {
      throw new RangeError(`predictor returned ${pred.length} values, expected ${count}x${outC}x${rd}x${rh}x${rw}`);
    }
    for (let b = 0; b < count; b++) {
      const idx = g + b;
      const img = Math.floor(idx / numWin);
      const acc = (accs[img] ??= SlidingWindowAccumulator.forPlan(plan, outC, { output: output.subarray(img * outC * vox, (img + 1) * outC * vox) }));
      acc.add(plan.starts[idx % numWin]!, pred.subarray(b * outC * rv, (b + 1) * outC * rv), weights);
      if (idx % numWin === numWin - 1) {
        acc.finalize();
        accs[img] = null; // drop its count map
      }
    }
    opts.onProgress?.(g + count, total);
  }
  return { data: output!, shape: [N, outC, D, H, W] };
}

/** A predictor that runs a model (anything with forward(Tensor) -> Tensor) without autograd. */
export function modelPredictor(model: { forward(x: Tensor): Tensor }, opts: { backend?: string } = {}): WindowPredictor {
  return async (batch, shape) => {
    const x = tensor(batch, shape, { backend: opts.backend });
    let y: Tensor;
    try {
      y = noGrad(() => model.forward(x));
    } finally {
      x.dispose();
    }
    try {
      return await y.data();
    } finally {
      y.dispose();
    }
  };
}
