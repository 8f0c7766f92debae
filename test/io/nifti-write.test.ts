import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { compactLabelArray, decodeFloat64, decodeRaw, encodeNifti, parseNifti, readNiftiFile, writeNiftiFile } from '../../src/io/nifti/index.js';
import { mat4 } from '../../src/io/nifti/mat4.js';
import * as geometry from '../../src/io/nifti/geometry.js';
import { FIXTURES } from '../data/fixture-tensors.js';

const DIR = join(FIXTURES, 'nifti');

describe('NIfTI writer', () => {
  it('round-trips every integer and float dtype, C order preserved', () => {
    const shape = [4, 3, 2];
    const affine = mat4([
      [2, 0, 0, -1],
      [0, 3, 0, 5],
      [0, 0, 4, 7],
      [0, 0, 0, 1],
    ]);
    const arrays = [
      Uint8Array.from({ length: 24 }, (_, i) => i * 10),
      Int8Array.from({ length: 24 }, (_, i) => i - 12),
      Int16Array.from({ length: 24 }, (_, i) => i * 1000 - 12000),
      Uint16Array.from({ length: 24 }, (_, i) => i * 2000),
      Int32Array.from({ length: 24 }, (_, i) => i * 1e8 - 1e9),
      Float32Array.from({ length: 24 }, (_, i) => i / 3),
      Float64Array.from({ length: 24 }, (_, i) => i / 7),
    ];
    for (const data of arrays) {
      for (const version of [1, 2] as const) {
        const img = parseNifti(encodeNifti({ data, shape, affine, version }));
        assert.deepEqual(img.shape, shape);
        assert.equal(img.header.version, version);
        assert.deepEqual(Array.from(decodeRaw(img) as ArrayLike<number>), Array.from(data), `${data.constructor.name} v${version}`);
        assert.deepEqual(Array.from(img.affine), Array.from(affine));
        assert.equal(img.slope, 1);
      }
    }
  });

  it('writes disk order x-fastest (voxel (1,0,0) is the second stored value)', () => {
    const data = Float32Array.from({ length: 24 }, (_, i) => i); // C order over (4,3,2): (1,0,0) = 6
    const bytes = encodeNifti({ data, shape: [4, 3, 2], affine: mat4() });
    const disk = new Float32Array(bytes.buffer.slice(352, 352 + 96));
    assert.deepEqual(Array.from(disk.slice(0, 4)), [0, 6, 12, 18]);
  });

  it('keeps the source sform and qform (codes and values) when the geometry is unchanged', async () => {
    for (const name of ['xf_both_differ.nii', 'xf_qform_qfac_neg.nii', 'xf_oblique.nii.gz', 'xf_lps_flipped.nii']) {
      const src = await readNiftiFile(join(DIR, name));
      const out = parseNifti(encodeNifti({ data: new Uint8Array(105), shape: src.shape, affine: src.affine, source: src.header }));
      for (const k of ['sform_code', 'qform_code', 'quatern_b', 'quatern_c', 'quatern_d', 'qoffset_x', 'qoffset_y', 'qoffset_z'] as const) {
        assert.equal(out.header[k], src.header[k], `${name} ${k}`);
      }
      assert.deepEqual(out.header.srow_x, src.header.srow_x);
      assert.deepEqual(out.header.pixdim.slice(0, 4), src.header.pixdim.slice(0, 4));
      assert.deepEqual(Array.from(out.affine), Array.from(src.affine));
      assert.equal(out.datatype.name, 'uint8');
    }
  });

  it('encodes a new oblique affine into both sform and a consistent qform', () => {
    const c = Math.cos(0.3),
      s = Math.sin(0.3);
    const affine = mat4([
      [-0.8 * c, -0.9 * s, 0, 10],
      [-0.8 * s, 0.9 * c, 0, -4],
      [0, 0, 2.5, 3],
      [0, 0, 0, 1],
    ]);
    const img = parseNifti(encodeNifti({ data: new Float32Array(8), shape: [2, 2, 2], affine }));
    assert.equal(img.header.sform_code, 2);
    assert.equal(img.header.qform_code, 2);
    const q = { ...img.header, sform_code: 0 };
    const { qformMatrix } = geometry;
    const qa = qformMatrix(q);
    for (let i = 0; i < 12; i++) assert.ok(Math.abs(qa[i]! - affine[i]!) < 1e-6, `qform entry ${i}: ${qa[i]} vs ${affine[i]}`);
  });

  it('writes .nii.gz compressed and atomically (no temp file left)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nifti-'));
    try {
      const path = join(dir, 'x.nii.gz');
      const data = Float32Array.from({ length: 60 }, (_, i) => Math.sin(i));
      await writeNiftiFile(path, { data, shape: [5, 4, 3], affine: mat4() });
      const raw = readFileSync(path);
      assert.equal(raw[0], 0x1f);
      assert.equal(gunzipSync(raw).length, 352 + 240);
      assert.deepEqual(readdirSync(dir), ['x.nii.gz']);
      const back = await readNiftiFile(path);
      assert.deepEqual(Array.from(decodeFloat64(back)), Array.from(data));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects a shape that does not match the data', () => {
    assert.throws(() => encodeNifti({ data: new Float32Array(7), shape: [2, 2, 2], affine: mat4() }), /needs 8 values, got 7/);
  });

  it('compactLabelArray picks the smallest exact integer type', () => {
    assert.ok(compactLabelArray(new Float32Array([0, 1, 2, 255])) instanceof Uint8Array);
    assert.ok(compactLabelArray(new Float32Array([0, 1, 256])) instanceof Int16Array);
    assert.ok(compactLabelArray(new Float32Array([-1, 3])) instanceof Int16Array);
    assert.ok(compactLabelArray(new Float32Array([0, 70000])) instanceof Int32Array);
    assert.ok(compactLabelArray(new Float32Array([0, 0.5])) instanceof Float32Array);
  });
});
