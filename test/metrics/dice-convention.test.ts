/**
 * One Dice convention: training validation (dicePerClass), `uxnet demo` and `uxnet evaluate` give the
 * same per-class values on one hand-computed case - a class present on both sides, one only in the
 * ground truth (Dice 0), one on neither side (NaN, left out of means) - and take spacing from the same
 * place (the ground truth's header), so demo's HD95 equals evaluate's.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { writeNiftiFile } from '../../src/io/nifti/index.js';
import { mat4 } from '../../src/io/nifti/mat4.js';
import { UXNet } from '../../src/models/uxnet.js';
import { resolveNetwork } from '../../src/models/registry.js';
import { dicePerClass, exportModelFolder, type TrainPlan } from '../../src/train/run.js';
import type { TrainConfig } from '../../src/train/config.js';
import { runDemo } from '../../src/cli/commands/demo.js';
import { runEvaluate } from '../../src/cli/commands/evaluate.js';
import '../../src/backends/index.js';

const SHAPE: [number, number, number] = [8, 6, 6];
const N = 8 * 6 * 6;
const sink = () => new Writable({ write: (_c, _e, cb) => cb() });

describe('one Dice convention: training validation, demo and evaluate agree', () => {
  let dir: string;
  // Ground truth: class 1 a 2x2x2 cube (8 voxels), class 2 a 1x2x2 block (4 voxels), class 3 nowhere.
  const gt = new Uint8Array(N);
  for (let i = 0; i < 8; i++)
    for (let j = 0; j < 6; j++)
      for (let k = 0; k < 6; k++) {
        const v = (i * 6 + j) * 6 + k;
        if (i >= 2 && i < 4 && j >= 2 && j < 4 && k >= 2 && k < 4) gt[v] = 1;
        else if (i === 6 && j < 2 && k < 2) gt[v] = 2;
      }
  // The model below predicts class 1 everywhere: Dice(1) = 2*8/(288+8), Dice(2) = 0 (ground truth
  // only), Dice(3) = NaN (neither side).
  const expected = [16 / 296, 0, NaN];

  before(async () => {
    process.env.UXNET_QUIET = '1';
    dir = await mkdtemp(join(tmpdir(), 'uxnet-dice-'));
    await mkdir(join(dir, 'data', 'imagesTr'), { recursive: true });
    await mkdir(join(dir, 'data', 'labelsTr'), { recursive: true });
    // The label's header says 2 mm along i; the image's affine says 1 mm: spacing must come from the label.
    await writeNiftiFile(join(dir, 'data', 'labelsTr', 'c0.nii.gz'), {
      data: gt,
      shape: SHAPE,
      affine: mat4([
        [2, 0, 0, 0],
        [0, 1, 0, 0],
        [0, 0, 1, 0],
        [0, 0, 0, 1],
      ]),
    });
    await writeNiftiFile(join(dir, 'data', 'imagesTr', 'c0.nii.gz'), {
      data: new Float32Array(N).map((_, i) => i % 7),
      shape: SHAPE,
      affine: mat4([
        [1, 0, 0, 0],
        [0, 1, 0, 0],
        [0, 0, 1, 0],
        [0, 0, 0, 1],
      ]),
    });
    // A 4-class network whose output block has zero weights and bias favouring class 1.
    const model = new UXNet({ inChans: 1, outChans: 4, featSize: [4, 8, 16, 32], hiddenSize: 16, depths: [1, 1, 1, 1] }, { seed: 1 });
    const params = new Map(model.namedParameters());
    const w = params.get('out.conv.conv.weight')!;
    await model.loadStateDictAsync(
      new Map([
        ['out.conv.conv.weight', { shape: w.shape, data: new Float32Array(w.size) }],
        ['out.conv.conv.bias', { shape: [4], data: new Float32Array([0, 10, 0, 0]) }],
      ]),
      { strict: false },
    );
    const plan = {
      name: 'test',
      roiSize: [32, 32, 32],
      val: [],
      train: [],
      dataset: { root: dir, layout: 'folders', modalities: ['MRI'], labels: null, cases: 1 },
    } as unknown as TrainPlan;
    await exportModelFolder(join(dir, 'model'), model, resolveNetwork(model.config), plan, { dataset: join(dir, 'data'), name: 'dice-test' } as TrainConfig, {
      split: { train: [], val: ['c0'] },
    });
    model.dispose();
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('gives [16/296, 0, NaN] in all three, and the same HD95', async () => {
    // Training validation, on the arrays themselves.
    const train = dicePerClass(new Uint8Array(N).fill(1), gt, 4);
    assert.deepEqual(train.slice(0, 2), expected.slice(0, 2));
    assert.ok(Number.isNaN(train[2]));

    await runDemo({ model: join(dir, 'model'), dataset: join(dir, 'data'), output: join(dir, 'demo') }, () => {});
    const demo = JSON.parse(await readFile(join(dir, 'demo', 'metrics.json'), 'utf8'));
    const demoCase = demo.cases[0];
    assert.deepEqual(
      demoCase.classes.map((c: { dice: number | null }) => c.dice),
      [16 / 296, 0, null],
    );
    assert.deepEqual(demoCase.spacing, [2, 1, 1], 'spacing from the label header');

    await runEvaluate({
      predDir: join(dir, 'demo', 'c0.nii.gz'),
      gtDir: join(dir, 'data', 'labelsTr', 'c0.nii.gz'),
      output: join(dir, 'eval'),
      classes: '1,2,3',
      out: sink(),
      err: sink(),
      plain: true,
    });
    const ev = JSON.parse(await readFile(join(dir, 'eval.json'), 'utf8'));
    const evCase = ev.cases[0];
    assert.deepEqual(
      evCase.classes.map((c: { dice: number | null }) => c.dice),
      [16 / 296, 0, null],
    );
    assert.deepEqual(evCase.spacing, demoCase.spacing);
    assert.deepEqual(
      evCase.classes.map((c: { hd95: number | null }) => c.hd95),
      demoCase.classes.map((c: { hd95: number | null }) => c.hd95),
    );
    // Means leave the NaN class out in both.
    assert.equal(ev.perClass[2].dice.count, 0);
    assert.equal(demo.perClass[2].dice.count, 0);
  });
});
