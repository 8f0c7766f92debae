import { voxelCount, type Vec3, type VoxelData } from '../volume.js';
import type { Mat4 } from '../../io/nifti/mat4.js';

export type InterpMode = 'bilinear' | 'nearest';

/**
 * Pulls every output voxel o from the input at voxel coordinate xform·[o, 1] (voxel centres, no
 * half-voxel shift), the mapping MONAI's Spacing reaches through grid_sample(align_corners=False)
 * with its normalisations cancelling. Coordinates are clamped to [0, n-1] first (padding "border"),
 * then interpolated: trilinear in float64 with PyTorch's weight and summation order, or nearest
 * with round-half-away-from-zero (std::round, PyTorch's 3-D CPU kernel).
 *
 * The output is float32 for bilinear (MONAI casts back) and the input's own type for nearest, so
 * an integer label map stays an integer label map.
 */
export function resampleVoxels<T extends VoxelData>(data: T, channels: number, inShape: Vec3, outShape: Vec3, xform: Mat4, mode: InterpMode): VoxelData {
  const [X, Y, Z] = inShape;
  const nIn = voxelCount(inShape);
  const nOut = voxelCount(outShape);
  const out: VoxelData =
    mode === 'nearest' && !(data instanceof Float64Array) ? new (data.constructor as new (n: number) => VoxelData)(channels * nOut) : new Float32Array(channels * nOut);
  const x = xform;
  const [A, B, C] = outShape;
  const mx = X - 1,
    my = Y - 1,
    mz = Z - 1;
  let o = 0;
  for (let a = 0; a < A; a++) {
    for (let b = 0; b < B; b++) {
      const b0 = x[0]! * a + x[1]! * b,
        b1 = x[4]! * a + x[5]! * b,
        b2 = x[8]! * a + x[9]! * b;
      for (let c = 0; c < C; c++, o++) {
        let ci = b0 + x[2]! * c + x[3]!;
        let cj = b1 + x[6]! * c + x[7]!;
        let ck = b2 + x[10]! * c + x[11]!;
        ci = ci < 0 ? 0 : ci > mx ? mx : ci;
        cj = cj < 0 ? 0 : cj > my ? my : cj;
        ck = ck < 0 ? 0 : ck > mz ? mz : ck;
        if (mode === 'nearest') {
          const p = (Math.round(ci) * Y + Math.round(cj)) * Z + Math.round(ck);
          for (let ch = 0; ch < channels; ch++) out[ch * nOut + o] = data[ch * nIn + p]!;
          continue;
        }
        const i0 = Math.floor(ci),
          j0 = Math.floor(cj),
          k0 = Math.floor(ck);
        const i1 = i0 + 1,
          j1 = j0 + 1,
          k1 = k0 + 1;
        // PyTorch multiplies the W (k), H (j), D (i) factors in that order.
        const wk0 = k1 - ck,
          wk1 = ck - k0,
          wj0 = j1 - cj,
          wj1 = cj - j0,
          wi0 = i1 - ci,
          wi1 = ci - i0;
        const w000 = wk0 * wj0 * wi0,
          w001 = wk1 * wj0 * wi0,
          w010 = wk0 * wj1 * wi0,
          w011 = wk1 * wj1 * wi0;
        const w100 = wk0 * wj0 * wi1,
          w101 = wk1 * wj0 * wi1,
          w110 = wk0 * wj1 * wi1,
          w111 = wk1 * wj1 * wi1;
        const inI1 = i1 <= mx,
          inJ1 = j1 <= my,
          inK1 = k1 <= mz;
        const p000 = (i0 * Y + j0) * Z + k0;
        for (let ch = 0; ch < channels; ch++) {
          const d = ch * nIn + p000;
          let s = data[d]! * w000;
          if (inK1) s += data[d + 1]! * w001;
          if (inJ1) s += data[d + Z]! * w010;
          if (inJ1 && inK1) s += data[d + Z + 1]! * w011;
          if (inI1) {
            const e = d + Y * Z;
            s += data[e]! * w100;
            if (inK1) s += data[e + 1]! * w101;
            if (inJ1) s += data[e + Z]! * w110;
            if (inJ1 && inK1) s += data[e + Z + 1]! * w111;
          }
          out[ch * nOut + o] = s;
        }
      }
    }
  }
  return out;
}
