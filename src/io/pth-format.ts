/**
 * PyTorch checkpoint reader for the zip format written by torch.save since 1.6:
 *
 *   <prefix>/data.pkl       pickle of the saved object (tensors appear as persistent ids)
 *   <prefix>/data/<key>     raw storage bytes, one entry per storage
 *   <prefix>/version        format version ("3\n")
 *   <prefix>/byteorder      "little" / "big" (newer torch only; absent means little-endian)
 *
 * `<prefix>` is arbitrary (torch uses the file's base name; some tools use `archive`).
 *
 * data.pkl is interpreted by the restricted unpickler in ./pickle.ts. Only the globals listed in
 * findTorchGlobal below exist; any other global (os.system, builtins.eval, a model class, ...) is a
 * PthError naming it, before anything else happens, so a malicious checkpoint cannot run code.
 *
 * Tensors are materialised lazily: only the tensors of the selected state dict are decoded (a
 * training checkpoint's optimizer state is never touched), one storage at a time, and each becomes a
 * contiguous Float32Array (views with a storage offset or non-contiguous strides are gathered).
 *
 * This module works on bytes only (browser-safe); ./pth.ts adds node:zlib and files.
 */
import type { RawTensor, RawTensorMap } from './safetensors-format.js';
import { halfToFloat } from './safetensors-format.js';
import { PickleError, PyTuple, unpickle } from './pickle.js';
import {
  ZipError,
  looksLikeZip,
  readCentralDirectory,
  readEntry,
  runOnBufferAsync,
  runOnBufferWith,
  type AsyncZipCodec,
  type ByteReader,
  type ZipCodec,
  type ZipEntry,
} from './zip-format.js';
import { InputError } from '../engine/errors.js';

export class PthError extends InputError {
  constructor(message: string) {
    super(message);
    this.name = 'PthError';
  }
}

/** Storage element type, named like safetensors dtypes (that is also what RawTensor.dtype reports). */
type Dtype = 'F32' | 'F64' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const ELEMENT_BYTES: Record<Dtype, number> = { F32: 4, F64: 8, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

const STORAGE_CLASSES: Record<string, Dtype> = {
  FloatStorage: 'F32',
  DoubleStorage: 'F64',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

const TORCH_DTYPES: Record<string, Dtype> = {
  float32: 'F32',
  float: 'F32',
  float64: 'F64',
  double: 'F64',
  float16: 'F16',
  half: 'F16',
  bfloat16: 'BF16',
  int64: 'I64',
  long: 'I64',
  int32: 'I32',
  int: 'I32',
  int16: 'I16',
  short: 'I16',
  int8: 'I8',
  uint8: 'U8',
  bool: 'BOOL',
};

/** The only objects a GLOBAL can produce. */
type TorchGlobal = { kind: 'OrderedDict' } | { kind: 'rebuild_tensor_v2' } | { kind: 'rebuild_parameter' } | { kind: 'storage'; dtype: Dtype } | { kind: 'dtype'; dtype: Dtype };

const GLOBAL = Symbol('torch-global');
type GlobalObj = TorchGlobal & { [GLOBAL]: string };

function isGlobal(x: unknown): x is GlobalObj {
  return typeof x === 'object' && x !== null && GLOBAL in x;
}

function findTorchGlobal(module: string, name: string): GlobalObj {
  const full = `${module}.${name}`;
  const mk = (g: TorchGlobal): GlobalObj => ({ ...g, [GLOBAL]: full });
  if (full === 'collections.OrderedDict') return mk({ kind: 'OrderedDict' });
  if (full === 'torch._utils._rebuild_tensor_v2') return mk({ kind: 'rebuild_tensor_v2' });
  if (full === 'torch._utils._rebuild_parameter') return mk({ kind: 'rebuild_parameter' });
  if (module === 'torch' && Object.hasOwn(STORAGE_CLASSES, name)) return mk({ kind: 'storage', dtype: STORAGE_CLASSES[name]! });
  if (module === 'torch' && Object.hasOwn(TORCH_DTYPES, name)) return mk({ kind: 'dtype', dtype: TORCH_DTYPES[name]! });
  throw new PthError(`checkpoint references the global '${full}', which is not allowed (only tensors, storages and plain containers can be loaded; nothing is executed)`);
}

interface StorageRef {
  key: string;
  dtype: Dtype;
  numel: number;
}

/** A tensor as described in data.pkl; its data is read later (see materialise). */
class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly size: number[],
    readonly stride: number[],
  ) {}
}

function intList(x: unknown, what: string): number[] {
  if (!(x instanceof PyTuple) && !Array.isArray(x)) throw new PthError(`${what} is not a tuple`);
  const items = x instanceof PyTuple ? x.items : x;
  return items.map((v) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new PthError(`${what} contains ${String(v)}, expected a non-negative integer`);
    return v;
  });
}

