/**
 * PyTorch checkpoint reader: the real torch 1.13 file from the fixture set must equal the
 * safetensors copy bit for bit; everything else is exercised on archives built by hand here
 * (deflate, ZIP64 records, strided/offset views, other dtypes, wrappers, hostile pickles, damage).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { crc32 } from '../../src/io/crc32.js';
import { FIXTURES } from '../helpers/fixtures.js';
import { parseSafetensors } from '../../src/io/safetensors.js';
import { parsePth, readPth, PthError } from '../../src/io/pth.js';
import { readWeightsFile, WeightsFormatError } from '../../src/io/weights.js';

// ---------------------------------------------------------------- zip writer (test-only)

interface ZipIn {
  name: string;
  data: Uint8Array;
  deflate?: boolean;
}

/** Writes a ZIP; `zip64` adds ZIP64 EOCD records (saturating the 32-bit fields) and ZIP64 extras. */
function buildZip(files: ZipIn[], opts: { zip64?: boolean; localPad?: number } = {}): Uint8Array {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const f of files) {
    const name = Buffer.from(f.name, 'utf8');
    const body = f.deflate ? deflateRawSync(f.data) : Buffer.from(f.data);
    const crc = crc32(f.data) >>> 0;
    const pad = Buffer.alloc(opts.localPad ?? 0); // torch pads the local extra field to align data
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0);
    lh.writeUInt16LE(20, 4);
    lh.writeUInt16LE(f.deflate ? 8 : 0, 8);
    lh.writeUInt32LE(crc, 14);
    lh.writeUInt32LE(body.length, 18);
    lh.writeUInt32LE(f.data.length, 22);
    lh.writeUInt16LE(name.length, 26);
    if (pad.length) {
      pad.writeUInt16LE(0x4646, 0); // 'FF' id, as torch's writer uses
      pad.writeUInt16LE(pad.length - 4, 2);
    }
    lh.writeUInt16LE(pad.length, 28);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0);
    ch.writeUInt16LE(45, 4);
    ch.writeUInt16LE(20, 6);
    ch.writeUInt16LE(f.deflate ? 8 : 0, 10);
    ch.writeUInt32LE(crc, 16);
    ch.writeUInt16LE(name.length, 28);
    let extra = Buffer.alloc(0);
    if (opts.zip64) {
      // Saturate all three fields and put the real values in the ZIP64 extra field.
      ch.writeUInt32LE(0xffffffff, 20);
      ch.writeUInt32LE(0xffffffff, 24);
      ch.writeUInt32LE(0xffffffff, 42);
      extra = Buffer.alloc(28);
      extra.writeUInt16LE(1, 0);
      extra.writeUInt16LE(24, 2);
      extra.writeBigUInt64LE(BigInt(f.data.length), 4);
      extra.writeBigUInt64LE(BigInt(body.length), 12);
      extra.writeBigUInt64LE(BigInt(offset), 20);
    } else {
      ch.writeUInt32LE(body.length, 20);
      ch.writeUInt32LE(f.data.length, 24);
      ch.writeUInt32LE(offset, 42);
    }
    ch.writeUInt16LE(extra.length, 30);
    central.push(ch, name, extra);
    parts.push(lh, name, pad, body);
    offset += lh.length + name.length + pad.length + body.length;
  }
  const cd = Buffer.concat(central);
  const tailParts: Buffer[] = [];
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  if (opts.zip64) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0);
    rec.writeBigUInt64LE(44n, 4);
    rec.writeUInt16LE(45, 12);
    rec.writeUInt16LE(45, 14);
    rec.writeBigUInt64LE(BigInt(files.length), 24);
    rec.writeBigUInt64LE(BigInt(files.length), 32);
    rec.writeBigUInt64LE(BigInt(cd.length), 40);
    rec.writeBigUInt64LE(BigInt(offset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(offset + cd.length), 8);
    loc.writeUInt32LE(1, 16);
    tailParts.push(rec, loc);
    eocd.writeUInt16LE(0xffff, 8);
    eocd.writeUInt16LE(0xffff, 10);
    eocd.writeUInt32LE(0xffffffff, 12);
    eocd.writeUInt32LE(0xffffffff, 16);
  } else {
    eocd.writeUInt16LE(files.length, 8);
    eocd.writeUInt16LE(files.length, 10);
    eocd.writeUInt32LE(cd.length, 12);
    eocd.writeUInt32LE(offset, 16);
  }
  return new Uint8Array(Buffer.concat([...parts, cd, ...tailParts, eocd]));
}

