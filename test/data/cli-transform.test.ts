import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { registerTransform, runTransform } from '../../src/cli/commands/transform.js';
import { UserError } from '../../src/cli/errors.js';
import { decodeFloat32, decodeRaw, readNiftiFile } from '../../src/io/nifti/index.js';
import { FIXTURES } from './fixture-tensors.js';
import { countDiff, maxAbsDiff, stored, TDIR, tmanifest } from './monai-fixtures.js';

describe('uxnet transform', () => {
  it('writes the FLARE val chain of an oblique LPS case as MONAI would (image, label, affine, meta.json)', async () => {
    const out = mkdtempSync(join(tmpdir(), 'uxnet-transform-'));
    try {
      const c = 'synth_lps_oblique';
      const program = new Command().exitOverride();
      registerTransform(program);
      await program.parseAsync([
        'node',
        'uxnet',
        'transform',
        '-i',
        join(TDIR, 'inputs', `${c}_image.nii.gz`),
        '--label',
        join(TDIR, 'inputs', `${c}_label.nii.gz`),
        '--preset',
        'flare',
        '--stage',
        'val',
        '-o',
        out,
      ]);
      assert.deepEqual(readdirSync(out).sort(), ['image.nii.gz', 'label.nii.gz', 'meta.json']);
      const pm = tmanifest.cases[c].presets.flare;
      const last = pm.steps.at(-1);
      const img = await readNiftiFile(join(out, 'image.nii.gz'));
      const lab = await readNiftiFile(join(out, 'label.nii.gz'));
      assert.equal(img.datatype.name, 'float32');
      assert.equal(lab.datatype.name, 'uint8');
      assert.deepEqual(img.shape, pm.final_shape.slice(1));
      assert.ok(maxAbsDiff(decodeFloat32(img), stored(c, last.image).data as Float32Array) <= 4e-7);
      assert.ok(countDiff(decodeRaw(lab) as Uint8Array, stored(c, last.label).data as Uint8Array) === 0);
      for (let r = 0; r < 4; r++)
        for (let k = 0; k < 4; k++) {
          assert.ok(Math.abs(img.affine[r * 4 + k]! - last.affine[r][k]) <= 2e-6, `image affine [${r}][${k}]`);
          assert.ok(Math.abs(lab.affine[r * 4 + k]! - last.affine[r][k]) <= 2e-6, `label affine [${r}][${k}]`);
        }
      const meta = JSON.parse(readFileSync(join(out, 'meta.json'), 'utf8'));
      assert.deepEqual(meta.foreground, { start: pm.crop_box.box_start, end: pm.crop_box.box_end });
      assert.deepEqual(
        meta.steps.map((s: { op: string }) => s.op),
        ['spacing', 'orientation', 'scaleIntensityRange', 'cropForeground'],
      );
      assert.deepEqual(
        meta.steps.map((s: { image_shape: number[] }) => s.image_shape),
        pm.steps.slice(1, -1).map((s: { image: { shape: number[] } }) => s.image.shape.slice(1)),
      );
      assert.deepEqual(meta.steps[0].image_shape, pm.steps[1].details.output_shape);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('bad input, unknown preset and the train stage are user errors, and nothing is written', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'uxnet-transform-'));
    const out = join(parent, 'out');
    const good = join(TDIR, 'inputs', 'synth_sag_permuted_image.nii.gz');
    const cases: [Partial<Parameters<typeof runTransform>[0]>, RegExp][] = [
      [{ input: join(FIXTURES, 'nifti', 'bad_truncated_data.nii') }, /image: .*bad_truncated_data\.nii: header declares 420 bytes/],
      [{ input: join(FIXTURES, 'nifti', 'missing.nii.gz') }, /no such file/],
      [{ input: good, label: join(FIXTURES, 'nifti', 'bad_gzip_crc.nii.gz') }, /label: .*gzip checksum mismatch/],
      [{ input: good, preset: 'nope' }, /unknown preset 'nope'/],
      [{ input: good, stage: 'train' }, /only 'val'/],
    ];
    try {
      for (const [o, msg] of cases) {
        await assert.rejects(runTransform({ preset: 'feta', stage: 'val', output: out, input: good, ...o }), (e: unknown) => {
          assert.ok(e instanceof UserError, String(e));
          assert.match((e as Error).message, msg);
          return true;
        });
        assert.equal(existsSync(out), false, 'no output directory for a failed run');
      }
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });
});
