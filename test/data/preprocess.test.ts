import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runPreprocess } from '../../src/cli/commands/preprocess.js';
import { UserError } from '../../src/cli/errors.js';
import { discoverDataset } from '../../src/data/dataset.js';
import { readCached } from '../../src/data/cache.js';
import { TDIR } from './monai-fixtures.js';

const CASES = ['hippocampus_221', 'hippocampus_243', 'synth_lps_oblique', 'synth_sag_permuted'];

function makeDataset(layout: 'folders' | 'nnunet'): string {
  const root = mkdtempSync(join(tmpdir(), 'uxnet-ds-'));
  mkdirSync(join(root, 'imagesTr'));
  mkdirSync(join(root, 'labelsTr'));
  for (const c of CASES) {
    copyFileSync(join(TDIR, 'inputs', `${c}_image.nii.gz`), join(root, 'imagesTr', layout === 'nnunet' ? `${c}_0000.nii.gz` : `${c}.nii.gz`));
    copyFileSync(join(TDIR, 'inputs', `${c}_label.nii.gz`), join(root, 'labelsTr', `${c}.nii.gz`));
  }
  if (layout === 'nnunet') {
    writeFileSync(
      join(root, 'dataset.json'),
      JSON.stringify({
        modality: { 0: 'MRI' },
        labels: { 0: 'background', 1: 'a', 2: 'b', 3: 'c' },
        training: CASES.map((c) => ({ image: `./imagesTr/${c}.nii.gz`, label: `./labelsTr/${c}.nii.gz` })),
      }),
    );
  }
  return root;
}

describe('datasets and uxnet preprocess', () => {
  it('discovers the folder layout and the MSD dataset.json layout with _0000 channel files', () => {
    for (const layout of ['folders', 'nnunet'] as const) {
      const root = makeDataset(layout);
      try {
        const ds = discoverDataset(root);
        assert.deepEqual(ds.cases.map((c) => c.id).sort(), CASES);
        assert.ok(ds.cases.every((c) => c.images.length === 1 && c.label && c.split === 'train'));
        if (layout === 'nnunet') assert.deepEqual(ds.modalities, ['MRI']);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    }
  });

  it('feta: caches every case (same arrays as the chain), writes plan.json, and resumes from the cache', async () => {
    const root = makeDataset('folders');
    try {
      const { planPath, entries } = await runPreprocess({ dataset: root, preset: 'feta', plain: true });
      const plan = JSON.parse(readFileSync(planPath, 'utf8'));
      assert.equal(plan.name, 'feta');
      assert.equal(plan.cache.length, 4);
      const e = entries.find((x) => x.id === 'synth_lps_oblique')!;
      assert.deepEqual(e.shape, [43, 37, 12]);
      assert.deepEqual(e.foreground, { start: [3, 3, 1], end: [46, 40, 13] });
      const s = await readCached(e);
      assert.deepEqual(s.image.shape, [43, 37, 12]);
      assert.ok(s.label!.data instanceof Uint8Array);
      const again = await runPreprocess({ dataset: root, preset: 'feta', plain: true });
      assert.deepEqual(again.entries, entries);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('auto: plans from the fingerprint (MRI -> per-image z-score; median spacing)', async () => {
    const root = makeDataset('nnunet');
    try {
      const { planPath } = await runPreprocess({ dataset: root, preset: 'auto', plain: true });
      const plan = JSON.parse(readFileSync(planPath, 'utf8'));
      assert.equal(plan.fingerprint.cases, 4);
      assert.deepEqual(plan.fingerprint.labelValues, [0, 1, 2, 3]);
      assert.equal(plan.numClasses, 4);
      assert.deepEqual(
        plan.val.map((s: { op: string }) => s.op),
        ['spacing', 'orientation', 'zScore'],
      );
      // Median of spacings (1,1,1),(1,1,1),(0.8,0.8,2.5),(0.9,0.9,3.0) per axis.
      plan.val[0].pixdim.forEach((p: number, k: number) => assert.ok(Math.abs(p - [0.95, 0.95, 1.75][k]!) < 1e-5, `pixdim ${k}: ${p}`));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('a missing dataset is a user error', async () => {
    await assert.rejects(
      runPreprocess({ dataset: '/no/such/dir', preset: 'feta', plain: true }),
      (e: unknown) => e instanceof UserError && /not a directory/.test((e as Error).message),
    );
  });
});
