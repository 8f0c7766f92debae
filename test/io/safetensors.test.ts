import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSafetensors, serializeSafetensors, readSafetensorsFile, writeSafetensorsFile, SafetensorsError } from '../../src/io/safetensors.js';
import { loadSafetensors, saveSafetensors } from '../../src/io/load.js';
import { tensor } from '../../src/engine/creation.js';
import '../../src/backends/index.js';

/** Builds a file by hand so the reader is tested against the format, not against our own writer. */
function handMade(entries: { name: string; dtype: string; shape: number[]; bytes: number[] }[]): Uint8Array {
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [off, off + e.bytes.length] };
    off += e.bytes.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let p = 8 + json.length;
  for (const e of entries) {
    out.set(e.bytes, p);
    p += e.bytes.length;
  }
  return out;
}

describe('safetensors', () => {
  it('round-trips float32 tensors in order, with metadata and an 8-byte aligned data section', () => {
    const a = { shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 0, 1e-20, -7]) };
    const b = { shape: [1], data: Float32Array.from([42]) };
    const bytes = serializeSafetensors(
      [
        ['z.weight', a],
        ['a.bias', b],
      ],
      { format: 'pt' },
    );
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal((8 + n) % 8, 0);
    const { tensors, metadata } = parseSafetensors(bytes);
    assert.deepEqual([...tensors.keys()], ['z.weight', 'a.bias'], 'file order kept');
    assert.deepEqual(tensors.get('z.weight')!.data, a.data);
    assert.deepEqual(tensors.get('z.weight')!.shape, [2, 3]);
    assert.equal(metadata.format, 'pt');
  });

  it('reads F16, BF16, F64 and integer tensors as float32', () => {
    const bytes = handMade([
      // F16: 1.0 = 0x3c00, -2.0 = 0xc000, 65504 = 0x7bff, smallest subnormal 0x0001 = 2^-24
      { name: 'h', dtype: 'F16', shape: [4], bytes: [0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00] },
      // BF16: 1.0 = 0x3f80, -0.5 = 0xbf00
      { name: 'b', dtype: 'BF16', shape: [2], bytes: [0x80, 0x3f, 0x00, 0xbf] },
      { name: 'd', dtype: 'F64', shape: [1], bytes: [...new Uint8Array(Float64Array.from([0.1]).buffer)] },
      { name: 'i', dtype: 'I64', shape: [1], bytes: [0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff] },
    ]);
    const { tensors } = parseSafetensors(bytes);
    assert.deepEqual(Array.from(tensors.get('h')!.data), [1, -2, 65504, 2 ** -24]);
    assert.deepEqual(Array.from(tensors.get('b')!.data), [1, -0.5]);
    assert.equal(tensors.get('d')!.data[0], Math.fround(0.1));
    assert.equal(tensors.get('i')!.data[0], -3);
    assert.equal(tensors.get('h')!.dtype, 'F16');
  });

  it('rejects damaged files with a specific message', () => {
    assert.throws(() => parseSafetensors(new Uint8Array(4)), /too short/);
    const big = new Uint8Array(16);
    new DataView(big.buffer).setBigUint64(0, 1000n, true);
    assert.throws(() => parseSafetensors(big), /header length 1000/);
    const bad = handMade([{ name: 'x', dtype: 'F32', shape: [3], bytes: [0, 0, 0, 0] }]);
    assert.throws(
      () => parseSafetensors(bad),
      (e: Error) => e instanceof SafetensorsError && /tensor 'x': data_offsets/.test(e.message),
    );
    const unknown = handMade([{ name: 'q', dtype: 'Q4', shape: [1], bytes: [0] }]);
    assert.throws(() => parseSafetensors(unknown), /unsupported dtype Q4/);
  });

  it('writes atomically and loads into tensors on a backend', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'uxnet-st-'));
    try {
      const path = join(dir, 'w.safetensors');
      await saveSafetensors(path, new Map([['w', tensor([1, 2, 3, 4], [2, 2])]]));
      assert.deepEqual(await readdir(dir), ['w.safetensors'], 'no temporary file left behind');
      const m = await loadSafetensors(path);
      assert.deepEqual(Array.from(await m.get('w')!.data()), [1, 2, 3, 4]);
      await assert.rejects(readSafetensorsFile(join(dir, 'missing.safetensors')), /cannot read .*ENOENT/);
      await assert.rejects(writeSafetensorsFile(join(dir, 'no', 'such', 'dir.safetensors'), []), /ENOENT/);
      assert.deepEqual(await readdir(dir), ['w.safetensors']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('float16 weights', () => {
  it('rounds to nearest even, keeps subnormals, and reads back what it wrote', async () => {
    const { floatToHalf } = await import('../../src/io/safetensors.js');
    assert.equal(floatToHalf(1), 0x3c00);
    assert.equal(floatToHalf(-2), 0xc000);
    assert.equal(floatToHalf(65504), 0x7bff);
    assert.equal(floatToHalf(2 ** -24), 0x0001);
    assert.equal(floatToHalf(2 ** -26), 0x0000, 'below half the smallest subnormal rounds to zero');
    assert.equal(floatToHalf(1 + 2 ** -11), 0x3c00, 'a tie rounds to the even mantissa');
    assert.equal(floatToHalf(1 + 3 * 2 ** -11), 0x3c02, 'a tie rounds up to the even mantissa');
    const data = Float32Array.from([0.1, -3.14159, 1e-5, 1234.5, 0]);
    const bytes = serializeSafetensors([['w', { shape: [5], data }]], undefined, { dtype: 'F16' });
    const back = parseSafetensors(bytes).tensors.get('w')!;
    assert.equal(back.dtype, 'F16');
    for (let i = 0; i < data.length; i++) assert.ok(Math.abs(back.data[i]! - data[i]!) <= Math.abs(data[i]!) * 2 ** -11 + 2 ** -25, `value ${i}`);
  });

  it('keeps a tensor that does not fit float16 as F32 in an F16 file, exactly, beside F16 ones', () => {
    // A trained TransBTS has BatchNorm running variances near 5e7; they must survive an F16 model folder.
    const big = Float32Array.from([47726020, 1.5]);
    const inf = Float32Array.from([0.25, Number.POSITIVE_INFINITY]);
    const small = Float32Array.from([0.5, -65504]);
    const bytes = serializeSafetensors(
      [
        ['bn.running_var', { shape: [2], data: big }],
        ['w', { shape: [2], data: small }],
        ['odd', { shape: [2], data: inf }],
      ],
      undefined,
      { dtype: 'F16' },
    );
    const back = parseSafetensors(bytes).tensors;
    assert.deepEqual([...back.keys()], ['bn.running_var', 'w', 'odd'], 'order kept');
    assert.equal(back.get('bn.running_var')!.dtype, 'F32');
    assert.deepEqual([...back.get('bn.running_var')!.data], [47726020, 1.5]);
    assert.equal(back.get('w')!.dtype, 'F16');
    assert.deepEqual([...back.get('w')!.data], [0.5, -65504]);
    assert.equal(back.get('odd')!.dtype, 'F32');
    assert.deepEqual([...back.get('odd')!.data], [0.25, Number.POSITIVE_INFINITY]);
    // 8 + header, then 8 + 4 + 8 data bytes.
    const headerLen = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    assert.equal(bytes.byteLength, 8 + headerLen + 20);
  });
});
