/**
 * Sliding-window geometry and blending, exactly as MONAI 0.9.0's `sliding_window_inference`
 * (monai/inferers/utils.py) and its helpers (`dense_patch_slices`, `get_valid_patch_size`,
 * `compute_importance_map` in monai/data/utils.py). See /work/shared/fixtures/SEMANTICS.md §9.
 *
 * Everything here is plain arrays; no tensor engine. The intended flow (src/infer/sliding-window.ts):
 *
 *   const plan = planSlidingWindow(imageSize, roi, overlap);
 *   const w = importanceMap(plan.roi, mode);
 *   const acc = new SlidingWindowAccumulator({ channels: C, imageSize, plan });
 *   for each batch of plan.starts: extractWindow(...) -> predictor -> acc.add(start, pred, w)
 *   const out = acc.finalize();   // C x D x H x W, already cropped to the input size
 *
 * Memory: the accumulator holds only the *unpadded* output (C·D·H·W) and one count map (D·H·W).
 * MONAI pads the input and accumulates into a padded output that it crops at the end; here window
 * voxels that fall into the padding are simply dropped when added, and windows are read from the
 * unpadded input with zero fill. Kept voxels receive exactly the same sequence of float32
 * operations as in MONAI, so the result is bitwise the same, without any full-size padded copy.
 */
import { erf } from '../engine/erf.js';

export type Size3 = readonly [number, number, number];
type Mut3 = [number, number, number];

function check3(name: string, v: readonly number[]): void {
  if (v.length !== 3 || !v.every((x) => Number.isInteger(x))) throw new RangeError(`${name} must be 3 integers, got ${JSON.stringify(v)}`);
}

/**
 * MONAI `fall_back_tuple` then `get_valid_patch_size`: a non-positive ROI entry means "the whole
 * image" in that dimension. (Clipping to the image only matters after padding, where it is a no-op,
 * so the ROI returned here is the one used for windows.)
 */
export function resolveRoi(imageSize: readonly number[], roi: readonly number[]): Mut3 {
  check3('imageSize', imageSize);
  check3('roi', roi);
  if (!imageSize.every((x) => x > 0)) throw new RangeError(`imageSize must be positive, got ${JSON.stringify(imageSize)}`);
  return [0, 1, 2].map((i) => (roi[i]! > 0 ? roi[i]! : imageSize[i]!)) as Mut3;
}

export interface Padding {
  /** voxels added before each of D, H, W */
  before: Mut3;
  /** voxels added after each of D, H, W */
  after: Mut3;
  /** image size after padding: max(image, roi) per dimension */
  paddedSize: Mut3;
}

/**
 * Pads only dimensions where the image is smaller than the ROI: diff//2 before, the rest after
 * (MONAI 0.9.0 L130-138). In F.pad order this is [wB, wA, hB, hA, dB, dA].
 */
export function computePadding(imageSize: readonly number[], roi: readonly number[]): Padding {
  const r = resolveRoi(imageSize, roi);
  const before: Mut3 = [0, 0, 0];
  const after: Mut3 = [0, 0, 0];
  const paddedSize: Mut3 = [0, 0, 0];
  for (let i = 0; i < 3; i++) {
    const diff = Math.max(r[i]! - imageSize[i]!, 0);
    before[i] = Math.floor(diff / 2);
    after[i] = diff - before[i]!;
    paddedSize[i] = imageSize[i]! + diff;
  }
  return { before, after, paddedSize };
}

/**
 * `_get_scan_interval` (MONAI 0.9.0 L278-299), applied to the *padded* size: the ROI itself where
 * roi == image (one window), else int(roi·(1−overlap)) with a minimum of 1. Python's int() of the
 * double product truncates; JS doubles give the same product.
 */
export function scanIntervals(paddedSize: readonly number[], roi: readonly number[], overlap: number): Mut3 {
  check3('imageSize', paddedSize);
  check3('roi', roi);
  if (!(overlap >= 0 && overlap < 1)) throw new RangeError(`overlap must be in [0, 1), got ${overlap}`);
  return [0, 1, 2].map((i) => {
    if (roi[i] === paddedSize[i]) return roi[i]!;
    const interval = Math.trunc(roi[i]! * (1 - overlap));
    return interval > 0 ? interval : 1;
  }) as Mut3;
}

