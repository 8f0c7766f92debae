import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeFloat32, decodeFloat64, decodeRaw, NiftiError, parseNifti, readNiftiFile, type NiftiErrorCode } from '../../src/io/nifti/index.js';
import { FIXTURES, fixtureTensors, num, readJson, sameValue } from '../data/fixture-tensors.js';

const DIR = join(FIXTURES, 'nifti');
const manifest = readJson('nifti/manifest.json');
const files = manifest.files as Record<string, any>;
const expected = fixtureTensors('nifti/expected.safetensors');

function assertAffine(actual: Float64Array, rows: number[][], tol: number, what: string): void {
  for (let r = 0; r < 4; r++)
    for (let c = 0; c < 4; c++) {
      const a = actual[r * 4 + c]!,
        e = rows[r]![c]!;
      assert.ok(Math.abs(a - e) <= tol, `${what}: affine[${r}][${c}] = ${a}, expected ${e}`);
    }
}

function assertSameArray(actual: ArrayLike<number | bigint>, exp: ArrayLike<number | bigint>, what: string): void {
  assert.equal(actual.length, exp.length, `${what}: length`);
  for (let i = 0; i < exp.length; i++) {
    const a = actual[i]!,
      e = exp[i]!;
    const ok = typeof a === 'bigint' || typeof e === 'bigint' ? a === e : sameValue(a, e);
    if (!ok) assert.fail(`${what}: element ${i} is ${a}, expected ${e}`);
  }
}

const readable = Object.entries(files).filter(([, f]) => f.category === 'good' || f.category === 'quirk');

describe('NIfTI reader: every readable corpus file matches nibabel 5.0 and MONAI 0.9.0', () => {
  it('covers the whole corpus', () => {
    assert.equal(readable.length, 41);
    assert.equal(Object.keys(files).length, 62);
  });
  for (const [name, f] of readable) {
    it(name, async () => {
      const img = await readNiftiFile(join(DIR, name));
      const nib = f.nibabel;
      assert.deepEqual(img.shape, nib.shape, 'shape');
      assert.equal(img.datatype.name, nib.on_disk_dtype, 'dtype');
      assert.equal(img.affineSource, nib.affine_source, 'affine source');
      assertAffine(img.affine, nib.affine, 1e-12, 'nibabel affine');
      assertAffine(img.monaiAffine, f.monai_0_9_0.affine, 1e-12, 'MONAI affine');
      assert.equal(img.slope, num(nib.scaling_applied.slope), 'slope');
      assert.equal(img.inter, num(nib.scaling_applied.inter), 'inter');
      assert.equal(img.header.littleEndian, f.endianness === 'little', 'endianness');
      assertSameArray(decodeRaw(img), expected.get(`${name}:raw`)!.data, 'raw');
      assertSameArray(decodeFloat64(img), expected.get(`${name}:fdata`)!.data, 'fdata');
      assertSameArray(decodeFloat32(img), expected.get(`${name}:monai`)!.data, 'MONAI float32');
      assert.equal(img.extensions.length, nib.extensions.length, 'extension count');
      nib.extensions.forEach((e: any, k: number) => {
        const got = img.extensions[k]!;
        assert.equal(got.code, e.ecode);
        assert.equal(got.data.length, e.esize - 8);
        const content = Buffer.from(e.content_hex, 'hex');
        assert.deepEqual(Buffer.from(got.data.subarray(0, content.length)), content);
        assert.ok(
          got.data.subarray(content.length).every((b) => b === 0),
          'extension padding is zero',
        );
      });
    });
  }

  it('channel-first decoding puts the 4th axis first (frame t is the slowest disk axis)', async () => {
    const img = await readNiftiFile(join(DIR, 'dim4_two_frames.nii'));
    const cf = decodeFloat64(img, { channelFirst: true });
    const ref = expected.get('dim4_two_frames.nii:fdata')!.data as Float64Array; // C order over (7,5,3,2)
    for (let t = 0; t < 2; t++) for (let v = 0; v < 105; v++) assert.equal(cf[t * 105 + v], ref[v * 2 + t]);
  });
});

/** Every bad file must fail with its own, specific reason. */
const BAD: Record<string, NiftiErrorCode> = {
  'bad_zero_length.nii': 'EMPTY',
  'bad_zero_length.nii.gz': 'EMPTY',
  'bad_truncated_header.nii': 'TRUNCATED_HEADER',
  'bad_truncated_data.nii': 'TRUNCATED_DATA',
  'bad_truncated_data.nii.gz': 'TRUNCATED_DATA',
  'bad_magic_garbage.nii': 'BAD_MAGIC',
  'bad_sizeof_hdr.nii': 'BAD_SIZEOF_HDR',
  'bad_datatype.nii': 'BAD_DATATYPE',
  'bad_dim_negative.nii': 'BAD_DIM',
  'bad_dim0_out_of_range.nii': 'BAD_DIM',
  'bad_dim0_zero.nii': 'BAD_DIM',
  'bad_dims_overflow.nii': 'TRUNCATED_DATA',
  'bad_dims_overflow_n2.nii': 'TOO_LARGE',
  'bad_vox_offset_past_eof.nii': 'BAD_VOX_OFFSET',
  'bad_vox_offset_zero.nii': 'BAD_VOX_OFFSET',
  'bad_gzip_corrupt.nii.gz': 'GZIP',
  'bad_gzip_crc.nii.gz': 'GZIP',
  'bad_gzip_truncated.nii.gz': 'GZIP',
};

describe('NIfTI reader: bad files fail with a specific error', () => {
  it('lists every bad file of the corpus', () => {
    const bad = Object.entries(files)
      .filter(([, f]) => f.category === 'bad')
      .map(([n]) => n)
      .sort();
    assert.deepEqual(bad, Object.keys(BAD).sort());
  });
  for (const [name, code] of Object.entries(BAD)) {
    it(`${name} -> ${code}`, async () => {
      await assert.rejects(readNiftiFile(join(DIR, name)), (e: unknown) => {
        assert.ok(e instanceof NiftiError, `expected NiftiError, got ${e}`);
        assert.equal(e.code, code, e.message);
        assert.ok(e.message.includes(name), 'the message names the file');
        return true;
      });
    });
  }
  it('reports the byte counts of truncated data', async () => {
    await assert.rejects(readNiftiFile(join(DIR, 'bad_truncated_data.nii')), /declares 420 bytes .* only 200 are present/);
  });
  it('a missing path is an IO error, not a crash', async () => {
    await assert.rejects(readNiftiFile(join(DIR, 'does-not-exist.nii.gz')), (e: unknown) => e instanceof NiftiError && e.code === 'IO');
  });
});

describe('NIfTI reader: ambiguous files either fail or read exactly as n1_f32_basic.nii', () => {
  const basic = parseNifti(readFileSync(join(DIR, 'n1_f32_basic.nii')));
  for (const [name, f] of Object.entries(files).filter(([, f]) => f.category === 'ambiguous')) {
    it(name, () => {
      const img = parseNifti(readFileSync(join(DIR, name)), name);
      // We read by content, not by name: all three are readable and identical to the basic image.
      assert.deepEqual(img.shape, basic.shape);
      assert.deepEqual(Array.from(img.affine), Array.from(basic.affine));
      assert.deepEqual(decodeFloat64(img), decodeFloat64(basic));
      assert.ok(f.expected === 'ambiguous');
    });
  }
});
