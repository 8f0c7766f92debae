import { matmul, mat4, type Mat4 } from '../../io/nifti/mat4.js';
import { sameKind, voxelCount, type AppliedOp, type Vec3, type Volume, type VoxelData } from '../volume.js';

function translate(affine: Mat4, by: Vec3): Mat4 {
  const t = mat4();
  t[3] = by[0];
  t[7] = by[1];
  t[11] = by[2];
  return matmul(affine, t);
}

/** Copies the box [start, end) of every channel (the box must lie inside the volume). */
export function cropArray<T extends VoxelData>(data: T, channels: number, shape: Vec3, start: Vec3, end: Vec3): T {
  const os: Vec3 = [end[0] - start[0], end[1] - start[1], end[2] - start[2]];
  const n = voxelCount(shape),
    m = voxelCount(os);
  const out = sameKind(data, channels * m);
  const [, Y, Z] = shape;
  let o = 0;
  for (let c = 0; c < channels; c++) {
    for (let a = start[0]; a < end[0]; a++)
      for (let b = start[1]; b < end[1]; b++) {
        const p = c * n + (a * Y + b) * Z + start[2];
        out.set(data.subarray(p, p + os[2]) as never, o);
        o += os[2];
      }
  }
  return out;
}

/** Places the array at `before` inside a zero-filled array of `outShape`. */
export function padArray<T extends VoxelData>(data: T, channels: number, shape: Vec3, before: Vec3, outShape: Vec3, value = 0): T {
  const n = voxelCount(shape),
    m = voxelCount(outShape);
  const out = sameKind(data, channels * m);
  if (value !== 0) out.fill(value as never);
  const [, Y, Z] = outShape;
  for (let c = 0; c < channels; c++) {
    let p = c * n;
    for (let a = 0; a < shape[0]; a++)
      for (let b = 0; b < shape[1]; b++) {
        const o = c * m + ((a + before[0]) * Y + (b + before[1])) * Z + before[2];
        out.set(data.subarray(p, p + shape[2]) as never, o);
        p += shape[2];
      }
  }
  return out;
}

/**
 * MONAI generate_spatial_bounding_box with select_fn x > 0 over all channels and margin 0: the
 * half-open box of voxels where any channel is positive; [0,0,0]-[0,0,0] when there are none.
 */
export function foregroundBox(v: Volume, threshold = 0): { start: Vec3; end: Vec3 } {
  const [X, Y, Z] = v.shape;
  const n = X * Y * Z;
  const lo: Vec3 = [X, Y, Z],
    hi: Vec3 = [-1, -1, -1];
  for (let c = 0; c < v.channels; c++) {
    let p = c * n;
    for (let a = 0; a < X; a++)
      for (let b = 0; b < Y; b++)
        for (let k = 0; k < Z; k++, p++) {
          if (v.data[p]! > threshold) {
            if (a < lo[0]) lo[0] = a;
            if (a > hi[0]) hi[0] = a;
            if (b < lo[1]) lo[1] = b;
            if (b > hi[1]) hi[1] = b;
            if (k < lo[2]) lo[2] = k;
            if (k > hi[2]) hi[2] = k;
          }
        }
  }
  if (hi[0] < 0) return { start: [0, 0, 0], end: [0, 0, 0] };
  return { start: lo, end: [hi[0] + 1, hi[1] + 1, hi[2] + 1] };
}

/** Spatial crop to [start, end); records the box so `invert` can zero-pad back. MONAI keeps `affine`. */
export function crop<T extends VoxelData>(v: Volume<T>, start: Vec3, end: Vec3): Volume<T> {
  for (let d = 0; d < 3; d++) {
    if (!(start[d]! >= 0 && end[d]! <= v.shape[d]! && start[d]! <= end[d]!)) {
      throw new Error(`crop box [${start}]-[${end}] is outside a ${v.shape.join('x')} volume`);
    }
  }
  return {
    ...v,
    data: cropArray(v.data, v.channels, v.shape, start, end),
    shape: [end[0] - start[0], end[1] - start[1], end[2] - start[2]],
    gridAffine: translate(v.gridAffine, start),
    ops: [...v.ops, { kind: 'crop', inShape: v.shape, start, end }],
  };
}

export type PadMethod = 'symmetric' | 'end';

/** Where MONAI SpatialPad puts the padding: w // 2 before (symmetric), the rest after; never crops. */
export function padAmounts(shape: Vec3, size: readonly number[], method: PadMethod = 'symmetric'): { before: Vec3; after: Vec3 } {
  const before: Vec3 = [0, 0, 0],
    after: Vec3 = [0, 0, 0];
  for (let d = 0; d < 3; d++) {
    const target = size[d]! > 0 ? size[d]! : shape[d]!;
    const w = Math.max(target - shape[d]!, 0);
    before[d] = method === 'symmetric' ? Math.floor(w / 2) : 0;
    after[d] = w - before[d]!;
  }
  return { before, after };
}

/** MONAI SpatialPadd (constant 0): pads up to `size` (non-positive entries keep the size). */
export function spatialPad<T extends VoxelData>(v: Volume<T>, size: readonly number[], method: PadMethod = 'symmetric'): Volume<T> {
  const { before, after } = padAmounts(v.shape, size, method);
  if (before.every((b) => b === 0) && after.every((a) => a === 0)) return v;
  const shape: Vec3 = [v.shape[0] + before[0] + after[0], v.shape[1] + before[1] + after[1], v.shape[2] + before[2] + after[2]];
  return {
    ...v,
    data: padArray(v.data, v.channels, v.shape, before, shape),
    shape,
    gridAffine: translate(v.gridAffine, [-before[0], -before[1], -before[2]]),
    ops: [...v.ops, { kind: 'pad', inShape: v.shape, before, after }],
  };
}

/** MONAI CropForegroundd(source_key=image): one box from `source`, applied to every volume given. */
export function cropForeground<T extends VoxelData>(source: Volume, targets: Volume<T>[], threshold = 0): { box: { start: Vec3; end: Vec3 }; out: Volume<T>[] } {
  const box = foregroundBox(source, threshold);
  return { box, out: targets.map((t) => crop(t, box.start, box.end)) };
}

/** Undoes a crop as MONAI's inverse does: zero outside the box (probabilities there argmax to class 0). */
export function invertCrop(v: Volume<VoxelData>, op: Extract<AppliedOp, { kind: 'crop' }>): Volume<VoxelData> {
  return { ...v, data: padArray(v.data, v.channels, v.shape, op.start, op.inShape), shape: op.inShape };
}

/** Undoes a pad by cropping the original box back out. */
export function invertPad(v: Volume<VoxelData>, op: Extract<AppliedOp, { kind: 'pad' }>): Volume<VoxelData> {
  const end: Vec3 = [op.before[0] + op.inShape[0], op.before[1] + op.inShape[1], op.before[2] + op.inShape[2]];
  return crop(v, op.before, end);
}
