/**
 * NIfTI-1/2 parsing and voxel decoding from bytes in memory, with no file system or zlib: the Node
 * reader (./read.ts) and browsers share it. Decompression is the caller's (node:zlib there,
 * DecompressionStream here via parseNiftiAsync).
 */
import type { Mat4 } from './mat4.js';
import { datatypeByCode, UNSUPPORTED_DATATYPES, type DatatypeInfo, type VoxelArray } from './datatypes.js';
import { NiftiError } from './errors.js';
import { bestAffine, fixGeometry, monaiAffine, type AffineSource, type FixedGeometry } from './geometry.js';
import { N1_SIZE, N2_SIZE, parseHeader, type NiftiHeader } from './header.js';

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

/** gzip magic bytes: the content, not the file name, says whether a file is compressed. */
export function isGzip(b: Uint8Array): boolean {
  return b.byteLength >= 2 && b[0] === 0x1f && b[1] === 0x8b;
}

/**
 * Parses a whole NIfTI file in memory, gzip or not, with an asynchronous gunzip (browsers:
 * DecompressionStream). A failing gunzip becomes a GZIP NiftiError naming the file.
 */
export async function parseNiftiAsync(input: Uint8Array, gunzip: (gz: Uint8Array) => Promise<Uint8Array>, file?: string): Promise<NiftiImage> {
  let bytes = input;
  if (isGzip(input)) {
    try {
      bytes = await gunzip(input);
    } catch (e) {
      throw new NiftiError('GZIP', `corrupt or truncated gzip data (${(e as Error).message})`, file);
    }
  }
  return parseDecompressed(bytes, file);
}

function checkMagic(h: NiftiHeader, file?: string): void {
  const ok = h.version === 1 ? h.magic === 'n+1' || h.magic === 'ni1' : h.magic.startsWith('n+2') || h.magic.startsWith('ni2');
  if (!ok) {
    throw new NiftiError(
      'BAD_MAGIC',
      `magic is ${JSON.stringify(h.magic)}; NIfTI-${h.version} needs "${h.version === 1 ? 'n+1' : 'n+2'}": not a NIfTI file (Analyze 7.5 .hdr/.img pairs are not supported)`,
      file,
    );
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
    throw new NiftiError(
      'TRUNCATED_DATA',
      `header declares ${need} bytes of voxel data (${shapeBig.join('x')} ${datatype.name}) after offset ${voxOffset}, but only ${have} are present: the file is truncated`,
      file,
    );
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
    file,
    header,
    geometry,
    shape: shapeBig.map(Number),
    datatype,
    affine,
    affineSource: source,
    monaiAffine: m.affine,
    monaiNote: m.note,
    slope,
    inter,
    extensions: parseExtensions(bytes, header),
    dataBytes: bytes.subarray(voxOffset, voxOffset + Number(need)),
  };
}

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

type Lanes = Uint8Array | Uint16Array | Uint32Array;

/** Elements are moved as 1-, 2- or 4-byte lanes; an 8-byte element is two 4-byte lanes (bit-exact, no BigInt). */
function laneArray(buffer: ArrayBufferLike, byteOffset: number, byteLength: number, elemBytes: number): Lanes {
  if (elemBytes === 1) return new Uint8Array(buffer, byteOffset, byteLength);
  if (elemBytes === 2) return new Uint16Array(buffer, byteOffset, byteLength / 2);
  return new Uint32Array(buffer, byteOffset, byteLength / 4);
}

/** Side of the square tiles of the strided transposition: both the reads and the writes of a tile stay in cache. */
const TILE = 32;

/**
 * One frame of disk order (x fastest) to C order over (x, y, z) (z fastest), as the transposition it
 * is: dst[dstBase + ((i*Y + j)*Z + k)*dstStride] = src[srcBase + i + X*j + X*Y*k], tiled over (i, k).
 */
function reverseAxes1(src: Lanes, dst: Lanes, X: number, Y: number, Z: number, srcBase: number, dstBase: number, dstStride: number): void {
  const XY = X * Y;
  for (let j = 0; j < Y; j++) {
    for (let i0 = 0; i0 < X; i0 += TILE) {
      const i1 = Math.min(i0 + TILE, X);
      for (let k0 = 0; k0 < Z; k0 += TILE) {
        const k1 = Math.min(k0 + TILE, Z);
        for (let i = i0; i < i1; i++) {
          let d = srcBase + i + X * j + XY * k0;
          let o = dstBase + ((i * Y + j) * Z + k0) * dstStride;
          for (let k = k0; k < k1; k++, d += XY, o += dstStride) dst[o] = src[d]!;
        }
      }
    }
  }
}

