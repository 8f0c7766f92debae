import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  DATATYPES,
  decodeFloat32,
  decodeFloat64,
  decodeRaw,
  encodeNifti,
  parseDecompressed,
  type DatatypeInfo,
  type NiftiImage,
  type VoxelArray,
} from '../../src/io/nifti/index.js';
import { mat4 } from '../../src/io/nifti/mat4.js';

/**
 * The bulk decoders (typed views, tiled transposition, bulk byte swaps) against a per-voxel DataView
 * reference, for every datatype in both byte orders, aligned and unaligned, 1-D to 4-D, scaled or not.
 */

function randomValues(dt: DatatypeInfo, n: number, seed: number): VoxelArray {
  let s = seed >>> 0;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
  const bytes = new Uint8Array(n * dt.bytes);
  for (let i = 0; i < bytes.length; i++) bytes[i] = next() >>> 24;
  const view = (ctor: { new (b: ArrayBuffer): VoxelArray }) => new ctor(bytes.buffer);
  switch (dt.name) {
    case 'uint8':
      return view(Uint8Array);
    case 'int8':
      return view(Int8Array);
    case 'int16':
      return view(Int16Array);
    case 'uint16':
      return view(Uint16Array);
    case 'int32':
      return view(Int32Array);
    case 'uint32':
      return view(Uint32Array);
    case 'int64':
      return view(BigInt64Array);
    case 'uint64':
      return view(BigUint64Array);
    case 'float32': {
      // Random bits give NaNs with payloads, infinities, subnormals and -0 now and then; add some for sure.
      const f = view(Float32Array) as Float32Array;
      f[0] = NaN;
      f[1] = -0;
      f[2] = Infinity;
      f[3] = 1.5;
      return f;
    }
    case 'float64': {
      const f = new Float64Array(n);
      for (let i = 0; i < n; i++) f[i] = (next() - 2 ** 31) * 1e-3 + next() / 2 ** 32;
      f[0] = NaN;
      f[1] = -0;
      f[2] = -Infinity;
      return f;
    }
  }
}

/** Per-voxel reference: value of element `d` (disk order) of img's voxel bytes, in its byte order. */
function refGet(img: NiftiImage): (d: number) => number | bigint {
  const b = img.dataBytes;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const le = img.header.littleEndian;
  const k = img.datatype.bytes;
  switch (img.datatype.name) {
    case 'uint8':
      return (d) => v.getUint8(d);
    case 'int8':
      return (d) => v.getInt8(d);
    case 'int16':
      return (d) => v.getInt16(k * d, le);
    case 'uint16':
      return (d) => v.getUint16(k * d, le);
    case 'int32':
      return (d) => v.getInt32(k * d, le);
    case 'uint32':
      return (d) => v.getUint32(k * d, le);
    case 'int64':
      return (d) => v.getBigInt64(k * d, le);
    case 'uint64':
      return (d) => v.getBigUint64(k * d, le);
    case 'float32':
      return (d) => v.getFloat32(k * d, le);
    case 'float64':
      return (d) => v.getFloat64(k * d, le);
  }
}

/** Disk index of every output element, in output order. */
function diskOrder(shape: number[], channelFirst: boolean): number[] {
  const [X, Y, Z] = [shape[0]!, shape[1] ?? 1, shape[2] ?? 1];
  const T = shape.slice(3).reduce((a, b) => a * b, 1);
  const vol = X * Y * Z;
  const out: number[] = [];
  if (channelFirst || T === 1) {
    for (let t = 0; t < T; t++) for (let i = 0; i < X; i++) for (let j = 0; j < Y; j++) for (let k = 0; k < Z; k++) out.push(t * vol + i + X * j + X * Y * k);
  } else {
    for (let i = 0; i < X; i++) for (let j = 0; j < Y; j++) for (let k = 0; k < Z; k++) for (let t = 0; t < T; t++) out.push(t * vol + i + X * j + X * Y * k);
  }
  return out;
}

/** The same image with its voxel bytes big-endian and/or at an odd byte offset. */
function variant(img: NiftiImage, bigEndian: boolean, unaligned: boolean): NiftiImage {
  const k = img.datatype.bytes;
  const src = img.dataBytes;
  const buf = new Uint8Array(src.byteLength + 8);
  const off = unaligned ? 3 : 8;
  const data = buf.subarray(off, off + src.byteLength);
  data.set(src);
  if (bigEndian) for (let e = 0; e < data.length; e += k) data.subarray(e, e + k).reverse();
  return { ...img, header: { ...img.header, littleEndian: !bigEndian }, dataBytes: data };
}

