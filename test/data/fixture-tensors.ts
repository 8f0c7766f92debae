import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

/** test/fixtures in the source tree (tests run from dist/test/..., fixtures are not copied there). */
export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures');

export interface TypedTensor {
  dtype: string;
  shape: number[];
  /** Numbers for every dtype except I64/U64, which stay BigInt so 2^53+1 is not rounded away. */
  data: Float64Array | Float32Array | Uint8Array | Int8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;
}

const CTORS: Record<string, { bytes: number; make: (b: ArrayBuffer) => TypedTensor['data'] }> = {
  F64: { bytes: 8, make: (b) => new Float64Array(b) },
  F32: { bytes: 4, make: (b) => new Float32Array(b) },
  I64: { bytes: 8, make: (b) => new BigInt64Array(b) },
  U64: { bytes: 8, make: (b) => new BigUint64Array(b) },
  I32: { bytes: 4, make: (b) => new Int32Array(b) },
  U32: { bytes: 4, make: (b) => new Uint32Array(b) },
  I16: { bytes: 2, make: (b) => new Int16Array(b) },
  U16: { bytes: 2, make: (b) => new Uint16Array(b) },
  I8: { bytes: 1, make: (b) => new Int8Array(b) },
  U8: { bytes: 1, make: (b) => new Uint8Array(b) },
};

/**
 * Reads a safetensors fixture keeping each tensor's stored dtype. The project's parser converts
 * everything to float32, which would lose the float64 and int64 reference values these tests need.
 */
export function readTypedSafetensors(path: string): Map<string, TypedTensor> {
  // Large fixtures are stored gzip-compressed to keep the repository small.
  const buf = path.endsWith('.gz') ? gunzipSync(readFileSync(path)) : readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, TypedTensor>();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const c = CTORS[e.dtype];
    if (!c) throw new Error(`fixture tensor ${name}: unsupported dtype ${e.dtype}`);
    const [b, end] = e.data_offsets;
    // Copy into a fresh, aligned buffer (offsets in the file need not be aligned).
    const ab = new ArrayBuffer(end - b);
    new Uint8Array(ab).set(buf.subarray(8 + n + b, 8 + n + end));
    out.set(name, { dtype: e.dtype, shape: e.shape, data: c.make(ab) });
  }
  return out;
}

const cache = new Map<string, Map<string, TypedTensor>>();

export function fixtureTensors(relPath: string): Map<string, TypedTensor> {
  let m = cache.get(relPath);
  if (!m) {
    m = readTypedSafetensors(join(FIXTURES, relPath));
    cache.set(relPath, m);
  }
  return m;
}

export function tensor(relPath: string, name: string): TypedTensor {
  const t = fixtureTensors(relPath).get(name);
  if (!t) throw new Error(`fixture ${relPath} has no tensor '${name}'`);
  return t;
}

export function readJson<T = any>(relPath: string): T {
  return JSON.parse(readFileSync(join(FIXTURES, relPath), 'utf8')) as T;
}

/** JSON encodes NaN/±Inf as strings in the manifests. */
export function num(v: number | string): number {
  if (v === 'NaN') return NaN;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  return v as number;
}

/** Same bits, treating every NaN as equal and distinguishing -0 from +0. */
export function sameValue(a: number, b: number): boolean {
  return Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));
}