/**
 * Window starts along each dimension (`dense_patch_slices`, monai/data/utils.py L161-198):
 * scan_num = 1 + first d with d·interval + roi >= size; start = d·interval, shifted back to
 * size − roi when it would overrun (so starts are not evenly spaced: 45/32/16 gives 0, 13).
 */
export function windowStarts(imageSize: readonly number[], roi: readonly number[], interval: readonly number[]): number[][] {
  check3('imageSize', imageSize);
  check3('roi', roi);
  check3('interval', interval);
  const out: number[][] = [];
  for (let i = 0; i < 3; i++) {
    const size = imageSize[i]!;
    const patch = Math.min(roi[i]!, size); // get_valid_patch_size
    const step = interval[i]!;
    let scanNum = 1;
    if (step !== 0) {
      const num = Math.ceil(size / step);
      for (let d = 0; d < num; d++) {
        if (d * step + patch >= size) {
          scanNum = d + 1;
          break;
        }
      }
    }
    const starts: number[] = [];
    for (let d = 0; d < scanNum; d++) {
      const s = d * step;
      starts.push(s - Math.max(s + patch - size, 0));
    }
    out.push(starts);
  }
  return out;
}

/** All window starts in row-major (D, H, W) order, i.e. np.meshgrid(..., indexing="ij") flattened. */
export function windowGrid(imageSize: readonly number[], roi: readonly number[], interval: readonly number[]): Mut3[] {
  const [sd, sh, sw] = windowStarts(imageSize, roi, interval) as [number[], number[], number[]];
  const out: Mut3[] = [];
  for (const d of sd) for (const h of sh) for (const w of sw) out.push([d, h, w]);
  return out;
}

export interface SlidingWindowPlan {
  imageSize: Mut3;
  /** ROI after fall-back (non-positive entries -> image size). */
  roi: Mut3;
  padding: Padding;
  interval: Mut3;
  /** Window starts in *padded* coordinates, in MONAI's enumeration order. */
  starts: Mut3[];
}

/** Everything MONAI 0.9.0 derives from (image size, roi, overlap) before running the predictor. */
export function planSlidingWindow(imageSize: readonly number[], roi: readonly number[], overlap: number): SlidingWindowPlan {
  const r = resolveRoi(imageSize, roi);
  const padding = computePadding(imageSize, r);
  const interval = scanIntervals(padding.paddedSize, r, overlap);
  return { imageSize: [...imageSize] as Mut3, roi: r, padding, interval, starts: windowGrid(padding.paddedSize, r, interval) };
}

// ---------------------------------------------------------------------------------------------
// Importance (blending weight) maps

export type BlendMode = 'constant' | 'gaussian';

export interface ImportanceMapOptions {
  /** sigma = sigmaScale · roi per dimension (MONAI default 0.125). */
  sigmaScale?: number | readonly number[];
  /**
   * 'monai09' (default): MONAI 0.9.0's blurred delta at size//2, divided by its max (asymmetric for
   * even sizes). 'monai1x': MONAI >= 1.1's sampled symmetric Gaussian, not normalised.
   */
  variant?: 'monai09' | 'monai1x';
  /** Apply the clamp that sliding_window_inference applies before use (default true). */
  clamp?: boolean;
}

const f = Math.fround;

/**
 * MONAI 0.9.0 `gaussian_1d(sigma, truncated=4.0, approx="erf")`, emulating torch's float32 ops:
 * sigma and t = 0.70710678/sigma are float32 (the python-scalar division is reciprocal·scalar),
 * x ± 0.5 is exact, each product/erf/difference is rounded to float32, negatives clamped to 0.
 * Returns the kernel value at offset x (0 outside the truncated support).
 */
