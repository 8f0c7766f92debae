import type { Rng } from '../../engine/rng.js';
import { gammaRange, type RandomStepSpec } from '../step-schema.js';
import type { Sample } from '../pipeline.js';
import { sameKind, voxelCount, type Vec3, type Volume, type VoxelData } from '../volume.js';
import { crop, spatialPad } from './croppad.js';
import { addNoise, adjustContrast, scaleIntensityByFactor, shiftIntensity } from './intensity.js';
import { flip, rotate90 } from './flip.js';

/**
 * Flat C-order indices of crop-centre candidates (MONAI map_binary_to_indices): foreground = any
 * label channel != 0 (channel 0 dropped for one-hot labels); background = label 0 and any image
 * channel > imageThreshold.
 */
export function posNegIndices(image: Volume, label: Volume, imageThreshold: number): { fg: Int32Array; bg: Int32Array } {
  const n = voxelCount(label.shape);
  const fg: number[] = [],
    bg: number[] = [];
  const c0 = label.channels > 1 ? 1 : 0;
  for (let i = 0; i < n; i++) {
    let isFg = false;
    for (let c = c0; c < label.channels && !isFg; c++) if (label.data[c * n + i] !== 0) isFg = true;
    if (isFg) {
      fg.push(i);
      continue;
    }
    for (let c = 0; c < image.channels; c++)
      if (image.data[c * n + i]! > imageThreshold) {
        bg.push(i);
        break;
      }
  }
  return { fg: Int32Array.from(fg), bg: Int32Array.from(bg) };
}

/** MONAI correct_crop_centers: keeps a crop of `size` inside the volume. */
export function correctCenter(center: Vec3, size: Vec3, shape: Vec3): Vec3 {
  return center.map((c, d) => {
    const lo = Math.floor(size[d]! / 2);
    let hi = Math.trunc(shape[d]! + 1 - size[d]! / 2);
    if (lo === hi) hi += 1;
    return Math.min(Math.max(c, lo), hi - 1);
  }) as Vec3;
}

export function unravel(idx: number, shape: Vec3): Vec3 {
  const k = idx % shape[2];
  const j = Math.floor(idx / shape[2]) % shape[1];
  return [Math.floor(idx / (shape[1] * shape[2])), j, k];
}

/** One crop centre: fg with probability pos/(pos+neg) (0 or 1 when a list is empty), uniform within it. */
export function sampleCropCenter(fg: Int32Array, bg: Int32Array, posRatio: number, size: Vec3, shape: Vec3, rng: Rng): Vec3 {
  if (fg.length === 0 && bg.length === 0) throw new Error('no foreground and no background voxel to centre a crop on');
  const ratio = fg.length === 0 ? 0 : bg.length === 0 ? 1 : posRatio;
  const list = rng.random() < ratio ? fg : bg;
  return correctCenter(unravel(list[rng.int(list.length)]!, shape), size, shape);
}

/**
 * MONAI RandCropByPosNegLabeld. Unlike MONAI 0.9.0 (which raises when the volume is smaller than
 * the crop, e.g. on every hippocampus case at 96³), a smaller volume is zero-padded symmetrically
 * to the crop size first, unless `allowSmaller` is false, which keeps MONAI's error.
 */
export function randCropByPosNegLabel(s: Sample, spec: Extract<RandomStepSpec, { op: 'randCropByPosNegLabel' }>, rng: Rng): Sample[] {
  if (!s.label) throw new Error('randCropByPosNegLabel needs a label');
  const size = spec.spatialSize;
  let image = s.image,
    label = s.label;
  if (size.some((d, k) => d > image.shape[k]!)) {
    if (spec.allowSmaller === false) throw new Error('The size of the proposed random crop ROI is larger than the image size.');
    image = spatialPad(image, size);
    label = spatialPad(label, size);
  }
  const { fg, bg } = posNegIndices(image, label, spec.imageThreshold);
  const ratio = spec.pos / (spec.pos + spec.neg);
  const out: Sample[] = [];
  for (let n = 0; n < spec.numSamples; n++) {
    const c = sampleCropCenter(fg, bg, ratio, size, image.shape, rng);
    const start = c.map((x, d) => Math.max(x - Math.floor(size[d]! / 2), 0)) as Vec3;
    const end = start.map((x, d) => x + size[d]!) as Vec3;
    out.push({ ...s, image: crop(image, start, end), label: crop(label, start, end) });
  }
  return out;
}

