import { readFile } from 'node:fs/promises';
import { gunzip, gunzipSync } from 'node:zlib';
import { promisify } from 'node:util';
import type { Mat4 } from '../../data/mat4.js';
import { allocate, datatypeByCode, UNSUPPORTED_DATATYPES, type DatatypeInfo, type VoxelArray } from './datatypes.js';
import { NiftiError } from './errors.js';
import { bestAffine, fixGeometry, monaiAffine, type AffineSource, type FixedGeometry } from './geometry.js';
import { N1_SIZE, N2_SIZE, parseHeader, type NiftiHeader } from './header.js';

const gunzipAsync = promisify(gunzip);

export interface NiftiExtension {
  code: number;
  data: Uint8Array;
}

/**
 * A parsed NIfTI image. The voxel bytes are kept as a view into the file buffer (no copy) until one
 * of the decoders below turns them into an array; `shape` is nibabel's (trailing singletons kept).
 */
export interface NiftiImage {
  file?: string;
  header: NiftiHeader;
  geometry: FixedGeometry;
  shape: number[];
  datatype: DatatypeInfo;
  /** nibabel's img.affine (sform, else qform, else the Analyze base affine). */
  affine: Mat4;
  affineSource: AffineSource;
  /** The affine MONAI 0.9.0's LoadImage puts in its meta data (it repairs some inconsistent headers). */
  monaiAffine: Mat4;
  monaiNote?: string;
  /** (slope, inter) actually applied, after nibabel's rule that a zero or non-finite slope means none. */
  slope: number;
  inter: number;
  extensions: NiftiExtension[];
  dataBytes: Uint8Array;
}

const GZIP_MAGIC = (b: Uint8Array) => b.byteLength >= 2 && b[0] === 0x1f && b[1] === 0x8b;

function zlibMessage(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'Z_BUF_ERROR' || /unexpected end/i.test(err.message)) return 'the gzip stream is truncated (incomplete download?)';
  if (/incorrect data check|incorrect length check/i.test(err.message)) return `gzip checksum mismatch: the file is corrupt (${err.message})`;
  return `corrupt gzip data (${err.message})`;
}

/**
 * Decompresses when the bytes are gzip, whatever the file name says: nibabel trusts the suffix, but
 * the content is the better witness (an uncompressed file named .nii.gz reads fine).
 */
export function maybeGunzip(bytes: Uint8Array, file?: string): Uint8Array {
  if (!GZIP_MAGIC(bytes)) return bytes;
  try {
    return gunzipSync(bytes);
  } catch (e) {
    throw new NiftiError('GZIP', zlibMessage(e), file);
  }
}

async function maybeGunzipAsync(bytes: Uint8Array, file?: string): Promise<Uint8Array> {
  if (!GZIP_MAGIC(bytes)) return bytes;
  try {
    return await gunzipAsync(bytes);
  } catch (e) {
    throw new NiftiError('GZIP', zlibMessage(e), file);
  }
}

function checkMagic(h: NiftiHeader, file?: string): void {
  const ok = h.version === 1 ? h.magic === 'n+1' || h.magic === 'ni1' : h.magic.startsWith('n+2') || h.magic.startsWith('ni2');
  if (!ok) {
    throw new NiftiError('BAD_MAGIC', `magic is ${JSON.stringify(h.magic)}; NIfTI-${h.version} needs "${h.version === 1 ? 'n+1' : 'n+2'}": not a NIfTI file (Analyze 7.5 .hdr/.img pairs are not supported)`, file);
  }
}

function parseExtensions(bytes: Uint8Array, h: NiftiHeader): NiftiExtension[] {
  const start = h.version === 1 ? N1_SIZE : N2_SIZE;
  if (bytes.byteLength < start + 4 || bytes[start] === 0) return [];
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: NiftiExtension[] = [];
  let pos = start + 4;
  const end = Math.min(h.vox_offset, bytes.byteLength);
  while (pos + 8 <= end) {
    const esize = v.getInt32(pos, h.littleEndian);
    const ecode = v.getInt32(pos + 4, h.littleEndian);
    // A malformed size ends the list instead of failing the image: the data offset is authoritative.
    if (esize < 16 || esize % 16 !== 0 || pos + esize > end) break;
    out.push({ code: ecode, data: bytes.slice(pos + 8, pos + esize) });
    pos += esize;
  }
  return out;
}