function gaussian1dErf(sigma32: number): (x: number) => number {
  const tail = Math.trunc(Math.max(sigma32 * 4.0, 0.5) + 0.5);
  const t = f(f(1 / sigma32) * f(0.70710678));
  return (x: number) => {
    if (Math.abs(x) > tail) return 0;
    const v = f(0.5 * f(f(erf(f(t * (x + 0.5)))) - f(erf(f(t * (x - 0.5))))));
    return v > 0 ? v : 0;
  };
}

function sigmas(roi: readonly number[], sigmaScale: number | readonly number[]): number[] {
  const s = typeof sigmaScale === 'number' ? [sigmaScale, sigmaScale, sigmaScale] : [...sigmaScale];
  if (s.length !== 3 || !s.every((x) => x > 0)) throw new RangeError(`sigmaScale must be positive (one or three values), got ${JSON.stringify(sigmaScale)}`);
  return roi.map((r, i) => r * s[i]!); // python double product
}

/**
 * The blending weight map for one window, flattened D,H,W (float32), computed as MONAI does and,
 * by default, already clamped as `sliding_window_inference` clamps it:
 * 0.9.0: clamp(w, min = max(min(w[w != 0]), 1e-3));  1.x: clamp(w, min = max(min(w), 1e-3)).
 */
export function importanceMap(roi: readonly number[], mode: BlendMode, opts: ImportanceMapOptions = {}): Float32Array {
  check3('roi', roi);
  if (!roi.every((x) => x > 0)) throw new RangeError(`roi must be positive, got ${JSON.stringify(roi)}`);
  const [D, H, W] = roi as Size3;
  const n = D * H * W;
  const variant = opts.variant ?? 'monai09';
  const map = new Float32Array(n);
  if (mode === 'constant') {
    map.fill(1); // min = 1 > 1e-3, so the clamp never changes it
    return map;
  }
  if (mode !== 'gaussian') throw new RangeError(`unknown blend mode '${String(mode)}'`);
  const sg = sigmas(roi, opts.sigmaScale ?? 0.125);
  if (variant === 'monai09') {
    // GaussianFilter on a delta at size//2: separable float32 convolutions along D, then H, then W.
    // Each output is a single product (all other taps hit zeros, which add exactly), so the map is
    // fl(fl(kD·kH)·kW) and dividing by the max (the centre voxel) is one float32 division.
    const axes = [D, H, W].map((size, i) => {
      const k = gaussian1dErf(f(sg[i]!));
      const c = Math.floor(size / 2);
      return Float32Array.from({ length: size }, (_, j) => k(j - c));
    }) as [Float32Array, Float32Array, Float32Array];
    const [kd, kh, kw] = axes;
    const peak = f(f(kd[Math.floor(D / 2)]! * kh[Math.floor(H / 2)]!) * kw[Math.floor(W / 2)]!);
    let p = 0;
    for (let i = 0; i < D; i++) {
      for (let j = 0; j < H; j++) {
        const dh = f(kd[i]! * kh[j]!);
        for (let k = 0; k < W; k++) map[p++] = f(f(dh * kw[k]!) / peak);
      }
    }
  } else if (variant === 'monai1x') {
    // x = arange(-(n-1)/2, (n-1)/2 + 1) in float32; exp(x² / (−2σ²)) in float32; outer products
    // built as ((g_D ⊗ g_H) ⊗ g_W) with one float32 rounding each.
    const axes = [D, H, W].map((size, i) => {
      const denom = f(-2 * sg[i]! ** 2);
      return Float32Array.from({ length: size }, (_, j) => {
        const x = f(-(size - 1) / 2 + j);
        return f(Math.exp(f(f(x * x) / denom)));
      });
    }) as [Float32Array, Float32Array, Float32Array];
    const [gd, gh, gw] = axes;
    let p = 0;
    for (let i = 0; i < D; i++) {
      for (let j = 0; j < H; j++) {
        const dh = f(gd[i]! * gh[j]!);
        for (let k = 0; k < W; k++) map[p++] = f(dh * gw[k]!);
      }
    }
  } else {
    throw new RangeError(`unknown importance map variant '${String(variant)}'`);
  }
  if (opts.clamp ?? true) clampImportanceMap(map, variant);
  return map;
}