function sameBits(a: VoxelArray, b: VoxelArray, what: string): void {
  assert.equal(a.constructor, b.constructor, `${what}: array type`);
  assert.deepEqual(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), new Uint8Array(b.buffer, b.byteOffset, b.byteLength), `${what}: bytes`);
}

function sameValues(a: ArrayLike<number>, e: ArrayLike<number>, what: string): void {
  assert.equal(a.length, e.length, `${what}: length`);
  for (let i = 0; i < e.length; i++) if (!Object.is(a[i], e[i])) assert.fail(`${what}: element ${i} is ${a[i]}, expected ${e[i]}`);
}

const SHAPES = [[5, 4, 3], [37, 3, 35], [6], [3, 1, 4], [4, 3, 2, 3], [2, 1, 3, 2, 2]];
const SCALES: [number, number][] = [
  [1, 0],
  [0.1, 0.3],
  [2, 0],
  [1, -1024],
];

describe('NIfTI bulk decoding equals the per-voxel reference', () => {
  for (const dt of DATATYPES) {
    it(dt.name, () => {
      for (const shape of SHAPES) {
        const n = shape.reduce((a, b) => a * b, 1);
        const data = randomValues(dt, n, n * 31 + dt.code);
        const base = parseDecompressed(encodeNifti({ data, shape, affine: mat4() }));
        // Round trip: writing C order and decoding gives the same values back (the writer may quiet NaNs).
        const back = decodeRaw(base);
        if (back instanceof Float32Array || back instanceof Float64Array) sameValues(back, data as Float32Array, `${dt.name} ${shape}: round trip`);
        else sameBits(back, data, `${dt.name} ${shape}: round trip`);
        for (const be of [false, true])
          for (const un of [false, true])
            for (const cf of [false, true]) {
              const img = variant(base, be, un);
              const what = `${dt.name} ${shape.join('x')} ${be ? 'BE' : 'LE'}${un ? ' unaligned' : ''}${cf ? ' channelFirst' : ''}`;
              const get = refGet(img);
              const order = diskOrder(shape, cf);
              // Expected raw bytes element by element (bytes, not values, so NaN payloads count too).
              const k = dt.bytes;
              const expRaw = new Uint8Array(n * k);
              order.forEach((d, o) => {
                const el = img.dataBytes.slice(d * k, d * k + k);
                expRaw.set(be ? el.reverse() : el, o * k);
              });
              const raw = decodeRaw(img, { channelFirst: cf });
              assert.equal(raw.constructor, data.constructor, `${what}: raw array type`);
              assert.deepEqual(new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength), expRaw, `${what}: raw bytes`);
              for (const [slope, inter] of SCALES) {
                const s = { ...img, slope, inter };
                const f = Math.fround,
                  fs = f(slope),
                  fi = f(inter);
                const e64 = order.map((d) => {
                  let x = Number(get(d));
                  if (slope !== 1) x *= slope;
                  if (inter !== 0) x += inter;
                  return x;
                });
                const e32 = Float32Array.from(order, (d) => {
                  let x = Number(get(d));
                  if (dt.scalesInFloat32) {
                    x = f(x);
                    if (slope !== 1) x = f(x * fs);
                    if (inter !== 0) x = f(x + fi);
                    return x;
                  }
                  if (slope !== 1) x *= fs;
                  if (inter !== 0) x += fi;
                  return x;
                });
                sameValues(decodeFloat64(s, { channelFirst: cf }), e64, `${what} (${slope}, ${inter}): float64`);
                sameValues(decodeFloat32(s, { channelFirst: cf }), e32, `${what} (${slope}, ${inter}): float32`);
              }
            }
      }
    });
  }

  it('returns arrays of its own, never views of the file bytes', () => {
    const data = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const img = parseDecompressed(encodeNifti({ data, shape: [6], affine: mat4() }));
    const a = decodeFloat32(img);
    a[0] = 99;
    assert.equal(decodeFloat32(img)[0], 1);
    assert.notEqual(decodeRaw(img).buffer, img.dataBytes.buffer);
  });
});
