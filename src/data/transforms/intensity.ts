import type { Volume } from '../volume.js';

export interface ScaleRangeOptions {
  aMin: number;
  aMax: number;
  bMin?: number;
  bMax?: number;
  clip?: boolean;
}

/**
 * MONAI ScaleIntensityRange in float32, operation for operation: subtract, then a true division by
 * (aMax - aMin) (a multiply by the reciprocal changes the last bit of a quarter of the voxels), then
 * the b-range, then clip. A float64 division of float32 operands rounds correctly to float32.
 */
export function scaleIntensityRange(v: Volume<Float32Array>, o: ScaleRangeOptions): Volume<Float32Array> {
  const f = Math.fround;
  const bMin = o.bMin ?? 0,
    bMax = o.bMax ?? 1,
    clip = o.clip ?? true;
  if (o.aMax === o.aMin) throw new Error('scaleIntensityRange: aMin equals aMax');
  const aMin = f(o.aMin),
    den = f(o.aMax - o.aMin),
    bRange = f(bMax - bMin),
    b0 = f(bMin);
  const lo = Math.min(bMin, bMax),
    hi = Math.max(bMin, bMax);
  const src = v.data;
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    let x = f(f(src[i]! - aMin) / den);
    x = f(f(x * bRange) + b0);
    if (clip) x = x < lo ? lo : x > hi ? hi : x;
    out[i] = x;
  }
  return { ...v, data: out };
}

/** Float32 offset added to every voxel (MONAI ShiftIntensity). */
export function shiftIntensity(v: Volume<Float32Array>, offset: number): Volume<Float32Array> {
  const f = Math.fround;
  const off = f(offset);
  const out = new Float32Array(v.data.length);
  for (let i = 0; i < out.length; i++) out[i] = f(v.data[i]! + off);
  return { ...v, data: out };
}

/** MONAI 0.9.0 ScaleIntensity with a factor: x * (1 + factor), the multiplier rounded to float32 first (numpy's scalar casting). */
export function scaleIntensityByFactor(v: Volume<Float32Array>, factor: number): Volume<Float32Array> {
  const f = Math.fround;
  const m = f(1 + factor);
  const out = new Float32Array(v.data.length);
  for (let i = 0; i < out.length; i++) out[i] = f(v.data[i]! * m);
  return { ...v, data: out };
}

/** Adds a noise field (MONAI 0.9.0 RandGaussianNoise casts it to the image's float32 first). */
export function addNoise(v: Volume<Float32Array>, noise: Float32Array): Volume<Float32Array> {
  if (noise.length !== v.data.length) throw new Error(`addNoise: ${noise.length} noise values for ${v.data.length} voxels`);
  const f = Math.fround;
  const out = new Float32Array(v.data.length);
  for (let i = 0; i < out.length; i++) out[i] = f(v.data[i]! + noise[i]!);
  return { ...v, data: out };
}

/**
 * MONAI 0.9.0 AdjustContrast, in float32 as numpy computes it on a float32 array:
 * ((x - min) / float32(range + 1e-7)) ** gamma * range + min, with min and range over the whole
 * volume (all channels). The epsilon only divides: on a tiny range the output maximum falls a little
 * short of the input's, as in MONAI. numpy casts the exponent to float32 too.
 */
export function adjustContrast(v: Volume<Float32Array>, gamma: number): Volume<Float32Array> {
  const f = Math.fround;
  const src = v.data;
  let lo = Infinity,
    hi = -Infinity;
  for (let i = 0; i < src.length; i++) {
    const x = src[i]!;
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  const range = f(hi - lo);
  const den = f(range + 1e-7);
  const g = f(gamma);
  const out = new Float32Array(src.length);
  // Stores round to float32; each step is rounded as numpy's float32 ufuncs round it.
  for (let i = 0; i < src.length; i++) out[i] = f(f(Math.pow(f(f(src[i]! - lo) / den), g)) * range) + lo;
  return { ...v, data: out };
}

/** Sorted copy of the values selected by `mask` (all when absent), for percentiles. */
function sortedValues(data: Float32Array, mask?: (i: number) => boolean): Float32Array {
  let n = 0;
  const tmp = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) if (!mask || mask(i)) tmp[n++] = data[i]!;
  return tmp.subarray(0, n).sort();
}

/** numpy's default ("linear") percentile of sorted values, q in [0, 100]. */
export function percentileSorted(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (q / 100) * (sorted.length - 1);
  const lo = Math.floor(pos),
    hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export interface ZScoreOptions {
  /** Statistics from voxels != 0 only, and only those are changed (nnU-Net's non-zero mask for MRI). */
  nonzero?: boolean;
  /** Fixed statistics (nnU-Net CT: foreground mean/std of the whole training set). */
  mean?: number;
  std?: number;
  /** Clip to these values before normalising (nnU-Net CT: foreground 0.5/99.5 percentiles). */
  clipMin?: number;
  clipMax?: number;
}

/**
 * Z-score normalisation, per channel. Without fixed statistics this is nnU-Net's MRI scheme (per
 * image mean/std); with them and the clip range it is nnU-Net's CT scheme.
 */
export function zScore(v: Volume<Float32Array>, o: ZScoreOptions = {}): Volume<Float32Array> {
  const n = v.data.length / v.channels;
  const out = new Float32Array(v.data.length);
  for (let c = 0; c < v.channels; c++) {
    const src = v.data.subarray(c * n, (c + 1) * n);
    const dst = out.subarray(c * n, (c + 1) * n);
    const lo = o.clipMin ?? -Infinity,
      hi = o.clipMax ?? Infinity;
    const val = (i: number) => {
      const x = src[i]!;
      return x < lo ? lo : x > hi ? hi : x;
    };
    let mean = o.mean,
      std = o.std;
    if (mean === undefined || std === undefined) {
      let s = 0,
        s2 = 0,
        k = 0;
      for (let i = 0; i < n; i++) {
        if (o.nonzero && src[i] === 0) continue;
        const x = val(i);
        s += x;
        s2 += x * x;
        k++;
      }
      mean ??= k ? s / k : 0;
      std ??= k ? Math.sqrt(Math.max(0, s2 / k - (s / k) ** 2)) : 1;
    }
    const scale = 1 / Math.max(std, 1e-8);
    for (let i = 0; i < n; i++) dst[i] = o.nonzero && src[i] === 0 ? 0 : (val(i) - mean) * scale;
  }
  return { ...v, data: out };
}

/** Clips each channel to its own [lower, upper] percentiles (of non-zero voxels if asked). */
export function clipPercentiles(v: Volume<Float32Array>, lower: number, upper: number, nonzero = false): Volume<Float32Array> {
  const n = v.data.length / v.channels;
  const out = new Float32Array(v.data.length);
  for (let c = 0; c < v.channels; c++) {
    const src = v.data.subarray(c * n, (c + 1) * n);
    const sorted = sortedValues(src, nonzero ? (i) => src[i] !== 0 : undefined);
    const lo = percentileSorted(sorted, lower),
      hi = percentileSorted(sorted, upper);
    for (let i = 0; i < n; i++) {
      const x = src[i]!;
      out[c * n + i] = x < lo ? lo : x > hi ? hi : x;
    }
  }
  return { ...v, data: out };
}