/** The clamp sliding_window_inference applies to the map (in place; returns the map). */
export function clampImportanceMap(map: Float32Array, variant: 'monai09' | 'monai1x' = 'monai09'): Float32Array {
  let min = Infinity;
  for (let i = 0; i < map.length; i++) {
    const v = map[i]!;
    // 0.9.0 takes the smallest *non-zero* weight; 1.x the smallest weight, zeros included.
    if (v < min && (variant === 'monai1x' || v !== 0)) min = v;
  }
  const lo = f(Math.max(min, 1e-3)); // python float, cast to float32 by torch.clamp
  for (let i = 0; i < map.length; i++) if (map[i]! < lo) map[i] = lo;
  return map;
}

// ---------------------------------------------------------------------------------------------
// Window extraction and blending

/**
 * Copies one window of `roi` voxels starting at `start` (padded coordinates) out of an unpadded
 * C x D x H x W input into `out` (C x roi), writing `cval` where the window lies in the padding
 * (MONAI pads with mode "constant", cval 0). `out` may be a subarray of a batch buffer.
 */
export function extractWindow(input: Float32Array, channels: number, imageSize: Size3, padBefore: Size3, start: Size3, roi: Size3, out: Float32Array, cval = 0): Float32Array {
  const [D, H, W] = imageSize;
  const [rd, rh, rw] = roi;
  if (input.length < channels * D * H * W) throw new RangeError(`input has ${input.length} values, expected ${channels}x${D}x${H}x${W}`);
  if (out.length < channels * rd * rh * rw) throw new RangeError(`window buffer has ${out.length} values, expected ${channels * rd * rh * rw}`);
  // Range of window W positions that fall inside the image, so the inner loop is a plain copy.
  const w0 = start[2] - padBefore[2];
  const kLo = Math.max(0, -w0);
  const kHi = Math.min(rw, W - w0);
  let p = 0;
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < rd; i++) {
      const d = start[0] + i - padBefore[0];
      for (let j = 0; j < rh; j++, p += rw) {
        const h = start[1] + j - padBefore[1];
        if (d < 0 || d >= D || h < 0 || h >= H || kHi <= kLo) {
          out.fill(cval, p, p + rw);
          continue;
        }
        const src = ((c * D + d) * H + h) * W + w0;
        if (kLo > 0) out.fill(cval, p, p + kLo);
        out.set(input.subarray(src + kLo, src + kHi), p + kLo);
        if (kHi < rw) out.fill(cval, p + kHi, p + rw);
      }
    }
  }
  return out;
}

export interface AccumulatorOptions {
  channels: number;
  /** The unpadded image size (the size of the final output). */
  imageSize: readonly number[];
  /** ROI (window size) after fall-back. */
  roi: readonly number[];
  /** Padding added before each dimension (windows are placed in padded coordinates). */
  padBefore?: readonly number[];
  /** Caller-supplied output buffer, channels·D·H·W; zero-filled by the constructor. */
  output?: Float32Array;
  /** Caller-supplied count buffer, D·H·W; zero-filled by the constructor. */
  count?: Float32Array;
}

/**
 * Streams window predictions into one full-size output: output += fl(w·pred), count += w, then
 * finalize() divides. One count map serves all channels: MONAI's per-channel counts receive the
 * same additions in the same order, so they are identical.
 */
export class SlidingWindowAccumulator {
  readonly channels: number;
  readonly imageSize: Mut3;
  readonly roi: Mut3;
  readonly padBefore: Mut3;
  readonly output: Float32Array;
  readonly count: Float32Array;
  private finalized = false;
  private windows = 0;