function makeHooks() {
  return {
    findClass: findTorchGlobal,
    call(fn: unknown, args: unknown[], kind: 'reduce' | 'newobj'): unknown {
      if (!isGlobal(fn)) throw new PthError(`data.pkl calls something that is not an allowed global (${kind})`);
      switch (fn.kind) {
        case 'OrderedDict':
          // OrderedDict() or OrderedDict(iterable of pairs); a Map keeps insertion order.
          if (args.length === 0) return new Map();
          if (args.length === 1 && Array.isArray(args[0])) {
            const m = new Map();
            for (const kv of args[0]) if (kv instanceof PyTuple && kv.items.length === 2) m.set(kv.items[0], kv.items[1]);
            return m;
          }
          throw new PthError('unsupported OrderedDict construction in data.pkl');
        case 'rebuild_tensor_v2': {
          // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
          if (kind !== 'reduce' || args.length < 4) throw new PthError('malformed _rebuild_tensor_v2 call in data.pkl');
          const [storage, offset] = args;
          if (typeof storage !== 'object' || storage === null || !('key' in storage)) throw new PthError('_rebuild_tensor_v2 without a storage');
          if (typeof offset !== 'number' || !Number.isInteger(offset) || offset < 0) throw new PthError(`bad storage offset ${String(offset)}`);
          const size = intList(args[2], 'tensor size');
          const stride = intList(args[3], 'tensor stride');
          if (size.length !== stride.length) throw new PthError(`tensor size ${JSON.stringify(size)} and stride ${JSON.stringify(stride)} differ in length`);
          return new TensorRef(storage as StorageRef, offset, size, stride);
        }
        case 'rebuild_parameter':
          // _rebuild_parameter(data, requires_grad, backward_hooks): a Parameter is just its tensor here.
          if (kind !== 'reduce' || !(args[0] instanceof TensorRef)) throw new PthError('malformed _rebuild_parameter call in data.pkl');
          return args[0];
        default:
          throw new PthError(`data.pkl calls '${fn[GLOBAL]}', which is not callable here`);
      }
    },
    persistentLoad(pid: unknown): StorageRef {
      // ('storage', storage_type, key, location, numel); storage_type is a torch.*Storage class
      // (torch <= 2.x writes these even for typed storages) or, defensively, a torch dtype.
      if (!(pid instanceof PyTuple) || pid.items[0] !== 'storage' || pid.items.length < 5) {
        throw new PthError(`unsupported persistent id in data.pkl: ${describe(pid)}`);
      }
      const [, type, key, , numel] = pid.items;
      if (!isGlobal(type) || (type.kind !== 'storage' && type.kind !== 'dtype')) throw new PthError(`persistent id has no storage type: ${describe(pid)}`);
      if (typeof key !== 'string') throw new PthError(`persistent id has a non-string key: ${describe(pid)}`);
      if (typeof numel !== 'number' || !Number.isInteger(numel) || numel < 0) throw new PthError(`persistent id has a bad element count: ${describe(pid)}`);
      return { key, dtype: type.dtype, numel };
    },
    build(obj: unknown): unknown {
      // BUILD sets attributes (e.g. the state dict's `_metadata` with per-module versions) that
      // carry no tensor data, so the state is dropped.
      return obj;
    },
  };
}

function describe(x: unknown): string {
  if (x instanceof PyTuple) return `(${x.items.map(describe).join(', ')})`;
  if (isGlobal(x)) return x[GLOBAL];
  if (typeof x === 'string') return JSON.stringify(x);
  return String(x);
}

const WRAPPER_KEYS = ['state_dict', 'model_state_dict', 'model', 'net'];

function tensorEntries(m: Map<unknown, unknown>): [string, TensorRef][] {
  const out: [string, TensorRef][] = [];
  for (const [k, v] of m) if (typeof k === 'string' && v instanceof TensorRef) out.push([k, v]);
  return out;
}

/**
 * Finds the dict of tensors: the object itself if it holds tensors, else the first of
 * state_dict / model_state_dict / model / net (searched one level further, e.g. {model: {state_dict}}).
 * Non-tensor values (epoch counters, `_extra_state`, ...) are skipped.
 */
function selectStateDict(root: unknown, depth = 0): [string, TensorRef][] | null {
  if (!(root instanceof Map)) return null;
  for (const key of WRAPPER_KEYS) {
    if (depth < 2 && root.has(key)) {
      const inner = selectStateDict(root.get(key), depth + 1);
      if (inner && inner.length) return inner;
    }
  }
  const own = tensorEntries(root);
  return own.length ? own : null;
}

