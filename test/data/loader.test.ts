import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runPreprocess } from '../../src/cli/commands/preprocess.js';
import { PatchLoader } from '../../src/data/loader/index.js';
import { loadPreset } from '../../src/data/presets.js';
import { TDIR } from './monai-fixtures.js';

describe('PatchLoader (worker threads, prefetch)', () => {
  it('serves seeded random patches from the cache; same seed -> same patches for 1 or 2 workers', async () => {
    const root = mkdtempSync(join(tmpdir(), 'uxnet-loader-'));
    try {
      mkdirSync(join(root, 'imagesTr'));
      mkdirSync(join(root, 'labelsTr'));
      for (const c of ['synth_lps_oblique', 'hippocampus_243']) {
        copyFileSync(join(TDIR, 'inputs', `${c}_image.nii.gz`), join(root, 'imagesTr', `${c}.nii.gz`));
        copyFileSync(join(TDIR, 'inputs', `${c}_label.nii.gz`), join(root, 'labelsTr', `${c}.nii.gz`));
      }
      const { entries } = await runPreprocess({ dataset: root, preset: 'flare', plain: true });
      const tail = loadPreset('flare').train.map((s) => (s.op === 'randCropByPosNegLabel' ? { ...s, spatialSize: [16, 16, 16] as [number, number, number] } : s));
      const take = async (workers: number) => {
        const l = new PatchLoader(entries, tail, { workers, seed: 3 });
        try {
          const out = [];
          for (let i = 0; i < 4; i++) out.push(await l.next());
          return out;
        } finally {
          await l.close();
        }
      };
      const a = await take(1);
      const b = await take(2);
      assert.equal(a.length, 4);
      for (const patches of a) {
        assert.equal(patches.length, 2);
        for (const p of patches) {
          assert.deepEqual(p.shape, [16, 16, 16]);
          assert.equal(p.image.length, 4096);
          assert.equal(p.label!.length, 4096);
        }
      }
      assert.deepEqual(a.map((x) => x.map((p) => Array.from(p.image.subarray(0, 64)))), b.map((x) => x.map((p) => Array.from(p.image.subarray(0, 64)))));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