// ---------------------------------------------------------------- pickle writer (test-only)

const enc = new TextEncoder();
const op = (...b: number[]) => Uint8Array.from(b);
const P = {
  proto: (v = 2) => op(0x80, v),
  global: (m: string, n: string) => enc.encode(`c${m}\n${n}\n`),
  str(s: string) {
    const b = enc.encode(s);
    const h = new Uint8Array(5);
    h[0] = 0x58;
    new DataView(h.buffer).setUint32(1, b.length, true);
    return cat(h, b);
  },
  int(n: number) {
    if (n >= 0 && n < 256) return op(0x4b, n);
    if (n >= 0 && n < 65536) return op(0x4d, n & 255, n >> 8);
    const h = new Uint8Array(5);
    h[0] = 0x4a;
    new DataView(h.buffer).setInt32(1, n, true);
    return h;
  },
  mark: op(0x28),
  tuple: op(0x74),
  tuple1: op(0x85),
  emptyTuple: op(0x29),
  emptyDict: op(0x7d),
  setitems: op(0x75),
  setitem: op(0x73),
  reduce: op(0x52),
  persid: op(0x51),
  false: op(0x89),
  stop: op(0x2e),
};

function cat(...parts: Uint8Array[]): Uint8Array {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

interface TDesc {
  name: string;
  storage: string;
  storageType?: string;
  numel: number;
  offset?: number;
  size: number[];
  stride: number[];
  parameter?: boolean;
}

/** `_rebuild_tensor_v2(('storage', torch.<Type>, key, 'cpu', numel), offset, size, stride, False, OrderedDict())` */
function tensorPickle(t: TDesc): Uint8Array {
  const od = cat(P.global('collections', 'OrderedDict'), P.emptyTuple, P.reduce);
  const ints = (xs: number[]) => cat(P.mark, ...xs.map(P.int), P.tuple);
  let body = cat(
    P.global('torch._utils', '_rebuild_tensor_v2'),
    P.mark,
    P.mark,
    P.str('storage'),
    P.global('torch', t.storageType ?? 'FloatStorage'),
    P.str(t.storage),
    P.str('cpu'),
    P.int(t.numel),
    P.tuple,
    P.persid,
    P.int(t.offset ?? 0),
    ints(t.size),
    ints(t.stride),
    P.false,
    od,
    P.tuple,
    P.reduce,
  );
  if (t.parameter) body = cat(P.global('torch._utils', '_rebuild_parameter'), P.mark, body, P.false, od, P.tuple, P.reduce);
  return body;
}

/** An OrderedDict of tensors, optionally wrapped as {wrapKey: dict, 'epoch': 7}. */
function stateDictPickle(ts: TDesc[], wrapKey?: string): Uint8Array {
  const dict = cat(P.global('collections', 'OrderedDict'), P.emptyTuple, P.reduce, P.mark, ...ts.flatMap((t) => [P.str(t.name), tensorPickle(t)]), P.setitems);
  const body = wrapKey ? cat(P.emptyDict, P.mark, P.str('epoch'), P.int(7), P.str(wrapKey), dict, P.setitems) : dict;
  return cat(P.proto(2), body, P.stop);
}

const f32 = (xs: number[]) => new Uint8Array(Float32Array.from(xs).buffer);

function checkpoint(pkl: Uint8Array, storages: Record<string, Uint8Array>, opts: { deflate?: boolean; zip64?: boolean; prefix?: string; extra?: ZipIn[] } = {}): Uint8Array {
  const prefix = opts.prefix ?? 'archive';
  return buildZip(
    [
      { name: `${prefix}/data.pkl`, data: pkl, deflate: opts.deflate },
      ...Object.entries(storages).map(([k, data]) => ({ name: `${prefix}/data/${k}`, data, deflate: opts.deflate })),
      { name: `${prefix}/version`, data: enc.encode('3\n') },
      ...(opts.extra ?? []),
    ],
    { zip64: opts.zip64, localPad: 12 },
  );
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

// ---------------------------------------------------------------- tests

describe('pth reader', () => {
  it('reads the torch 1.13 fixture checkpoint bit-identical to the safetensors copy (keys, order, shapes, bytes)', async () => {
    const ref = parseSafetensors(readFileSync(join(FIXTURES, 'tiny_weights.safetensors'))).tensors;
    const fromBuf = parsePth(readFileSync(join(FIXTURES, 'tiny_weights.pth')));
    const fromFile = await readPth(join(FIXTURES, 'tiny_weights.pth'));
    for (const got of [fromBuf, fromFile]) {
      assert.deepEqual([...got.keys()], [...ref.keys()]);
      assert.equal(got.size, 131);
      for (const [k, r] of ref) {
        const g = got.get(k)!;
        assert.deepEqual(g.shape, r.shape, k);
        assert.equal(g.dtype, 'F32');
        assert.deepEqual(bits(g.data), bits(r.data), k);
      }
    }
  });

  it('rejects a pickle that calls os.system, naming the global, without running anything', () => {
    const pkl = cat(P.proto(2), P.global('os', 'system'), P.str('echo pwned'), P.tuple1, P.reduce, P.stop);
    assert.throws(
      () => parsePth(checkpoint(pkl, {})),
      (e: Error) => e instanceof PthError && /'os\.system'/.test(e.message) && /not allowed/.test(e.message),
    );
    // Protocol 4 STACK_GLOBAL route, and a global hidden inside an otherwise valid state dict.
    const pkl4 = cat(P.proto(4), op(0x8c, 8), enc.encode('builtins'), op(0x8c, 4), enc.encode('eval'), op(0x93), P.str('1'), P.tuple1, P.reduce, P.stop);
    assert.throws(() => parsePth(checkpoint(pkl4, {})), /'builtins\.eval'/);
    const sneaky = cat(
      P.proto(2),
      P.global('collections', 'OrderedDict'),
      P.emptyTuple,
      P.reduce,
      P.str('w'),
      P.global('torch', 'load'),
      P.str('x'),
      P.tuple1,
      P.reduce,
      P.setitem,
      P.stop,
    );
    assert.throws(() => parsePth(checkpoint(sneaky, {})), /'torch\.load'/);
  });

  it('reads deflated entries, any archive prefix, and ZIP64 directory records', () => {
    const ts: TDesc[] = [
      { name: 'a', storage: '0', numel: 6, size: [2, 3], stride: [3, 1] },
      { name: 'b', storage: '1', numel: 1, size: [], stride: [] },
    ];
    const storages = { '0': f32([1, 2, 3, 4, 5, 6]), '1': f32([-2.5]) };
    for (const opts of [{ deflate: true }, { zip64: true }, { deflate: true, zip64: true, prefix: 'my_model' }]) {
      const m = parsePth(checkpoint(stateDictPickle(ts), storages, opts));
      assert.deepEqual([...m.keys()], ['a', 'b'], JSON.stringify(opts));
      assert.deepEqual(m.get('a')!.shape, [2, 3]);
      assert.deepEqual([...m.get('a')!.data], [1, 2, 3, 4, 5, 6]);
      assert.deepEqual(m.get('b')!.shape, []);
      assert.deepEqual([...m.get('b')!.data], [-2.5]);
    }
  });

  it('materialises views with a storage offset and non-contiguous strides; shared storages are read once per use', () => {
    const storage = Array.from({ length: 24 }, (_, i) => i);
    const ts: TDesc[] = [
      // transpose of a 3x2 block starting at element 2: t[i][j] = s[2 + i + 2j]
      { name: 'transposed', storage: '0', numel: 24, offset: 2, size: [2, 3], stride: [1, 2] },
      { name: 'every4th', storage: '0', numel: 24, offset: 5, size: [3], stride: [4] },
      { name: 'slice', storage: '0', numel: 24, offset: 4, size: [2, 2], stride: [2, 1] },
      // broadcast-style zero stride (expand) and a 3-D permuted view
      { name: 'expanded', storage: '0', numel: 24, offset: 7, size: [3, 2], stride: [0, 1] },
      { name: 'permuted', storage: '0', numel: 24, offset: 0, size: [3, 2, 4], stride: [1, 12, 3] },
      { name: 'whole', storage: '0', numel: 24, size: [24], stride: [1] },
    ];
    const m = parsePth(checkpoint(stateDictPickle(ts), { '0': f32(storage) }));
    assert.deepEqual([...m.get('transposed')!.data], [2, 4, 6, 3, 5, 7]);
    assert.deepEqual([...m.get('every4th')!.data], [5, 9, 13]);
    assert.deepEqual([...m.get('slice')!.data], [4, 5, 6, 7]);
    assert.deepEqual([...m.get('expanded')!.data], [7, 8, 7, 8, 7, 8]);
    const perm: number[] = [];
    for (let a = 0; a < 3; a++) for (let b = 0; b < 2; b++) for (let c = 0; c < 4; c++) perm.push(a + 12 * b + 3 * c);
    assert.deepEqual([...m.get('permuted')!.data], perm);
    assert.deepEqual([...m.get('whole')!.data], storage);
    // Results never alias each other.
    m.get('whole')!.data[4] = -1;
    assert.equal(m.get('slice')!.data[0], 4);
  });

  it('converts other storage dtypes to float32 and honours a big-endian byteorder entry', () => {
    const dv = (n: number, f: (v: DataView) => void) => {
      const b = new Uint8Array(n);
      f(new DataView(b.buffer));
      return b;
    };
    const storages = {
      d: dv(16, (v) => {
        v.setFloat64(0, 1 / 3, true);
        v.setFloat64(8, -1e300, true);
      }),
      h: dv(6, (v) => {
        v.setUint16(0, 0x3c00, true);
        v.setUint16(2, 0xc000, true);
        v.setUint16(4, 0x0001, true);
      }),
      bf: dv(4, (v) => {
        v.setUint16(0, 0x3f80, true);
        v.setUint16(2, 0x4049, true);
      }),
      l: dv(16, (v) => {
        v.setBigInt64(0, -3n, true);
        v.setBigInt64(8, 1n << 40n, true);
      }),
      i: dv(8, (v) => {
        v.setInt32(0, -7, true);
        v.setInt32(4, 123456, true);
      }),
      b: Uint8Array.from([0, 1, 1]),
      u: Uint8Array.from([255, 0]),
      c: Uint8Array.from([0xff, 0x05]),
    };
    const ts: TDesc[] = [
      { name: 'f64', storage: 'd', storageType: 'DoubleStorage', numel: 2, size: [2], stride: [1] },
      { name: 'f16', storage: 'h', storageType: 'HalfStorage', numel: 3, size: [3], stride: [1] },
      { name: 'bf16', storage: 'bf', storageType: 'BFloat16Storage', numel: 2, size: [2], stride: [1] },
      { name: 'i64', storage: 'l', storageType: 'LongStorage', numel: 2, size: [2], stride: [1] },
      { name: 'i32', storage: 'i', storageType: 'IntStorage', numel: 2, size: [2], stride: [1] },
      { name: 'bool', storage: 'b', storageType: 'BoolStorage', numel: 3, size: [3], stride: [1] },
      { name: 'u8', storage: 'u', storageType: 'ByteStorage', numel: 2, size: [2], stride: [1] },
      { name: 'i8', storage: 'c', storageType: 'CharStorage', numel: 2, size: [2], stride: [1] },
    ];
    const m = parsePth(checkpoint(stateDictPickle(ts), storages));
    assert.deepEqual([...m.get('f64')!.data], [Math.fround(1 / 3), -Infinity]);
    assert.equal(m.get('f64')!.dtype, 'F64');
    assert.deepEqual([...m.get('f16')!.data], [1, -2, 2 ** -24]);
    assert.deepEqual([...m.get('bf16')!.data], [1, 3.140625]);
    assert.deepEqual([...m.get('i64')!.data], [-3, 2 ** 40]);
    assert.deepEqual([...m.get('i32')!.data], [-7, 123456]);
    assert.deepEqual([...m.get('bool')!.data], [0, 1, 1]);
    assert.deepEqual([...m.get('u8')!.data], [255, 0]);
    assert.deepEqual([...m.get('i8')!.data], [-1, 5]);

    const be = new Uint8Array(8);
    new DataView(be.buffer).setFloat32(0, 1.5, false);
    new DataView(be.buffer).setFloat32(4, -0.25, false);
    const big = checkpoint(
      stateDictPickle([{ name: 'x', storage: '0', numel: 2, size: [2], stride: [1] }]),
      { '0': be },
      { extra: [{ name: 'archive/byteorder', data: enc.encode('big') }] },
    );
    assert.deepEqual([...parsePth(big).get('x')!.data], [1.5, -0.25]);
  });

  it('unwraps {state_dict|model_state_dict|model|net: ...} checkpoints, nn.Parameter, and a DataParallel module. prefix', () => {
    const ts: TDesc[] = [
      { name: 'module.enc.weight', storage: '0', numel: 2, size: [2], stride: [1], parameter: true },
      { name: 'module.enc.bias', storage: '1', numel: 1, size: [1], stride: [1] },
    ];
    const storages = { '0': f32([1, 2]), '1': f32([3]) };
    for (const key of [undefined, 'state_dict', 'model_state_dict', 'model', 'net']) {
      const m = parsePth(checkpoint(stateDictPickle(ts, key), storages));
      assert.deepEqual([...m.keys()], ['enc.weight', 'enc.bias'], String(key));
      assert.deepEqual([...m.get('enc.weight')!.data], [1, 2]);
    }
    // Mixed prefixes are left alone.
    const mixed = parsePth(checkpoint(stateDictPickle([ts[0]!, { ...ts[1]!, name: 'head.bias' }]), storages));
    assert.deepEqual([...mixed.keys()], ['module.enc.weight', 'head.bias']);
  });

  it('reports clear errors: not a zip, legacy format, missing data.pkl, missing or truncated storage, corruption', async () => {
    const good = checkpoint(stateDictPickle([{ name: 'w', storage: '0', numel: 4, size: [4], stride: [1] }]), { '0': f32([1, 2, 3, 4]) });
    assert.deepEqual([...parsePth(good).get('w')!.data], [1, 2, 3, 4]);

    assert.throws(
      () => parsePth(enc.encode('hello, this is not a zip at all')),
      (e: Error) => e instanceof PthError && /not a zip/.test(e.message),
    );
    assert.throws(
      () => parsePth(op(0x80, 2, 0x8a, 0x0a)),
      (e: Error) => e instanceof PthError && /legacy/.test(e.message),
    );
    assert.throws(
      () => parsePth(buildZip([{ name: 'archive/version', data: enc.encode('3\n') }])),
      (e: Error) => e instanceof PthError && /data\.pkl/.test(e.message),
    );
    assert.throws(
      () =>
        parsePth(
          buildZip([
            { name: 'm/constants.pkl', data: op(0x2e) },
            { name: 'm/code/x.py', data: op(0) },
          ]),
        ),
      /TorchScript/,
    );

    const pkl = stateDictPickle([{ name: 'w', storage: '7', numel: 4, size: [4], stride: [1] }]);
    assert.throws(
      () => parsePth(checkpoint(pkl, {})),
      (e: Error) => e instanceof PthError && /storage '7'.*missing/.test(e.message),
    );
    assert.throws(
      () => parsePth(checkpoint(pkl, { '7': f32([1, 2]) })),
      (e: Error) => e instanceof PthError && /truncated/.test(e.message),
    );
    const over = stateDictPickle([{ name: 'w', storage: '0', numel: 4, offset: 2, size: [4], stride: [1] }]);
    assert.throws(
      () => parsePth(checkpoint(over, { '0': f32([1, 2, 3, 4]) })),
      (e: Error) => e instanceof PthError && /reaches element/.test(e.message),
    );

    // Truncated archive (a partial download): the directory is gone.
    assert.throws(() => parsePth(good.subarray(0, good.length - 30)), PthError);
    // A flipped bit in stored tensor data is caught by the CRC.
    const flipped = good.slice();
    const at = Buffer.from(flipped).indexOf(Buffer.from(f32([1, 2, 3, 4])));
    flipped[at + 5]! ^= 0x10;
    assert.throws(
      () => parsePth(flipped),
      (e: Error) => e instanceof PthError && /CRC/.test(e.message),
    );
    // Garbage inside a deflated entry.
    const deflated = checkpoint(stateDictPickle([{ name: 'w', storage: '0', numel: 4, size: [4], stride: [1] }]), { '0': f32([1, 2, 3, 4]) }, { deflate: true });
    const bad = deflated.slice();
    for (let i = 60; i < 90; i++) bad[i] = 0xff;
    assert.throws(() => parsePth(bad), PthError);
    // Corrupted real fixture (last 1000 bytes cut) via the file path: error names the file.
    const dir = await mkdtemp(join(tmpdir(), 'pth-'));
    try {
      const real = readFileSync(join(FIXTURES, 'tiny_weights.pth'));
      const p = join(dir, 'cut.pth');
      await writeFile(p, real.subarray(0, real.length - 1000));
      await assert.rejects(readPth(p), (e: Error) => e instanceof PthError && e.message.startsWith(p));
      await assert.rejects(readPth(join(dir, 'absent.pth')), (e: Error) => e instanceof PthError && /ENOENT/.test(e.message));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects pickles that do not hold tensors, and malformed streams', () => {
    const notTensors = cat(P.proto(2), P.emptyDict, P.str('epoch'), P.int(3), P.setitem, P.stop);
    assert.throws(() => parsePth(checkpoint(notTensors, {})), /no dict of tensors.*epoch/);
    const truncated = stateDictPickle([{ name: 'w', storage: '0', numel: 1, size: [1], stride: [1] }]).subarray(0, 40);
    assert.throws(
      () => parsePth(checkpoint(truncated, { '0': f32([1]) })),
      (e: Error) => e instanceof PthError && /data\.pkl/.test(e.message),
    );
    const badOp = cat(P.proto(2), op(0xff), P.stop);
    assert.throws(() => parsePth(checkpoint(badOp, {})), /opcode 0xff/);
  });
});

describe('readWeightsFile', () => {
  it('dispatches .safetensors and .pth (same tensors), and refuses unknown extensions', async () => {
    const a = await readWeightsFile(join(FIXTURES, 'tiny_weights.safetensors'));
    const b = await readWeightsFile(join(FIXTURES, 'tiny_weights.pth'));
    assert.deepEqual([...a.keys()], [...b.keys()]);
    const dir = await mkdtemp(join(tmpdir(), 'weights-'));
    try {
      const good = checkpoint(stateDictPickle([{ name: 'w', storage: '0', numel: 1, size: [1], stride: [1] }]), { '0': f32([5]) });
      for (const ext of ['.pt', '.bin', '.ckpt', '.PTH']) {
        const p = join(dir, `m${ext}`);
        await writeFile(p, good);
        assert.deepEqual([...(await readWeightsFile(p)).get('w')!.data], [5], ext);
      }
      await assert.rejects(readWeightsFile(join(dir, 'm.onnx')), (e: Error) => e instanceof WeightsFormatError && /\.onnx/.test(e.message) && /\.safetensors/.test(e.message));
      await assert.rejects(readWeightsFile(join(dir, 'weights')), WeightsFormatError);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