/** Parses and validates a whole NIfTI file already in memory (gzip or not). */
export function parseNifti(input: Uint8Array, file?: string): NiftiImage {
  return parseDecompressed(maybeGunzip(input, file), file);
}

export function parseDecompressed(bytes: Uint8Array, file?: string): NiftiImage {
  const header = parseHeader(bytes, file);
  const dim0 = header.dim[0]!;
  if (!(dim0 >= 1 && dim0 <= 7)) {
    throw new NiftiError('BAD_DIM', `dim[0] (number of dimensions) is ${dim0}; it must be 1..7`, file);
  }
  checkMagic(header, file);
  const shapeBig = header.dimBig.slice(1, dim0 + 1);
  shapeBig.forEach((d, k) => {
    if (d < 1n) throw new NiftiError('BAD_DIM', `dim[${k + 1}] is ${d}; every dimension must be at least 1`, file);
  });
  const datatype = datatypeByCode(header.datatype);
  if (!datatype) {
    const known = UNSUPPORTED_DATATYPES[header.datatype];
    throw new NiftiError('BAD_DATATYPE', known ? `datatype ${header.datatype} (${known}) is not supported` : `datatype code ${header.datatype} is not a NIfTI datatype`, file);
  }
  const voxOffset = header.vox_offset;
  const minOffset = header.version === 1 ? N1_SIZE + 4 : N2_SIZE + 4;
  if (!Number.isFinite(voxOffset) || !Number.isInteger(voxOffset) || voxOffset < minOffset) {
    throw new NiftiError('BAD_VOX_OFFSET', `vox_offset is ${voxOffset}; a single-file NIfTI-${header.version} needs an integer >= ${minOffset}`, file);
  }
  const count = shapeBig.reduce((a, b) => a * b, 1n);
  const need = count * BigInt(datatype.bytes);
  if (need > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new NiftiError('TOO_LARGE', `dims ${shapeBig.join('x')} declare ${need} bytes of voxel data, which no file can hold: corrupt header`, file);
  }
  const have = Math.max(0, bytes.byteLength - voxOffset);
  if (voxOffset > bytes.byteLength) {
    throw new NiftiError('BAD_VOX_OFFSET', `vox_offset ${voxOffset} is past the end of the ${bytes.byteLength}-byte (decompressed) file`, file);
  }
  if (BigInt(have) < need) {
    throw new NiftiError('TRUNCATED_DATA', `header declares ${need} bytes of voxel data (${shapeBig.join('x')} ${datatype.name}) after offset ${voxOffset}, but only ${have} are present: the file is truncated`, file);
  }
  const geometry = fixGeometry(header);
  const { affine, source } = bestAffine(header, geometry);
  const m = monaiAffine(header, geometry, affine);
  let slope = header.scl_slope;
  let inter = header.scl_inter;
  if (slope === 0 || !Number.isFinite(slope)) {
    slope = 1;
    inter = 0;
  } else if (!Number.isFinite(inter)) {
    throw new NiftiError('BAD_SCALING', `scl_slope is ${slope} but scl_inter is ${inter}; cannot scale the data`, file);
  }
  return {
    file, header, geometry, shape: shapeBig.map(Number), datatype, affine, affineSource: source,
    monaiAffine: m.affine, monaiNote: m.note, slope, inter,
    extensions: parseExtensions(bytes, header),
    dataBytes: bytes.subarray(voxOffset, voxOffset + Number(need)),
  };
}

export async function readNiftiFile(path: string): Promise<NiftiImage> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new NiftiError('IO', code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory, not a NIfTI file' : `cannot read (${code ?? (e as Error).message})`, path);
  }
  return parseDecompressed(await maybeGunzipAsync(buf, path), path);
}

/**
 * Calls fn(diskIndex, outIndex) in output order. Disk order has x fastest; the output is C order over
 * nibabel's shape, i.e. the last axis fastest, which is what nibabel returns and the network consumes.
 * A leading 4th..7th axis group becomes the slowest output axes only when `channelFirst` is set.
 */
