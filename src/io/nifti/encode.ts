/**
 * NIfTI-1/2 encoding to bytes in memory (header, geometry carried over from a source image, voxels in
 * disk order), with no file system or zlib: the Node writer (./write.ts) and browsers share it.
 */
import type { Mat4 } from './mat4.js';
import { datatypeOfArray, type VoxelArray } from './datatypes.js';
import { NiftiError } from './errors.js';
import { affineToQuaternion, qformMatrix, sformMatrix, fixGeometry } from './geometry.js';
import { emptyHeader, serializeHeader, type NiftiHeader } from './header.js';

export interface NiftiWriteInput {
  /** Voxel values in C order over `shape` (last axis fastest), i.e. nibabel's array order. */
  data: VoxelArray;
  /** Spatial shape (x, y, z), optionally followed by more axes (t, ...). */
  shape: readonly number[];
  affine: Mat4;
  /**
   * The header of the image this one derives from. Its non-geometry fields are kept; when `affine`
   * equals its sform/qform, those are written back unchanged (codes included), so a prediction on
   * the original grid carries exactly the input's geometry.
   */
  source?: NiftiHeader;
  version?: 1 | 2;
  description?: string;
}

function sameAffine(a: Mat4, b: Mat4): boolean {
  for (let i = 0; i < 12; i++) if (Math.abs(a[i]! - b[i]!) > 1e-6 * Math.max(1, Math.abs(b[i]!))) return false;
  return true;
}

function setQform(h: NiftiHeader, affine: Mat4): void {
  const q = affineToQuaternion(affine);
  h.quatern_b = q.b;
  h.quatern_c = q.c;
  h.quatern_d = q.d;
  [h.qoffset_x, h.qoffset_y, h.qoffset_z] = q.offset as [number, number, number];
  h.pixdim[0] = q.qfac;
  for (let k = 0; k < 3; k++) h.pixdim[k + 1] = q.zooms[k]!;
}

function setSform(h: NiftiHeader, affine: Mat4): void {
  h.srow_x = [affine[0]!, affine[1]!, affine[2]!, affine[3]!];
  h.srow_y = [affine[4]!, affine[5]!, affine[6]!, affine[7]!];
  h.srow_z = [affine[8]!, affine[9]!, affine[10]!, affine[11]!];
}

/** Builds the header for `input`, keeping the source geometry when the affine is unchanged. */
export function buildHeader(input: NiftiWriteInput): NiftiHeader {
  const version = input.version ?? input.source?.version ?? 1;
  const base = input.source ? { ...input.source, pixdim: input.source.pixdim.slice() } : emptyHeader(version);
  const h: NiftiHeader = { ...base, version, littleEndian: true, magic: version === 1 ? 'n+1' : 'n+2' };
  const dt = datatypeOfArray(input.data);
  const shape = [...input.shape];
  if (shape.length < 1 || shape.length > 7) throw new NiftiError('WRITE', `cannot write a ${shape.length}-D array`);
  const n = shape.reduce((a, b) => a * b, 1);
  if (n !== input.data.length) throw new NiftiError('WRITE', `shape ${shape.join('x')} needs ${n} values, got ${input.data.length}`);
  if (version === 1 && shape.some((d) => d > 32767)) throw new NiftiError('WRITE', `dimension above 32767 needs NIfTI-2`);
  h.dim = [shape.length, ...shape, ...Array(7 - shape.length).fill(1)];
  h.dimBig = h.dim.map(BigInt);
  h.datatype = dt.code;
  h.bitpix = dt.bytes * 8;
  h.vox_offset = version === 1 ? 352 : 544;
  // Values are written unscaled: NaN slope is nibabel's "no scaling" on write.
  h.scl_slope = NaN;
  h.scl_inter = NaN;
  h.cal_min = 0;
  h.cal_max = 0;
  if (input.description !== undefined) h.descrip = input.description;
  const src = input.source;
  const g = src ? fixGeometry(src) : undefined;
  const keepS = src && g && g.sform_code !== 0 && sameAffine(input.affine, sformMatrix(src));
  const keepQ = src && g && g.qform_code !== 0 && sameAffine(input.affine, qformMatrix(src, g));
  if (keepS || keepQ) {
    // Geometry unchanged: leave sform and qform exactly as the source stored them.
    // A coded sform that disagrees would win over the qform in every reader: align it.
    if (!keepS && g!.sform_code !== 0) setSform(h, input.affine);
    return h;
  }
  setSform(h, input.affine);
  setQform(h, input.affine);
  const code = src ? Math.max(g!.sform_code, g!.qform_code) || 2 : 2;
  h.sform_code = code;
  h.qform_code = code;
  return h;
}

/** The image as bytes (uncompressed): header, 4 extender bytes, voxels in disk order (x fastest). */
export function encodeNifti(input: NiftiWriteInput): Uint8Array {
  const h = buildHeader(input);
  const head = serializeHeader(h);
  const dt = datatypeOfArray(input.data);
  const shape = input.shape;
  const n = input.data.length;
  const out = new Uint8Array(h.vox_offset + n * dt.bytes);
  out.set(head, 0);
  const X = shape[0]!,
    Y = shape[1] ?? 1,
    Z = shape[2] ?? 1;
  const frames = n / (X * Y * Z);
  const XY = X * Y;
  // Disk order reverses C order; write through a typed view of the same element type (little-endian host).
  const Ctor = input.data.constructor as new (buf: ArrayBuffer, off: number, len: number) => VoxelArray;
  const aligned = h.vox_offset % dt.bytes === 0;
  const dst = aligned ? new Ctor(out.buffer, h.vox_offset, n) : undefined;
  const tmp = aligned ? undefined : new Ctor(new ArrayBuffer(n * dt.bytes), 0, n);
  const target = (dst ?? tmp)! as unknown as { [i: number]: number | bigint };
  const src = input.data as unknown as { [i: number]: number | bigint };
  // Multi-frame data is accepted in C order over (x, y, z, t): t varies fastest.
  let o = 0;
  for (let i = 0; i < X; i++)
    for (let j = 0; j < Y; j++)
      for (let k = 0; k < Z; k++) {
        const d0 = i + X * j + XY * k;
        for (let t = 0; t < frames; t++) target[d0 + t * X * Y * Z] = src[o++]!;
      }
  if (tmp) out.set(new Uint8Array(tmp.buffer), h.vox_offset);
  return out;
}

/**
 * The smallest integer type that holds every value of a label map exactly (uint8 for class maps),
 * so written labels are compact and open as integer images in any viewer.
 */
export function compactLabelArray(values: ArrayLike<number>): Uint8Array | Int16Array | Int32Array | Float32Array {
  let lo = Infinity,
    hi = -Infinity,
    integral = true;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
    if (integral && !Number.isInteger(v)) integral = false;
  }
  if (values.length === 0) return new Uint8Array(0);
  if (!integral) return Float32Array.from(values);
  if (lo >= 0 && hi <= 255) return Uint8Array.from(values);
  if (lo >= -32768 && hi <= 32767) return Int16Array.from(values);
  if (lo >= -2147483648 && hi <= 2147483647) return Int32Array.from(values);
  return Float32Array.from(values);
}
