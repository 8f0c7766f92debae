import { block3, fround4, mat4, matmul, nearestOrthogonal, toRows, type Mat4 } from '../../io/nifti/mat4.js';
import { sameKind, voxelCount, type AppliedOp, type Vec3, type Volume, type VoxelData } from '../volume.js';

/** One row per input axis: [world axis it maps to, +1 or -1]. */
export type Ornt = [number, number][];

const LABELS: [string, string][] = [
  ['L', 'R'],
  ['P', 'A'],
  ['I', 'S'],
];

/**
 * nibabel io_orientation: the world axis each voxel axis points along. Columns are normalised, the
 * nearest orthogonal matrix is taken, then input axes 0, 1, 2 greedily claim their largest world
 * component (a claimed world axis is removed), which is what decides near-45-degree cases.
 */
export function ioOrientation(affine: Mat4): Ornt {
  const M = block3(affine);
  const norms = [0, 1, 2].map((c) => Math.hypot(M[0]![c]!, M[1]![c]!, M[2]![c]!) || 1);
  const R = nearestOrthogonal(M.map((row) => row.map((v, c) => v / norms[c]!)));
  const out: Ornt = [];
  for (let c = 0; c < 3; c++) {
    let best = 0;
    for (let r = 1; r < 3; r++) if (Math.abs(R[r]![c]!) > Math.abs(R[best]![c]!)) best = r;
    if (R[best]![c] === 0) throw new Error('affine has a degenerate axis; cannot determine orientation');
    out.push([best, R[best]![c]! < 0 ? -1 : 1]);
    for (let k = 0; k < 3; k++) R[best]![k] = 0;
  }
  return out;
}

export function orntToAxcodes(ornt: Ornt): string {
  return ornt.map(([ax, f]) => LABELS[ax]![f > 0 ? 1 : 0]).join('');
}

export function axcodesToOrnt(axcodes: string): Ornt {
  const codes = axcodes.toUpperCase();
  if (codes.length !== 3) throw new Error(`axcodes must have 3 letters, got '${axcodes}'`);
  const out: Ornt = [];
  for (const ch of codes) {
    const ax = LABELS.findIndex((p) => p.includes(ch));
    if (ax < 0) throw new Error(`axcode '${ch}' is not one of L R P A I S`);
    out.push([ax, LABELS[ax]![1] === ch ? 1 : -1]);
  }
  if (new Set(out.map((o) => o[0])).size !== 3) throw new Error(`axcodes '${axcodes}' name a direction twice`);
  return out;
}

/** nibabel ornt_transform: how to go from orientation `start` to `end`. */
export function orntTransform(start: Ornt, end: Ornt): Ornt {
  const result: Ornt = [];
  end.forEach(([endOut, endFlip], endIn) => {
    const startIn = start.findIndex(([startOut]) => startOut === endOut);
    if (startIn < 0) throw new Error('orientations do not share axes');
    result[startIn] = [endIn, start[startIn]![1] === endFlip ? 1 : -1];
  });
  return result;
}

/** nibabel inv_ornt_aff: voxel-space affine from the transformed array back to the original. */
export function invOrntAff(ornt: Ornt, shape: readonly number[]): Mat4 {
  const m = new Float64Array(16);
  for (let k = 0; k < 3; k++) {
    const [ax, flip] = ornt[k]!;
    const center = -(shape[k]! - 1) / 2;
    m[k * 4 + ax] = flip;
    m[k * 4 + 3] = flip * center - center;
  }
  m[15] = 1;
  return m;
}

/** A pure copy: flip input axes, then transpose (output axis ornt[i][0] takes input axis i). */
export function reorientArray<T extends VoxelData>(data: T, channels: number, shape: Vec3, ornt: Ornt): { data: T; shape: Vec3 } {
  const outShape: Vec3 = [0, 0, 0];
  ornt.forEach(([ax], i) => {
    outShape[ax] = shape[i]!;
  });
  const n = voxelCount(shape);
  const out = sameKind(data, data.length);
  const [X, Y, Z] = shape;
  // Input strides, then which input stride each output axis walks along (negative when flipped).
  const inStride = [Y * Z, Z, 1];
  const stride: number[] = [0, 0, 0];
  let origin = 0;
  ornt.forEach(([ax, flip], i) => {
    stride[ax] = flip * inStride[i]!;
    if (flip < 0) origin += (shape[i]! - 1) * inStride[i]!;
  });
  const [A, B, C] = outShape;
  for (let c = 0; c < channels; c++) {
    const base = c * n;
    let o = base;
    for (let a = 0; a < A; a++) {
      const pa = base + origin + a * stride[0]!;
      for (let b = 0; b < B; b++) {
        let p = pa + b * stride[1]!;
        const s2 = stride[2]!;
        for (let k = 0; k < C; k++, p += s2) out[o++] = data[p]!;
      }
    }
  }
  void X;
  return { data: out, shape: outShape };
}

/**
 * MONAI 0.9.0 Orientationd: flip/transpose the array so its axes follow `axcodes` (no
 * interpolation); every voxel keeps its world position and the new affine is rounded to float32.
 */
export function orientation<T extends VoxelData>(v: Volume<T>, axcodes = 'RAS'): Volume<T> {
  const ornt = orntTransform(ioOrientation(v.affine), axcodesToOrnt(axcodes));
  const inv = invOrntAff(ornt, v.shape);
  const affine = fround4(matmul(v.affine, inv));
  const gridAffine = v.gridAffine === v.affine ? affine : fround4(matmul(v.gridAffine, inv));
  const { data, shape } = reorientArray(v.data, v.channels, v.shape, ornt);
  return {
    ...v,
    data,
    shape,
    affine,
    gridAffine,
    ops: [...v.ops, { kind: 'orientation', inShape: v.shape, inAffine: toRows(v.affine), outAffine: toRows(affine), axcodes: axcodes.toUpperCase(), ornt }],
  };
}

export function axcodesOf(affine: Mat4): string {
  return orntToAxcodes(ioOrientation(affine));
}

/** Reorients back to the recorded input orientation (exact: a permutation and flips). */
export function invertOrientation(v: Volume<VoxelData>, op: Extract<AppliedOp, { kind: 'orientation' }>): Volume<VoxelData> {
  return orientation({ ...v, affine: mat4(op.outAffine) }, axcodesOf(mat4(op.inAffine)));
}