function forEachVoxel(shape: number[], channelFirst: boolean, fn: (disk: number, out: number) => void): void {
  const spatial = shape.slice(0, Math.min(3, shape.length));
  while (spatial.length < 3) spatial.push(1);
  const [X, Y, Z] = spatial as [number, number, number];
  const frames = shape.slice(3).reduce((a, b) => a * b, 1);
  const vol = X * Y * Z;
  const XY = X * Y;
  if (channelFirst || frames === 1) {
    let o = 0;
    for (let t = 0; t < frames; t++) {
      const base = t * vol;
      for (let i = 0; i < X; i++) for (let j = 0; j < Y; j++) {
        let d = base + i + X * j;
        for (let k = 0; k < Z; k++, d += XY) fn(d, o++);
      }
    }
    return;
  }
  // Full C order over (x, y, z, t...): the frame index varies fastest.
  let o = 0;
  for (let i = 0; i < X; i++) for (let j = 0; j < Y; j++) for (let k = 0; k < Z; k++) {
    const d0 = i + X * j + XY * k;
    for (let t = 0; t < frames; t++) fn(d0 + t * vol, o++);
  }
}

function reader(img: NiftiImage): (i: number) => number | bigint {
  const b = img.dataBytes;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const le = img.header.littleEndian;
  switch (img.datatype.name) {
    case 'uint8': return (i) => b[i]!;
    case 'int8': return (i) => v.getInt8(i);
    case 'int16': return (i) => v.getInt16(2 * i, le);
    case 'uint16': return (i) => v.getUint16(2 * i, le);
    case 'int32': return (i) => v.getInt32(4 * i, le);
    case 'uint32': return (i) => v.getUint32(4 * i, le);
    case 'int64': return (i) => v.getBigInt64(8 * i, le);
    case 'uint64': return (i) => v.getBigUint64(8 * i, le);
    case 'float32': return (i) => v.getFloat32(4 * i, le);
    case 'float64': return (i) => v.getFloat64(8 * i, le);
  }
}

export interface DecodeOptions {
  /** For 4-D and higher: put the 4th+ axes first (channel-first), as the data pipeline wants. Default false (nibabel's order). */
  channelFirst?: boolean;
}

/** The stored values in their own dtype (nibabel's dataobj, unscaled), in C order. */
export function decodeRaw(img: NiftiImage, opts: DecodeOptions = {}): VoxelArray {
  const n = img.dataBytes.byteLength / img.datatype.bytes;
  const out = allocate(img.datatype, n) as { [i: number]: number | bigint };
  const get = reader(img);
  forEachVoxel(img.shape, opts.channelFirst ?? false, (d, o) => { out[o] = get(d); });
  return out as unknown as VoxelArray;
}

/** nibabel get_fdata(): float64 with slope/inter applied in float64. */
export function decodeFloat64(img: NiftiImage, opts: DecodeOptions = {}): Float64Array {
  const out = new Float64Array(img.dataBytes.byteLength / img.datatype.bytes);
  const get = reader(img);
  const { slope, inter } = img;
  const mul = slope !== 1, add = inter !== 0;
  forEachVoxel(img.shape, opts.channelFirst ?? false, (d, o) => {
    let x = Number(get(d));
    if (mul) x *= slope;
    if (add) x += inter;
    out[o] = x;
  });
  return out;
}

/**
 * What MONAI 0.9.0's LoadImage returns: nibabel get_fdata(dtype=float32). numpy first rounds slope and
 * inter to float32; 8/16-bit and float32 data are then scaled in float32, wider types in float64.
 */
export function decodeFloat32(img: NiftiImage, opts: DecodeOptions = {}): Float32Array {
  const out = new Float32Array(img.dataBytes.byteLength / img.datatype.bytes);
  const f = Math.fround;
  const get = reader(img);
  const slope = f(img.slope), inter = f(img.inter);
  const mul = img.slope !== 1, add = img.inter !== 0;
  if (!mul && !add) {
    forEachVoxel(img.shape, opts.channelFirst ?? false, (d, o) => { out[o] = Number(get(d)); });
  } else if (img.datatype.scalesInFloat32) {
    forEachVoxel(img.shape, opts.channelFirst ?? false, (d, o) => {
      let x = f(Number(get(d)));
      if (mul) x = f(x * slope);
      if (add) x = f(x + inter);
      out[o] = x;
    });
  } else {
    forEachVoxel(img.shape, opts.channelFirst ?? false, (d, o) => {
      let x = Number(get(d));
      if (mul) x *= slope;
      if (add) x += inter;
      out[o] = x;
    });
  }
  return out;
}
