import { join } from 'node:path';
import { FIXTURES, fixtureTensors, readJson, type TypedTensor } from './fixture-tensors.js';
import { mat4, type Mat4 } from '../../src/io/nifti/mat4.js';
import { volume, type Vec3, type Volume, type VoxelData } from '../../src/data/volume.js';

export const TDIR = join(FIXTURES, 'transforms');
export const tmanifest = readJson('transforms/manifest.json');
export const CASES = Object.keys(tmanifest.cases) as string[];

/** Resolves a manifest array entry ({tensor} or {same_as}) to its stored tensor. */
export function stored(file: string, entry: { tensor?: string; same_as?: string }): TypedTensor {
  const name = entry.tensor ?? entry.same_as!;
  const t = fixtureTensors(`transforms/${file}.safetensors.gz`).get(name);
  if (!t) throw new Error(`no tensor ${name} in ${file}`);
  return t;
}

/** A stored (1, X, Y, Z) or (C, X, Y, Z) array as a Volume with the given affine. */
export function storedVolume(file: string, entry: { tensor?: string; same_as?: string }, affine: Mat4 | number[][]): Volume<VoxelData> {
  const t = stored(file, entry);
  const [c, x, y, z] = t.shape as [number, number, number, number];
  const data = t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as ArrayLike<number>);
  return volume(data, [x, y, z] as Vec3, affine instanceof Float64Array ? affine : mat4(affine), c);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

export function countDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

/** True when the exact source coordinate xform·o is within 1e-6 of k + 0.5 on some axis (SEMANTICS §3.7). */
export function tieMask(outShape: Vec3, inShape: Vec3, xform: Mat4): Uint8Array {
  const [A, B, C] = outShape;
  const m = new Uint8Array(A * B * C);
  let o = 0;
  for (let a = 0; a < A; a++)
    for (let b = 0; b < B; b++)
      for (let c = 0; c < C; c++, o++) {
        for (let r = 0; r < 3; r++) {
          let v = xform[r * 4]! * a + xform[r * 4 + 1]! * b + xform[r * 4 + 2]! * c + xform[r * 4 + 3]!;
          v = Math.min(Math.max(v, 0), inShape[r]! - 1);
          const frac = v - Math.floor(v);
          if (Math.abs(frac - 0.5) < 1e-6) {
            m[o] = 1;
            break;
          }
        }
      }
  return m;
}
