import { sameKind, voxelCount, type AppliedOp, type Vec3, type Volume, type VoxelData } from '../volume.js';
import { matmul, mat4 } from '../../io/nifti/mat4.js';

/** np.flip on the listed spatial axes (all three when `axes` is empty, like MONAI's spatial_axis=None). */
export function flip<T extends VoxelData>(v: Volume<T>, axes: readonly number[] = [0, 1, 2]): Volume<T> {
  const ax = axes.length ? [...new Set(axes)] : [0, 1, 2];
  const [X, Y, Z] = v.shape;
  const n = voxelCount(v.shape);
  const out = sameKind(v.data, v.data.length);
  const fx = ax.includes(0),
    fy = ax.includes(1),
    fz = ax.includes(2);
  for (let c = 0; c < v.channels; c++) {
    let o = c * n;
    for (let a = 0; a < X; a++)
      for (let b = 0; b < Y; b++) {
        const row = c * n + ((fx ? X - 1 - a : a) * Y + (fy ? Y - 1 - b : b)) * Z;
        for (let k = 0; k < Z; k++) out[o++] = v.data[row + (fz ? Z - 1 - k : k)]!;
      }
  }
  // Voxel i along a flipped axis now holds what was at n-1-i.
  const m = mat4();
  for (const d of ax) {
    m[d * 5] = -1;
    m[d * 4 + 3] = v.shape[d]! - 1;
  }
  return { ...v, data: out, affine: matmul(v.affine, m), gridAffine: matmul(v.gridAffine, m), ops: [...v.ops, { kind: 'flip', axes: ax }] };
}

/**
 * np.rot90(k, axes=(a0, a1)) on spatial axes: rotates from the first axis towards the second.
 * out[..., i, j] = in[..., n0-1-j, i] for k = 1 (with a0, a1 the two axes).
 */
export function rotate90<T extends VoxelData>(v: Volume<T>, k: number, axes: [number, number] = [0, 1]): Volume<T> {
  const kk = ((k % 4) + 4) % 4;
  let cur: Volume<T> = v;
  for (let t = 0; t < kk; t++) cur = rot90Once(cur, axes);
  return { ...cur, ops: [...v.ops, { kind: 'rotate90', inShape: v.shape, k: kk, axes }] };
}

function rot90Once<T extends VoxelData>(v: Volume<T>, [a0, a1]: [number, number]): Volume<T> {
  const inShape = v.shape;
  const outShape = inShape.slice() as Vec3;
  outShape[a0] = inShape[a1]!;
  outShape[a1] = inShape[a0]!;
  const n = voxelCount(inShape);
  const out = sameKind(v.data, v.data.length);
  const inStride = [inShape[1] * inShape[2], inShape[2], 1];
  const idx: number[] = [0, 0, 0];
  for (let c = 0; c < v.channels; c++) {
    let o = c * n;
    for (let a = 0; a < outShape[0]; a++)
      for (let b = 0; b < outShape[1]; b++)
        for (let z = 0; z < outShape[2]; z++) {
          const q = [a, b, z];
          idx[0] = q[0]!;
          idx[1] = q[1]!;
          idx[2] = q[2]!;
          // np.rot90 k=1: flip along a1, then swap a0 and a1 => in[a0] = n0-1-out[a1]... derived for numpy's convention:
          // out = flip(in, a1).swapaxes(a0, a1), so out[.., i (a0), j (a1)] = in[.., j (a0), n1-1-i (a1)].
          idx[a0] = q[a1]!;
          idx[a1] = inShape[a1]! - 1 - q[a0]!;
          out[o++] = v.data[c * n + idx[0]! * inStride[0]! + idx[1]! * inStride[1]! + idx[2]!]!;
        }
  }
  // Affine of the rotated grid: output voxel q sits where input voxel idx(q) was.
  const m = mat4();
  m.fill(0);
  m[15] = 1;
  m[a0 * 4 + a1] = 1;
  m[a1 * 4 + a0] = -1;
  m[a1 * 4 + 3] = inShape[a1]! - 1;
  for (let d = 0; d < 3; d++) if (d !== a0 && d !== a1) m[d * 5] = 1;
  return { ...v, data: out, shape: outShape, affine: matmul(v.affine, m), gridAffine: matmul(v.gridAffine, m) };
}

/** A flip is its own inverse. */
export function invertFlip(v: Volume<VoxelData>, op: Extract<AppliedOp, { kind: 'flip' }>): Volume<VoxelData> {
  return flip(v, op.axes);
}

export function invertRotate90(v: Volume<VoxelData>, op: Extract<AppliedOp, { kind: 'rotate90' }>): Volume<VoxelData> {
  return rotate90(v, -op.k, op.axes);
}
