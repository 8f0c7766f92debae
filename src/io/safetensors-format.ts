/**
 * The safetensors format as bytes in, bytes out: parsing and serialising with no file system, so the
 * same code runs in Node (./safetensors.ts adds the file functions) and in browsers.
 */
import { InputError } from '../engine/errors.js';

/** One tensor as stored in a safetensors file, already converted to float32. */
export interface RawTensor {
  shape: number[];
  data: Float32Array;
  /** dtype as stored in the file (F32, F16, BF16, F64, I64, ...). */
  dtype: string;
}

/** Ordered name -> tensor map; order is the file's header order (safetensors writers keep insertion order). */
export type RawTensorMap = Map<string, RawTensor>;

export class SafetensorsError extends InputError {
  constructor(message: string) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

const BYTES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** IEEE half-precision bits to a number (exact). */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

function decode(dtype: string, bytes: Uint8Array, count: number, name: string): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  switch (dtype) {
    case 'F32':
      if (bytes.byteOffset % 4 === 0) out.set(new Float32Array(bytes.buffer, bytes.byteOffset, count));
      else for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
      return out;
    case 'F64':
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(i * 8, true);
      return out;
    case 'F16':
      for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(i * 2, true));
      return out;
    case 'BF16': {
      const u = new Uint32Array(1);
      const f = new Float32Array(u.buffer);
      for (let i = 0; i < count; i++) {
        u[0] = view.getUint16(i * 2, true) << 16;
        out[i] = f[0]!;
      }
      return out;
    }
    case 'I64':
      for (let i = 0; i < count; i++) out[i] = Number(view.getBigInt64(i * 8, true));
      return out;
    case 'I32':
      for (let i = 0; i < count; i++) out[i] = view.getInt32(i * 4, true);
      return out;
    case 'I16':
      for (let i = 0; i < count; i++) out[i] = view.getInt16(i * 2, true);
      return out;
    case 'I8':
      for (let i = 0; i < count; i++) out[i] = view.getInt8(i);
      return out;
    case 'U8':
    case 'BOOL':
      for (let i = 0; i < count; i++) out[i] = bytes[i]!;
      return out;
    default:
      throw new SafetensorsError(`tensor '${name}': unsupported dtype ${dtype}`);
  }
}

/** Parses a safetensors buffer. Every tensor is returned as float32; metadata strings are returned too. */
export function parseSafetensors(buf: Uint8Array): { tensors: RawTensorMap; metadata: Record<string, string> } {
  if (buf.byteLength < 8) throw new SafetensorsError('file is too short to be safetensors (no 8-byte header length)');
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = Number(view.getBigUint64(0, true));
  if (n <= 1 || 8 + n > buf.byteLength) throw new SafetensorsError(`header length ${n} does not fit in a ${buf.byteLength}-byte file`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + n)));
  } catch (e) {
    throw new SafetensorsError(`header is not valid UTF-8 JSON: ${(e as Error).message}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw new SafetensorsError('header is not a JSON object');
  const dataStart = 8 + n;
  const dataLen = buf.byteLength - dataStart;
  const tensors: RawTensorMap = new Map();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (entry ?? {}) as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e?.dtype !== 'string' || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets) || e.data_offsets.length !== 2) {
      throw new SafetensorsError(`tensor '${name}': malformed header entry`);
    }
    const shape = e.shape as number[];
    if (!shape.every((d) => Number.isInteger(d) && d >= 0)) throw new SafetensorsError(`tensor '${name}': bad shape ${JSON.stringify(shape)}`);
    const width = BYTES[e.dtype];
    if (!width) throw new SafetensorsError(`tensor '${name}': unsupported dtype ${e.dtype}`);
    const [begin, end] = e.data_offsets as number[];
    const count = shape.reduce((a, b) => a * b, 1);
    if (!Number.isInteger(begin) || !Number.isInteger(end) || begin! < 0 || end! > dataLen || end! - begin! !== count * width) {
      throw new SafetensorsError(`tensor '${name}': data_offsets [${begin}, ${end}] do not match shape ${JSON.stringify(shape)} of ${e.dtype} within ${dataLen} data bytes`);
    }
    tensors.set(name, { shape, dtype: e.dtype, data: decode(e.dtype, buf.subarray(dataStart + begin!, dataStart + end!), count, name) });
  }
  return { tensors, metadata };
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half precision with round-to-nearest-even, overflow to ±Infinity, subnormals kept. */
export function floatToHalf(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // a carry into the exponent is still correct
  return sign | h;
}

/** Whether every value is finite and within float16's range (±65504). */
function fitsHalf(data: Float32Array): boolean {
  for (let i = 0; i < data.length; i++) if (!(Math.abs(data[i]!) <= 65504)) return false;
  return true;
}

/**
 * Serialises tensors (in map order) to the safetensors format, as F32 or, to halve the size of
 * shipped weights, F16. With F16 a tensor holding a value outside ±65504 (or a non-finite one) is
 * kept as F32 rather than made infinite: BatchNorm running variances of a trained TransBTS reach
 * 5e7. Safetensors types each tensor on its own, so readers take the mix as it is.
 */
export function serializeSafetensors(
  tensors: Iterable<[string, { shape: readonly number[]; data: Float32Array }]>,
  metadata?: Record<string, string>,
  opts: { dtype?: 'F32' | 'F16' } = {},
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new SafetensorsError(`tensor '${name}': shape ${JSON.stringify(t.shape)} does not match ${t.data.length} values`);
    const half = opts.dtype === 'F16' && fitsHalf(t.data);
    if (half) {
      const h = new Uint16Array(count);
      for (let i = 0; i < count; i++) h[i] = floatToHalf(t.data[i]!);
      parts.push(new Uint8Array(h.buffer));
    } else {
      parts.push(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    }
    const bytes = count * (half ? 2 : 4);
    header[name] = { dtype: half ? 'F16' : 'F32', shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const utf8 = new TextEncoder();
  const json = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
  const head = utf8.encode(json + ' '.repeat((8 - ((8 + utf8.encode(json).byteLength) % 8)) % 8));
  const out = new Uint8Array(8 + head.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.byteLength), true);
  out.set(head, 8);
  let pos = 8 + head.byteLength;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.byteLength;
  }
  return out;
}