  constructor(opts: AccumulatorOptions) {
    check3('imageSize', opts.imageSize);
    check3('roi', opts.roi);
    this.channels = opts.channels;
    this.imageSize = [...opts.imageSize] as Mut3;
    this.roi = [...opts.roi] as Mut3;
    this.padBefore = [...(opts.padBefore ?? [0, 0, 0])] as Mut3;
    const [D, H, W] = this.imageSize;
    const vox = D * H * W;
    if (!(Number.isInteger(this.channels) && this.channels > 0)) throw new RangeError(`channels must be a positive integer, got ${opts.channels}`);
    if (opts.output && opts.output.length !== this.channels * vox) throw new RangeError(`output buffer has ${opts.output.length} values, expected ${this.channels * vox}`);
    if (opts.count && opts.count.length !== vox) throw new RangeError(`count buffer has ${opts.count.length} values, expected ${vox}`);
    this.output = opts.output ?? new Float32Array(this.channels * vox);
    this.count = opts.count ?? new Float32Array(vox);
    this.output.fill(0);
    this.count.fill(0);
  }

  /** Convenience: an accumulator laid out for a plan. */
  static forPlan(plan: SlidingWindowPlan, channels: number, buffers: { output?: Float32Array; count?: Float32Array } = {}): SlidingWindowAccumulator {
    return new SlidingWindowAccumulator({ channels, imageSize: plan.imageSize, roi: plan.roi, padBefore: plan.padding.before, ...buffers });
  }

  get windowsAdded(): number {
    return this.windows;
  }

  /**
   * Adds one window's prediction (channels x roi, C order; may be a subarray of a batch output)
   * weighted by `weightMap` (roi). `windowStart` is in padded coordinates, as in plan.starts.
   */
  add(windowStart: readonly number[], prediction: Float32Array, weightMap: Float32Array): void {
    if (this.finalized) throw new Error('SlidingWindowAccumulator: add() after finalize()');
    const [D, H, W] = this.imageSize;
    const [rd, rh, rw] = this.roi;
    const rv = rd * rh * rw;
    if (prediction.length !== this.channels * rv) throw new RangeError(`prediction has ${prediction.length} values, expected ${this.channels}x${rd}x${rh}x${rw}`);
    if (weightMap.length !== rv) throw new RangeError(`weight map has ${weightMap.length} values, expected ${rd}x${rh}x${rw}`);
    const d0 = windowStart[0]! - this.padBefore[0];
    const h0 = windowStart[1]! - this.padBefore[1];
    const w0 = windowStart[2]! - this.padBefore[2];
    // Clip the window to the unpadded image; padded voxels are cropped away by MONAI anyway.
    const iLo = Math.max(0, -d0),
      iHi = Math.min(rd, D - d0);
    const jLo = Math.max(0, -h0),
      jHi = Math.min(rh, H - h0);
    const kLo = Math.max(0, -w0),
      kHi = Math.min(rw, W - w0);
    const out = this.output;
    const cnt = this.count;
    const vox = D * H * W;
    for (let i = iLo; i < iHi; i++) {
      for (let j = jLo; j < jHi; j++) {
        const wRow = (i * rh + j) * rw;
        const oRow = ((d0 + i) * H + (h0 + j)) * W + w0;
        for (let k = kLo; k < kHi; k++) cnt[oRow + k] = cnt[oRow + k]! + weightMap[wRow + k]!;
        for (let c = 0; c < this.channels; c++) {
          const pRow = c * rv + wRow;
          const oc = c * vox + oRow;
          // torch rounds the product to float32 before the in-place add: two roundings, not one.
          // (The add itself is exact in double and rounded once on store.)
          for (let k = kLo; k < kHi; k++) out[oc + k] = out[oc + k]! + f(weightMap[wRow + k]! * prediction[pRow + k]!);
        }
      }
    }
    this.windows++;
  }

  /** Divides output by count in place and returns the output (channels x D x H x W). */
  finalize(): Float32Array {
    if (this.finalized) return this.output;
    const vox = this.count.length;
    for (let c = 0; c < this.channels; c++) {
      const base = c * vox;
      for (let v = 0; v < vox; v++) this.output[base + v] = this.output[base + v]! / this.count[v]!;
    }
    this.finalized = true;
    return this.output;
  }
}
