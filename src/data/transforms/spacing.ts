import { apply, block3, columnNorms, fround4, gramSchmidt, inverse, mat4, solve, toRows, type Mat4 } from '../../io/nifti/mat4.js';
import type { AppliedOp, Vec3, Volume, VoxelData } from '../volume.js';
import { resampleVoxels, type InterpMode } from './resample.js';

/** MONAI's AFFINE_TOL: affines this close count as equal and resampling is skipped. */
const AFFINE_TOL = 1e-3;

/** numpy's np.round: halves go to the even neighbour (12.5 -> 12, 28.500000000000004 -> 29). */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function allclose(a: ArrayLike<number>, b: ArrayLike<number>, atol: number, rtol = 1e-5): boolean {
  for (let i = 0; i < a.length; i++) if (!(Math.abs(a[i]! - b[i]!) <= atol + rtol * Math.abs(b[i]!))) return false;
  return true;
}

/** MONAI zoom_affine(diagonal=False): keep each axis's direction (Gram-Schmidt), set its length to |pixdim|. */
export function zoomAffine(affine: Mat4, pixdim: Vec3): Mat4 {
  const Q = gramSchmidt(block3(affine));
  const out = mat4();
  for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) out[r * 4 + c] = Q[r]![c]! * Math.abs(pixdim[c]!);
  return out;
}

/**
 * MONAI compute_shape_offset: the extent of the input corners in the output grid decides the shape
 * (rounded half to even, computed in float64 as MONAI writes it), and the first corner that is
 * minimal in output coordinates (voxel 0 for shear-free affines) becomes the output origin.
 */
export function computeShapeOffset(shape: Vec3, inAffine: Mat4, outAffine: Mat4): { shape: Vec3; offset: Vec3; extent: Vec3 } {
  const corners: Vec3[] = [];
  for (const a of [0, shape[0] - 1]) for (const b of [0, shape[1] - 1]) for (const c of [0, shape[2] - 1]) corners.push([a, b, c]);
  const world = corners.map((p) => apply(inAffine, p));
  const inv = inverse(outAffine);
  const outC = world.map((w) => apply(inv, w));
  const extent = [0, 1, 2].map((d) => Math.max(...outC.map((p) => p[d]!)) - Math.min(...outC.map((p) => p[d]!)) + 1) as Vec3;
  const outShape = extent.map(roundHalfEven) as Vec3;
  const lin = (p: Vec3) => [0, 1, 2].map((r) => inv[r * 4]! * p[0] + inv[r * 4 + 1]! * p[1] + inv[r * 4 + 2]! * p[2]);
  const mapped = world.map(lin);
  let k = 0;
  for (let i = 0; i < world.length; i++) {
    const min = [0, 1, 2].map((d) => Math.min(...mapped.map((m) => m[d]! - mapped[i]![d]!)));
    if (min.every((v) => Math.abs(v) <= 1e-8)) {
      k = i;
      break;
    }
  }
  return { shape: outShape, offset: world[k]!, extent };
}

export interface SpacingPlan {
  outShape: Vec3;
  dst: Mat4;
  /** Output voxel -> input voxel, as MONAI computes it (float32 solve of float32 affines). */
  xform: Mat4;
  resample: boolean;
  extent: Vec3;
}

/** Everything Spacingd decides before touching data. `outShape` forces the size (used by the inverse). */
export function planSpacing(shape: Vec3, affine: Mat4, pixdim: Vec3, outShape?: Vec3): SpacingPlan {
  const zoomed = zoomAffine(affine, pixdim);
  const so = computeShapeOffset(shape, affine, zoomed);
  const dst = Float64Array.from(zoomed);
  dst[3] = so.offset[0];
  dst[7] = so.offset[1];
  dst[11] = so.offset[2];
  const dst32 = fround4(dst);
  const src32 = fround4(affine);
  const size = outShape ?? so.shape;
  const sameShape = size.every((d, i) => d === shape[i]);
  // The solve is float32 in MONAI (LAPACK sgesv); rounding our float64 solve to float32 matches it closely.
  const xform = fround4(solve(src32, dst32));
  const noop = sameShape && (allclose(src32, dst32, AFFINE_TOL) || allclose(xform, mat4(), AFFINE_TOL));
  return { outShape: size, dst: dst32, xform, resample: !noop, extent: so.extent };
}

/**
 * MONAI 0.9.0 Spacingd (diagonal=False, padding "border", align_corners=False, float64 compute):
 * resamples to voxel size `pixdim` keeping directions and obliquity; the grid starts at the same
 * world point as the input's voxel 0. Within 1e-3 of the target nothing is resampled but the affine
 * is still relabelled. The new affine is float32, as MONAI's meta data.
 */
export function spacing<T extends VoxelData>(v: Volume<T>, pixdim: Vec3, mode: InterpMode, outShape?: Vec3): Volume<VoxelData> {
  const plan = planSpacing(v.shape, v.affine, pixdim, outShape);
  const data = plan.resample ? resampleVoxels(v.data, v.channels, v.shape, plan.outShape, plan.xform, mode) : mode === 'bilinear' ? Float32Array.from(v.data) : v.data;
  return {
    ...v,
    data,
    shape: plan.outShape,
    affine: plan.dst,
    gridAffine: plan.dst,
    ops: [...v.ops, { kind: 'spacing', inShape: v.shape, inAffine: toRows(v.affine), outShape: plan.outShape, outAffine: toRows(plan.dst), pixdim, resampled: plan.resample }],
  };
}

/**
 * Resamples back to the original voxel size with the original shape forced (MONAI's Spacingd
 * inverse); `mode` is 'nearest' for label maps and 'bilinear' for probabilities.
 */
export function invertSpacing(v: Volume<VoxelData>, op: Extract<AppliedOp, { kind: 'spacing' }>, mode: InterpMode): Volume<VoxelData> {
  return op.resampled ? spacing({ ...v, affine: mat4(op.outAffine) }, columnNorms(mat4(op.inAffine)), mode, op.inShape) : { ...v, shape: op.inShape };
}