function stripModulePrefix(entries: [string, TensorRef][]): [string, TensorRef][] {
  // nn.DataParallel / DistributedDataParallel save every key as `module.<key>`.
  if (entries.length && entries.every(([k]) => k.startsWith('module.'))) return entries.map(([k, v]) => [k.slice(7), v]);
  return entries;
}

/** Decodes a whole storage to float32 (little- or big-endian as the archive says). */
function decodeStorage(bytes: Uint8Array, dtype: Dtype, count: number, little: boolean): Float32Array {
  const out = new Float32Array(count);
  if (dtype === 'F32' && little && bytes.byteOffset % 4 === 0) {
    out.set(new Float32Array(bytes.buffer, bytes.byteOffset, count));
    return out;
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < count; i++) out[i] = v.getFloat32(4 * i, little);
      break;
    case 'F64':
      for (let i = 0; i < count; i++) out[i] = v.getFloat64(8 * i, little);
      break;
    case 'F16':
      for (let i = 0; i < count; i++) out[i] = halfToFloat(v.getUint16(2 * i, little));
      break;
    case 'BF16': {
      const u = new Uint32Array(1);
      const f = new Float32Array(u.buffer);
      for (let i = 0; i < count; i++) {
        u[0] = v.getUint16(2 * i, little) << 16;
        out[i] = f[0]!;
      }
      break;
    }
    case 'I64':
      for (let i = 0; i < count; i++) out[i] = Number(v.getBigInt64(8 * i, little));
      break;
    case 'I32':
      for (let i = 0; i < count; i++) out[i] = v.getInt32(4 * i, little);
      break;
    case 'I16':
      for (let i = 0; i < count; i++) out[i] = v.getInt16(2 * i, little);
      break;
    case 'I8':
      for (let i = 0; i < count; i++) out[i] = v.getInt8(i);
      break;
    case 'U8':
    case 'BOOL':
      for (let i = 0; i < count; i++) out[i] = bytes[i]!;
      break;
  }
  return out;
}

/** Gathers a (possibly strided, offset) view of a decoded storage into a contiguous array. */
function materialise(name: string, t: TensorRef, storage: Float32Array): RawTensor {
  const { size, stride, offset } = t;
  const count = size.reduce((a, b) => a * b, 1);
  const shape = [...size];
  if (count === 0) return { shape, dtype: t.storage.dtype, data: new Float32Array(0) };
  let last = offset;
  for (let d = 0; d < size.length; d++) last += (size[d]! - 1) * stride[d]!;
  if (last >= storage.length) {
    throw new PthError(
      `tensor '${name}' (size ${JSON.stringify(size)}, stride ${JSON.stringify(stride)}, offset ${offset}) reaches element ${last} of a ${storage.length}-element storage`,
    );
  }
  let contiguous = true;
  for (let d = size.length - 1, s = 1; d >= 0; s *= size[d]!, d--) if (size[d]! !== 1 && stride[d]! !== s) contiguous = false;
  if (contiguous) {
    // Whole storage: hand it over without copying again.
    const data = offset === 0 && count === storage.length ? storage : storage.slice(offset, offset + count);
    return { shape, dtype: t.storage.dtype, data };
  }
  const data = new Float32Array(count);
  const nd = size.length;
  const idx = new Array<number>(nd).fill(0);
  let src = offset;
  for (let i = 0; i < count; i++) {
    data[i] = storage[src]!;
    // Odometer increment over the index, last dimension fastest (C order).
    for (let d = nd - 1; d >= 0; d--) {
      if (++idx[d]! < size[d]!) {
        src += stride[d]!;
        break;
      }
      src -= (size[d]! - 1) * stride[d]!;
      idx[d] = 0;
    }
  }
  return { shape, dtype: t.storage.dtype, data };
}