/** MONAI create_rotate(3-D) @ create_scale, built in float32 as torch does. */
export function affineMatrix(rotate: Vec3, scale: Vec3): Float32Array {
  const mm = (a: Float32Array, b: Float32Array) => {
    const o = new Float32Array(16);
    for (let r = 0; r < 4; r++)
      for (let c = 0; c < 4; c++) {
        let s = 0;
        for (let k = 0; k < 4; k++) s = Math.fround(s + Math.fround(a[r * 4 + k]! * b[k * 4 + c]!));
        o[r * 4 + c] = s;
      }
    return o;
  };
  const [cx, sx, cy, sy, cz, sz] = [Math.cos(rotate[0]), Math.sin(rotate[0]), Math.cos(rotate[1]), Math.sin(rotate[1]), Math.cos(rotate[2]), Math.sin(rotate[2])];
  const Rx = Float32Array.from([1, 0, 0, 0, 0, cx, -sx, 0, 0, sx, cx, 0, 0, 0, 0, 1]);
  const Ry = Float32Array.from([cy, 0, sy, 0, 0, 1, 0, 0, -sy, 0, cy, 0, 0, 0, 0, 1]);
  const Rz = Float32Array.from([cz, -sz, 0, 0, sz, cz, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
  const S = Float32Array.from([scale[0], 0, 0, 0, 0, scale[1], 0, 0, 0, 0, scale[2], 0, 0, 0, 0, 1]);
  return mm(mm(mm(Rx, Ry), Rz), S);
}

/** PyTorch reflect_coordinates(align_corners=True) then clip: mirror about voxel centres 0 and n-1. */
function reflect(x: number, n: number): number {
  if (n <= 1) return 0;
  const span = n - 1;
  const a = Math.abs(x);
  const extra = a % span;
  const flips = Math.floor(a / span);
  const r = flips % 2 === 0 ? extra : span - extra;
  return Math.min(Math.max(r, 0), span);
}

/**
 * MONAI RandAffine's resampling given its matrix: output voxel j has centred coordinate
 * q = j - (S-1)/2; p = A·q (float32), sampled at p + (n-1)/2 in the input (rotation and scaling
 * about the centre, pull mapping), reflection padding, bilinear or nearest (half away from zero).
 */
export function affineResample<T extends VoxelData>(v: Volume<T>, matrix: Float32Array, outSize: Vec3, mode: 'bilinear' | 'nearest'): Volume<VoxelData> {
  const f = Math.fround;
  const [X, Y, Z] = v.shape;
  const nIn = voxelCount(v.shape),
    nOut = voxelCount(outSize);
  const out: VoxelData = mode === 'nearest' ? sameKind(v.data, v.channels * nOut) : new Float32Array(v.channels * nOut);
  const half = outSize.map((s) => f((s - 1) / 2));
  const cin = [(X - 1) / 2, (Y - 1) / 2, (Z - 1) / 2];
  const m = matrix;
  let o = 0;
  const p = [0, 0, 0];
  for (let a = 0; a < outSize[0]; a++) {
    const qa = f(a - half[0]!);
    for (let b = 0; b < outSize[1]; b++) {
      const qb = f(b - half[1]!);
      for (let c = 0; c < outSize[2]; c++, o++) {
        const qc = f(c - half[2]!);
        // torch's float32 matmul accumulates with fused multiply-adds; a float32 x float32 product
        // is exact in float64, so f(a*b + acc) is that FMA (this makes the result bit-exact).
        for (let r = 0; r < 3; r++) {
          let acc = f(m[r * 4]! * qa);
          acc = f(m[r * 4 + 1]! * qb + acc);
          acc = f(m[r * 4 + 2]! * qc + acc);
          p[r] = f(acc + m[r * 4 + 3]!);
        }
        const ci = reflect(p[0]! + cin[0]!, X),
          cj = reflect(p[1]! + cin[1]!, Y),
          ck = reflect(p[2]! + cin[2]!, Z);
        if (mode === 'nearest') {
          const idx = (Math.round(ci) * Y + Math.round(cj)) * Z + Math.round(ck);
          for (let ch = 0; ch < v.channels; ch++) out[ch * nOut + o] = v.data[ch * nIn + idx]!;
          continue;
        }
        const i0 = Math.floor(ci),
          j0 = Math.floor(cj),
          k0 = Math.floor(ck);
        const wk0 = k0 + 1 - ck,
          wk1 = ck - k0,
          wj0 = j0 + 1 - cj,
          wj1 = cj - j0,
          wi0 = i0 + 1 - ci,
          wi1 = ci - i0;
        const inI = i0 + 1 < X,
          inJ = j0 + 1 < Y,
          inK = k0 + 1 < Z;
        for (let ch = 0; ch < v.channels; ch++) {
          const d = ch * nIn + (i0 * Y + j0) * Z + k0;
          let s = v.data[d]! * (wk0 * wj0 * wi0);
          if (inK) s += v.data[d + 1]! * (wk1 * wj0 * wi0);
          if (inJ) s += v.data[d + Z]! * (wk0 * wj1 * wi0);
          if (inJ && inK) s += v.data[d + Z + 1]! * (wk1 * wj1 * wi0);
          if (inI) {
            const e = d + Y * Z;
            s += v.data[e]! * (wk0 * wj0 * wi1);
            if (inK) s += v.data[e + 1]! * (wk1 * wj0 * wi1);
            if (inJ) s += v.data[e + Z]! * (wk0 * wj1 * wi1);
            if (inJ && inK) s += v.data[e + Z + 1]! * (wk1 * wj1 * wi1);
          }
          out[ch * nOut + o] = s;
        }
      }
    }
  }
  return { ...v, data: out, shape: outSize };
}

/** Draws MONAI RandAffine's parameters: rotation U(-r, r) and scale 1 + U(-s, s) per axis. */
export function drawAffineParams(spec: Extract<RandomStepSpec, { op: 'randAffine' }>, rng: Rng): { rotate: Vec3; scale: Vec3 } {
  const rotate = spec.rotateRange.map((r) => rng.uniform(-r, r)) as Vec3;
  const scale = spec.scaleRange.map((s) => 1 + rng.uniform(-s, s)) as Vec3;
  return { rotate, scale };
}

export { gammaRange };

/** Applies one random step to a sample (randCropByPosNegLabel returns several samples). */
export function applyRandomStep(s: Sample, spec: RandomStepSpec, rng: Rng): Sample[] {
  switch (spec.op) {
    case 'randCropByPosNegLabel':
      return randCropByPosNegLabel(s, spec, rng);
    case 'randShiftIntensity': {
      if (!(rng.random() < spec.prob)) return [s];
      return [{ ...s, image: shiftIntensity(s.image, rng.uniform(-spec.offsets, spec.offsets)) }];
    }
    case 'randScaleIntensity': {
      // MONAI: the probability first, the factor only when applied; image only.
      if (!(rng.random() < spec.prob)) return [s];
      const [lo, hi] = typeof spec.factors === 'number' ? [-Math.abs(spec.factors), Math.abs(spec.factors)] : [Math.min(...spec.factors), Math.max(...spec.factors)];
      return [{ ...s, image: scaleIntensityByFactor(s.image, rng.uniform(lo, hi)) }];
    }
    case 'randGaussianNoise': {
      // MONAI: the probability, then sigma ~ U(0, std), then the field; every channel gets its own noise.
      if (!(rng.random() < spec.prob)) return [s];
      const sigma = rng.uniform(0, spec.std);
      return [{ ...s, image: addNoise(s.image, rng.normalArray(s.image.data.length, spec.mean ?? 0, sigma)) }];
    }
    case 'randAffine': {
      if (!(rng.random() < spec.prob)) return [s];
      const { rotate, scale } = drawAffineParams(spec, rng);
      const m = affineMatrix(rotate, scale);
      return [
        {
          ...s,
          image: affineResample(s.image, m, s.image.shape, 'bilinear') as Volume<Float32Array>,
          label: s.label && affineResample(s.label, m, s.label.shape, 'nearest'),
        },
      ];
    }
    case 'randFlip': {
      if (!(rng.random() < spec.prob)) return [s];
      const axes = spec.axes ?? [0, 1, 2];
      return [{ ...s, image: flip(s.image, axes), label: s.label && flip(s.label, axes) }];
    }
    case 'randRotate90': {
      // The dictionary version draws k first, then the probability (SEMANTICS §9.5).
      const k = rng.int(spec.maxK ?? 3) + 1;
      if (!(rng.random() < spec.prob)) return [s];
      const axes = spec.axes ?? [0, 1];
      return [{ ...s, image: rotate90(s.image, k, axes), label: s.label && rotate90(s.label, k, axes) }];
    }
    case 'randGamma': {
      // MONAI RandAdjustContrastd: the probability first, gamma ~ U(range) only when applied; image only.
      if (!(rng.random() < spec.prob)) return [s];
      const [lo, hi] = gammaRange(spec.gamma);
      return [{ ...s, image: adjustContrast(s.image, rng.uniform(lo, hi)) }];
    }
  }
}

/** Runs a random tail on one sample; every step after a multi-sample crop runs per sample. */
export function runRandomSteps(s: Sample, steps: readonly RandomStepSpec[], rng: Rng): Sample[] {
  let samples = [s];
  for (const step of steps) samples = samples.flatMap((x) => applyRandomStep(x, step, rng));
  return samples;
}
