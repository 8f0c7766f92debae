import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSyntheticDataset } from '../helpers/synthetic-dataset.js';
import { flipAxes, softmaxChannels, argmaxChannels, mirrorSets } from '../../src/infer/predict.js';
import { readNiftiFile } from '../../src/io/nifti/index.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { runTraining } from '../../src/train/run.js';
import '../../src/backends/index.js';

import { uxnet as runCli } from '../helpers/cli.js';

const uxnet = (...args: string[]) => runCli(args, { env: { UXNET_QUIET: '1' } });

describe('prediction helpers', () => {
  it('flipAxes is an involution and flips the named axes', () => {
    const a = Float32Array.from({ length: 2 * 2 * 3 * 4 }, (_, i) => i);
    const f = flipAxes(a, 2, [2, 3, 4], [0, 2]);
    // channel 1, x=0,y=1,z=0 reads x=1,y=1,z=3
    assert.equal(f[24 + (0 * 3 + 1) * 4 + 0], a[24 + (1 * 3 + 1) * 4 + 3]);
    assert.deepEqual(flipAxes(f, 2, [2, 3, 4], [0, 2]), a);
  });
  it('TTA mirrors only along the axes the model was trained to flip', () => {
    assert.deepEqual(mirrorSets([0]), [[], [0]]);
    assert.deepEqual(mirrorSets([2, 0, 0]), [[], [0], [2], [0, 2]]);
    assert.equal(mirrorSets([0, 1, 2]).length, 8);
  });
  it('softmax and argmax over channels', () => {
    const a = Float32Array.from([0, 1, 5, 2, 1, 5]); // 2 channels x 3 voxels
    softmaxChannels(a, 2);
    assert.ok(Math.abs(a[0]! + a[3]! - 1) < 1e-6);
    assert.ok(Math.abs(a[0]! - 1 / (1 + Math.E ** 2)) < 1e-6);
    assert.deepEqual(Array.from(argmaxChannels(a, 2)), [1, 0, 0]); // tie at voxel 2 goes to class 0
  });
});

describe('uxnet predict', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'uxnet-predict-'));
    await writeSyntheticDataset(join(dir, 'data'), 4);
    process.env.UXNET_QUIET = '1';
    await runTraining(
      resolveTrainConfig(
        {},
        {
          dataset: join(dir, 'data'),
          outDir: join(dir, 'run'),
          preset: 'auto',
          network: { featSize: [4, 8, 16, 32], hiddenSize: 16, depths: [1, 1, 1, 1] },
          roiSize: [32, 32, 32],
          steps: 1,
          valEvery: 1,
          workers: 1,
        },
      ),
      { log: () => {} },
    );
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes labels on the input grid (same shape and affine), probabilities and an overlay', async () => {
    const input = join(dir, 'data', 'imagesTr', 'case_001.nii.gz');
    const out = join(dir, 'pred', 'case_001.nii.gz');
    const r = uxnet('predict', '-i', input, '-o', out, '-m', join(dir, 'run', 'model'), '--png', '--probabilities', '--tta');
    assert.equal(r.status, 0, r.stderr);
    const src = await readNiftiFile(input);
    const pred = await readNiftiFile(out);
    assert.deepEqual(pred.shape, src.shape);
    assert.deepEqual(Array.from(pred.affine), Array.from(src.affine));
    assert.equal(pred.datatype.name, 'uint8', 'labels are written as a compact integer type');
    assert.ok(existsSync(join(dir, 'pred', 'case_001.png')));
    const probs = await readNiftiFile(join(dir, 'pred', 'case_001_probabilities.nii.gz'));
    assert.deepEqual(probs.shape, [...src.shape, 3]);
  });

  it('segments a folder, naming outputs after the cases', () => {
    const r = uxnet('predict', '-i', join(dir, 'data', 'imagesTr'), '-o', join(dir, 'predDir'), '-m', join(dir, 'run', 'model'));
    assert.equal(r.status, 0, r.stderr);
    for (const id of ['case_000', 'case_003']) assert.ok(existsSync(join(dir, 'predDir', `${id}.nii.gz`)));
  });

  it('bad paths give one clear line and a non-zero exit', () => {
    for (const args of [
      ['-i', join(dir, 'missing.nii.gz'), '-o', join(dir, 'x.nii.gz'), '-m', join(dir, 'run', 'model')],
      ['-i', join(dir, 'data', 'imagesTr', 'case_000.nii.gz'), '-o', join(dir, 'x.nii.gz'), '-m', dir],
      ['-i', join(dir, 'data', 'imagesTr', 'case_000.nii.gz'), '-o', join(dir, 'x.txt'), '-m', join(dir, 'run', 'model')],
    ]) {
      const r = uxnet('predict', ...args);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /^uxnet: .+/m);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
  });
});