/** reverseAxes1 for 8-byte elements held as pairs of 4-byte lanes. */
function reverseAxes2(src: Uint32Array, dst: Uint32Array, X: number, Y: number, Z: number, srcBase: number, dstBase: number, dstStride: number): void {
  const XY = X * Y;
  for (let j = 0; j < Y; j++) {
    for (let i0 = 0; i0 < X; i0 += TILE) {
      const i1 = Math.min(i0 + TILE, X);
      for (let k0 = 0; k0 < Z; k0 += TILE) {
        const k1 = Math.min(k0 + TILE, Z);
        for (let i = i0; i < i1; i++) {
          let d = 2 * (srcBase + i + X * j + XY * k0);
          let o = 2 * (dstBase + ((i * Y + j) * Z + k0) * dstStride);
          for (let k = k0; k < k1; k++, d += 2 * XY, o += 2 * dstStride) {
            dst[o] = src[d]!;
            dst[o + 1] = src[d + 1]!;
          }
        }
      }
    }
  }
}

/** Reverses the byte order of every element in place (2, 4 or 8 bytes). */
function swapBytes(lanes: Lanes, elemBytes: number): void {
  if (elemBytes === 2) {
    const u = lanes as Uint16Array;
    for (let i = 0; i < u.length; i++) {
      const x = u[i]!;
      u[i] = (x >>> 8) | (x << 8);
    }
    return;
  }
  const u = lanes as Uint32Array;
  const swap32 = (x: number) => ((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24);
  if (elemBytes === 4) {
    for (let i = 0; i < u.length; i++) u[i] = swap32(u[i]!);
    return;
  }
  for (let i = 0; i < u.length; i += 2) {
    const a = u[i]!,
      b = u[i + 1]!;
    u[i] = swap32(b);
    u[i + 1] = swap32(a);
  }
}

function typedView(info: DatatypeInfo, buffer: ArrayBuffer): VoxelArray {
  switch (info.name) {
    case 'uint8':
      return new Uint8Array(buffer);
    case 'int8':
      return new Int8Array(buffer);
    case 'int16':
      return new Int16Array(buffer);
    case 'uint16':
      return new Uint16Array(buffer);
    case 'int32':
      return new Int32Array(buffer);
    case 'uint32':
      return new Uint32Array(buffer);
    case 'int64':
      return new BigInt64Array(buffer);
    case 'uint64':
      return new BigUint64Array(buffer);
    case 'float32':
      return new Float32Array(buffer);
    case 'float64':
      return new Float64Array(buffer);
  }
}

/**
 * The stored values in output order and native byte order, in a new array of the file's dtype.
 * Output order is C order over nibabel's shape (the last axis fastest: what nibabel returns and the
 * network consumes), i.e. disk order (x fastest) with its axes reversed; with `channelFirst`, a 4th+
 * axis group becomes the slowest output axes instead. The voxel bytes are read through typed views
 * (an unaligned block is copied once first) and moved as whole elements; big-endian files are
 * byte-swapped in bulk afterwards.
 */
function reordered(img: NiftiImage, channelFirst: boolean): VoxelArray {
  const bytes = img.datatype.bytes;
  const data = img.dataBytes;
  const n = data.byteLength / bytes;
  const laneBytes = Math.min(bytes, 4);
  // An unaligned voxel block (vox_offset not a multiple of the lane size) is copied to offset 0.
  const aligned = data.byteOffset % laneBytes === 0 ? data : data.slice();
  const src = laneArray(aligned.buffer, aligned.byteOffset, aligned.byteLength, bytes);
  const out = new ArrayBuffer(n * bytes);
  const dst = laneArray(out, 0, out.byteLength, bytes);
  const spatial = img.shape.slice(0, 3);
  while (spatial.length < 3) spatial.push(1);
  const [X, Y, Z] = spatial as [number, number, number];
  const vol = X * Y * Z;
  const frames = vol === 0 ? 0 : n / vol;
  const identity = (Y === 1 && Z === 1 && (frames === 1 || channelFirst)) || (X === 1 && Y === 1 && Z === 1);
  if (identity) {
    dst.set(src);
  } else {
    // Frame t: channel-first puts it at t*vol with unit stride; nibabel order interleaves frames (t fastest).
    for (let t = 0; t < frames; t++) {
      const dstBase = channelFirst ? t * vol : t;
      const dstStride = channelFirst ? 1 : frames;
      if (bytes === 8) reverseAxes2(src as Uint32Array, dst as Uint32Array, X, Y, Z, t * vol, dstBase, dstStride);
      else reverseAxes1(src, dst, X, Y, Z, t * vol, dstBase, dstStride);
    }
  }
  if (bytes > 1 && img.header.littleEndian !== HOST_LITTLE_ENDIAN) swapBytes(dst, bytes);
  return typedView(img.datatype, out);
}

export interface DecodeOptions {
  /** For 4-D and higher: put the 4th+ axes first (channel-first), as the data pipeline wants. Default false (nibabel's order). */
  channelFirst?: boolean;
}

/** The stored values in their own dtype (nibabel's dataobj, unscaled), in C order. */
export function decodeRaw(img: NiftiImage, opts: DecodeOptions = {}): VoxelArray {
  return reordered(img, opts.channelFirst ?? false);
}

function isBig(a: VoxelArray): a is BigInt64Array | BigUint64Array {
  return a instanceof BigInt64Array || a instanceof BigUint64Array;
}

/** nibabel get_fdata(): float64 with slope/inter applied in float64. */
export function decodeFloat64(img: NiftiImage, opts: DecodeOptions = {}): Float64Array {
  const raw = reordered(img, opts.channelFirst ?? false);
  let out: Float64Array;
  if (raw instanceof Float64Array) {
    out = raw;
  } else {
    out = new Float64Array(raw.length);
    if (isBig(raw)) for (let i = 0; i < raw.length; i++) out[i] = Number(raw[i]!);
    else out.set(raw);
  }
  const { slope, inter } = img;
  // Only when set: x + 0 would turn -0 into +0.
  if (slope !== 1) for (let i = 0; i < out.length; i++) out[i] = out[i]! * slope;
  if (inter !== 0) for (let i = 0; i < out.length; i++) out[i] = out[i]! + inter;
  return out;
}

/**
 * What MONAI 0.9.0's LoadImage returns: nibabel get_fdata(dtype=float32). numpy first rounds slope and
 * inter to float32; 8/16-bit and float32 data are then scaled in float32, wider types in float64.
 */
export function decodeFloat32(img: NiftiImage, opts: DecodeOptions = {}): Float32Array {
  const raw = reordered(img, opts.channelFirst ?? false);
  const n = raw.length;
  const f = Math.fround;
  const slope = f(img.slope),
    inter = f(img.inter);
  const mul = img.slope !== 1,
    add = img.inter !== 0;
  let out: Float32Array;
  if (raw instanceof Float32Array) {
    out = raw;
  } else {
    out = new Float32Array(n);
    // Typed-array conversion rounds to nearest float32, as numpy's cast does. Scaled wider types are
    // filled from `raw` below instead, since they scale before rounding.
    if (!isBig(raw)) {
      if (!(mul || add) || img.datatype.scalesInFloat32) out.set(raw);
    } else if (!mul && !add) {
      for (let i = 0; i < n; i++) out[i] = Number(raw[i]!);
    }
  }
  if (!mul && !add) return out;
  if (img.datatype.scalesInFloat32) {
    // Every value is exact in float32; a store rounds to float32, so each step rounds as numpy's does.
    if (mul && add) for (let i = 0; i < n; i++) out[i] = f(out[i]! * slope) + inter;
    else if (mul) for (let i = 0; i < n; i++) out[i] = out[i]! * slope;
    else for (let i = 0; i < n; i++) out[i] = out[i]! + inter;
  } else if (isBig(raw)) {
    for (let i = 0; i < n; i++) {
      let x = Number(raw[i]!) * slope;
      if (add) x += inter;
      out[i] = x;
    }
  } else {
    // Wider types scale in float64 from the exact stored value, then round once.
    const r = raw as Int32Array | Uint32Array | Float64Array;
    if (add) for (let i = 0; i < n; i++) out[i] = r[i]! * slope + inter;
    else for (let i = 0; i < n; i++) out[i] = r[i]! * slope;
  }
  return out;
}