/** The checkpoint reader as ZIP byte requests (see ./zip-format.ts), for any runner. */
export function* pthReader(fileSize: number): ByteReader<RawTensorMap> {
  const head = yield { offset: 0, length: Math.min(8, fileSize) };
  if (!looksLikeZip(head)) {
    // torch.save before 1.6 (or _use_new_zipfile_serialization=False) writes a bare pickle stream.
    if (head[0] === 0x80) throw new PthError('this is the legacy (pre-1.6, non-zip) torch.save format, which is not supported; re-save it with torch >= 1.6');
    throw new PthError('not a PyTorch checkpoint (not a zip archive)');
  }
  let entries: Map<string, ZipEntry>;
  try {
    entries = yield* readCentralDirectory(fileSize);
  } catch (e) {
    if (e instanceof ZipError) throw new PthError(e.message);
    throw e;
  }
  // torch finds data.pkl under the archive's single top-level folder, whatever its name.
  const pkls = [...entries.keys()].filter((k) => /^[^/]+\/data\.pkl$/.test(k));
  if (pkls.length === 0) {
    const names = [...entries.keys()];
    if (names.some((k) => /(^|\/)constants\.pkl$/.test(k) || /(^|\/)code\//.test(k))) {
      throw new PthError('this is a TorchScript archive (torch.jit.save), not a torch.save checkpoint; save model.state_dict() with torch.save instead');
    }
    throw new PthError(`zip archive has no <prefix>/data.pkl (entries: ${names.slice(0, 5).join(', ')}${names.length > 5 ? ', ...' : ''})`);
  }
  if (pkls.length > 1) throw new PthError(`zip archive has several data.pkl entries (${pkls.join(', ')})`);
  const prefix = pkls[0]!.slice(0, -'data.pkl'.length);

  const read = function* (entry: ZipEntry): ByteReader<Uint8Array> {
    try {
      return yield* readEntry(entry, fileSize);
    } catch (e) {
      if (e instanceof ZipError) throw new PthError(e.message);
      throw e;
    }
  };

  let little = true;
  const bo = entries.get(`${prefix}byteorder`);
  if (bo) {
    const s = new TextDecoder().decode(yield* read(bo)).trim();
    if (s !== 'little' && s !== 'big') throw new PthError(`unknown byteorder '${s}'`);
    little = s === 'little';
  }

  const pkl = yield* read(entries.get(pkls[0]!)!);
  let root: unknown;
  try {
    root = unpickle(pkl, makeHooks());
  } catch (e) {
    if (e instanceof PickleError) throw new PthError(`data.pkl: ${e.message}`);
    throw e;
  }
  const selected = selectStateDict(root);
  if (!selected) {
    const keys = root instanceof Map ? [...root.keys()].map(String).slice(0, 10).join(', ') : describe(root);
    throw new PthError(`checkpoint holds no dict of tensors (top level: ${keys})`);
  }
  const tensors = stripModulePrefix(selected);

  // Decode storage by storage, so at most one decoded storage is alive besides the results.
  const byStorage = new Map<string, [number, string, TensorRef][]>();
  tensors.forEach(([name, t], i) => {
    const list = byStorage.get(t.storage.key) ?? [];
    list.push([i, name, t]);
    byStorage.set(t.storage.key, list);
  });
  const results: RawTensor[] = new Array(tensors.length);
  for (const [key, users] of byStorage) {
    const ref = users[0]![2].storage;
    const entry = entries.get(`${prefix}data/${key}`);
    if (!entry) throw new PthError(`storage '${key}' (used by '${users[0]![1]}') is missing from the archive (no entry ${prefix}data/${key})`);
    const bytes = yield* read(entry);
    const needBytes = ref.numel * ELEMENT_BYTES[ref.dtype];
    if (bytes.byteLength < needBytes) {
      throw new PthError(`storage '${key}' is truncated: ${bytes.byteLength} bytes, expected ${needBytes} (${ref.numel} × ${ref.dtype})`);
    }
    const storage = decodeStorage(bytes, ref.dtype, ref.numel, little);
    for (const [i, name, t] of users) {
      if (t.storage.dtype !== ref.dtype) throw new PthError(`storage '${key}' is used with two dtypes`);
      results[i] = materialise(name, t, storage);
    }
  }
  const out: RawTensorMap = new Map();
  tensors.forEach(([name], i) => {
    if (out.has(name)) throw new PthError(`duplicate tensor name '${name}'`);
    out.set(name, results[i]!);
  });
  return out;
}

/** ZIP errors surface as PthError (the caller asked for a checkpoint, not a zip). */
export function asPthError(e: unknown, where?: string): unknown {
  if (e instanceof PthError || e instanceof ZipError) return new PthError(where ? `${where}: ${e.message}` : e.message);
  return e;
}

/** Parses a torch.save (zip) checkpoint held in memory, with the given inflate/CRC-32. */
export function parsePthWith(buf: Uint8Array, codec: ZipCodec): RawTensorMap {
  try {
    return runOnBufferWith(pthReader(buf.byteLength), buf, codec);
  } catch (e) {
    throw e instanceof ZipError ? asPthError(e) : e;
  }
}

/** parsePthWith for an asynchronous inflate (browsers: DecompressionStream). */
export async function parsePthAsync(buf: Uint8Array, codec: AsyncZipCodec): Promise<RawTensorMap> {
  try {
    return await runOnBufferAsync(pthReader(buf.byteLength), buf, codec);
  } catch (e) {
    throw e instanceof ZipError ? asPthError(e) : e;
  }
}
