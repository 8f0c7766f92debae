/**
 * `uxnet compare` on crossval run folders made from hand-chosen per-case scores, so every number in
 * the table can be checked by hand: means, sample sds, the exact Wilcoxon p-value, the resource
 * columns; and the refusals (other dataset, other folds, other finished folds) naming the difference.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { summariseCrossval, writeCrossvalSummary, type FoldRecord } from '../../src/train/crossval-summary.js';
import type { Splits } from '../../src/train/crossval.js';
import { compareRuns, pairingProblem } from '../../src/train/compare.js';
import { uxnet, assertUserError } from '../helpers/cli.js';
import { writeNiftiFile } from '../../src/io/nifti/index.js';
import { mat4 } from '../../src/io/nifti/mat4.js';

let dir: string;
const classes = [
  { label: 1, name: 'anterior' },
  { label: 2, name: 'posterior' },
];
const SPLITS: Splits = {
  format: 'uxnet3d-splits/1',
  source: 'seeded',
  seed: 0,
  folds: [
    { train: ['d', 'e', 'f'], val: ['a', 'b', 'c'] },
    { train: ['a', 'b', 'c'], val: ['d', 'e', 'f'] },
  ],
};

/** Prediction seconds per held-out case: fold 0 median 0.5 (mean 0.567), fold 1 median 0.4 (mean 0.867, one slowed case). */
const INFER_SECONDS = [
  [0.3, 0.9, 0.5],
  [0.2, 0.4, 2.0],
];

/** A crossval run folder whose held-out Dice per case are `dice[case] = [class 1, class 2]`. */
async function makeRun(
  name: string,
  dice: Record<string, [number, number]>,
  o: {
    splits?: Splits;
    folds?: number[];
    params?: number;
    macs?: number;
    trainSeconds?: number;
    /** per fold in `folds` order; undefined: a record written before records kept the median */
    stepMedians?: (number | undefined)[];
    /** per fold number, the held-out cases' prediction seconds in split order */
    inferSeconds?: number[][];
    network?: string;
    networkArgs?: Record<string, unknown>;
    patch?: [number, number, number];
    /** per fold in `folds` order: the record's TTA flag (undefined: a record from before it was kept) */
    tta?: (boolean | undefined)[];
  } = {},
): Promise<string> {
  const run = join(dir, name);
  await mkdir(run, { recursive: true });
  const splits = o.splits ?? SPLITS;
  const records: FoldRecord[] = (o.folds ?? [0, 1]).map((k, i) => ({
    fold: k,
    steps: 10,
    trainSeconds: o.trainSeconds ?? 60,
    ...((o.stepMedians ?? [0.4, 0.6])[i] === undefined ? {} : { stepSecondsMedian: (o.stepMedians ?? [0.4, 0.6])[i] }),
    inferenceSeconds: Object.fromEntries(splits.folds[k]!.val.map((c, j) => [c, (o.inferSeconds ?? INFER_SECONDS)[k]?.[j] ?? 0.5])),
    peakRssMB: 1000 + k,
    parameters: o.params ?? 1000,
    network: o.network ?? { featSize: [4, 8, 16, 32], hiddenSize: 16 },
    classes,
    cases: splits.folds[k]!.val.map((c) => ({ caseId: c, dice: dice[c]!, hd95: c === 'a' ? [Infinity, 2] : [1, 2], nsd: [0.9, 0.8] })),
    ...(o.tta?.[i] === undefined ? {} : { tta: o.tta[i] }),
  }));
  const s = summariseCrossval({
    name,
    dataset: '../data',
    datasetName: 'hippo',
    splits,
    records,
    macs: o.macs ?? 5e9,
    patch: o.patch ?? [48, 64, 48],
    config: o.networkArgs ? { network: o.network, networkArgs: o.networkArgs } : {},
  });
  await writeCrossvalSummary(run, s);
  await writeFile(join(run, 'splits.json'), JSON.stringify(splits));
  return run;
}

const base: Record<string, [number, number]> = { a: [0.8, 0.7], b: [0.82, 0.74], c: [0.84, 0.72], d: [0.86, 0.76], e: [0.88, 0.78], f: [0.9, 0.8] };

describe('uxnet compare', () => {
  let A: string, B: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'uxnet-compare-'));
    A = await makeRun('uxnet', base);
    // B is better on every case for class 1 (distinct gains: no ties), worse on 5 of 6 for class 2.
    B = await makeRun(
      'swin',
      {
        a: [0.81, 0.69],
        b: [0.84, 0.73],
        c: [0.87, 0.71],
        d: [0.9, 0.75],
        e: [0.93, 0.77],
        f: [0.96, 0.81],
      },
      // as a real SwinUNETR fold records it: model.json's registry name, the arguments in the recipe
      {
        params: 2_500_000,
        macs: 12e9,
        trainSeconds: 120,
        stepMedians: [1.5, 1.1],
        network: 'swin_unetr',
        networkArgs: { feature_size: 12, depths: [2, 2, 2, 2] },
        patch: [32, 64, 32],
      },
    );
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('computes the table by hand-checkable numbers and the exact Wilcoxon p-value', async () => {
    const c = await compareRuns([A, B]);
    assert.equal(c.cases, 6);
    const [ra, rb] = c.runs;
    // run A, class 1: 0.80..0.90 step 0.02 -> mean 0.85, sd = 0.02 * sqrt(3.5) (sd of 0..5 is sqrt(3.5))
    assert.ok(Math.abs(ra!.perClass[0]!.dice.mean - 0.85) < 1e-12);
    assert.ok(Math.abs(ra!.perClass[0]!.dice.sd - 0.02 * Math.sqrt(3.5)) < 1e-12);
    // per-case mean Dice of A: (0.80+0.70)/2 = 0.75, ... mean of the six = (0.85 + 0.75) / 2 = 0.80
    assert.ok(Math.abs(ra!.meanDice.mean - 0.8) < 1e-12);
    // HD95 class 1: case a is infinite (one side empty): counted apart, mean over the other five = 1
    assert.equal(ra!.perClass[0]!.hd95.infinite, 1);
    assert.equal(ra!.perClass[0]!.hd95.mean, 1);
    assert.equal(ra!.perClass[0]!.wilcoxon, null, 'the first run is the reference');
    // class 1: six positive differences, no ties -> R- = 0, exact p = 2 / 2^6
    assert.equal(rb!.perClass[0]!.wilcoxon!.method, 'exact');
    assert.equal(rb!.perClass[0]!.wilcoxon!.statistic, 0);
    assert.equal(rb!.perClass[0]!.wilcoxon!.pValue, 2 / 64);
    // class 2: d = -0.01 x5 (ties) and +0.01 (f) -> all |d| tied at rank 3.5, R+ = 3.5; permutation test:
    // P(R+ <= 3.5) = P(at most one positive sign of six) = 7/64, two-sided 14/64
    assert.equal(rb!.perClass[1]!.wilcoxon!.method, 'permutation');
    assert.ok(Math.abs(rb!.perClass[1]!.wilcoxon!.pValue - 14 / 64) < 1e-12);
    assert.equal(rb!.network, 'SwinUNETR feature_size=12, depths=2/2/2/2');
    assert.equal(ra!.network, 'UX-Net 4/8/16/32, hidden 16');
    assert.equal(rb!.parameters, 2_500_000);
    assert.equal(rb!.macs, 12e9);
    assert.equal(rb!.trainSecondsPerFold, 120);
    // the fastest fold's median step time
    assert.equal(rb!.stepSeconds, 1.1);
    assert.equal(ra!.stepSeconds, 0.4);
    // the fastest fold's median seconds per volume: fold 1's 0.4 (its mean, 0.867, carries the slowed case)
    assert.equal(rb!.inferenceSeconds, 0.4);
    assert.equal(rb!.peakRssMB, 1001);
  });

  it('writes Markdown, CSV, JSON and the plot through the CLI', async () => {
    const out = join(dir, 'cmp');
    const r = uxnet(['compare', A, B, '-o', out]);
    assert.equal(r.status, 0, r.stderr);
    const md = await readFile(join(out, 'compare.md'), 'utf8');
    // per-case means 0.75, 0.78, 0.78, 0.81, 0.83, 0.85: squared deviations sum to 0.0068, sd = sqrt(0.0068 / 5) = 0.0369
    assert.match(md, /\| uxnet \| UX-Net 4\/8\/16\/32, hidden 16 \| 0\.8500 ± 0\.0374 \| 0\.7500 ± 0\.0374 \| 0\.8000 ± 0\.0369 \|/);
    assert.match(md, /\| swin \| 0\.0313 \| 0\.2188 \|/);
    assert.match(md, /\| 2\.50 \| 12\.00 \| 2\.0 \| 1\.10 \| 0\.40 \| 1001 \|/);
    const csv = (await readFile(join(out, 'compare.csv'), 'utf8')).trim().split('\n');
    assert.equal(csv.length, 1 + 2 * 3);
    assert.match(csv[4]!, /^swin,"SwinUNETR feature_size=12, depths=2\/2\/2\/2",1,anterior,/);
    // the two runs trained at different patches: the note names each
    assert.match(md, /at each run's training patch \(uxnet 48×64×48, swin 32×64×32\)/);
    // (the quoted network field holds a comma: replace it before splitting)
    assert.ok(Math.abs(Number(csv[4]!.replace(/^swin,"[^"]*",/, 'swin,N,').split(',')[4]) - 0.885) < 1e-12, 'mean of 0.81..0.96');
    assert.match(csv[4]!, /,0\.03125,2500000,12000000000,120,1\.1,0\.4,1001$/);
    const json = JSON.parse(await readFile(join(out, 'compare.json'), 'utf8'));
    assert.deepEqual(json.runs[1].perCase.a, [0.81, 0.69]);
    // run folders are recorded relative to the output folder (OUT is dir/cmp, the runs dir/uxnet and dir/swin)
    assert.deepEqual(
      json.runs.map((r: { dir: string }) => r.dir),
      ['../uxnet', '../swin'],
    );
    assert.ok(existsSync(join(out, 'compare-dice.svg')) && existsSync(join(out, 'compare-dice.png')));
  });

  it('refuses runs whose dataset, folds or finished folds differ, naming the difference', async () => {
    const other = await makeRun(
      'other-data',
      { ...base, g: [0.5, 0.5] },
      {
        splits: {
          ...SPLITS,
          folds: [
            { train: ['d', 'e', 'f'], val: ['a', 'b', 'g'] },
            { train: ['a', 'b', 'g'], val: ['d', 'e', 'f'] },
          ],
        },
      },
    );
    assertUserError(uxnet(['compare', A, other, '-o', join(dir, 'x')]), /other-data was run on another dataset than uxnet: only in uxnet: c; only in other-data: g/);
    const swapped = await makeRun('swapped', base, {
      splits: {
        ...SPLITS,
        folds: [
          { train: ['c', 'e', 'f'], val: ['a', 'b', 'd'] },
          { train: ['a', 'b', 'd'], val: ['c', 'e', 'f'] },
        ],
      },
    });
    assertUserError(uxnet(['compare', A, swapped, '-o', join(dir, 'x')]), /fold 0 holds out other cases in swapped than in uxnet \(uxnet only: c; swapped only: d\)/);
    const partial = await makeRun('partial', base, { folds: [0] });
    assertUserError(uxnet(['compare', A, partial, '-o', join(dir, 'x')]), /partial has finished folds \[0\], uxnet \[0, 1\]; .*--folds 0 compares the folds both have finished/);
    assertUserError(uxnet(['compare', A, join(dir, 'nothing'), '-o', join(dir, 'x')]), /nothing: no such file or folder/);
    await mkdir(join(dir, 'empty'));
    assertUserError(uxnet(['compare', A, join(dir, 'empty'), '-o', join(dir, 'x')]), /empty: no summary\.json/);
    assert.equal(
      pairingProblem(
        { dir: A, s: JSON.parse(await readFile(join(A, 'summary.json'), 'utf8')), splits: SPLITS },
        { dir: B, s: JSON.parse(await readFile(join(B, 'summary.json'), 'utf8')), splits: SPLITS },
      ),
      null,
    );
  });

  it("--folds compares a run with all folds against one with fold 0 only, on fold 0's held-out cases", async () => {
    const partial = await makeRun(
      'fold0only',
      { a: [0.9, 0.8], b: [0.91, 0.81], c: [0.92, 0.79] },
      {
        folds: [0],
        trainSeconds: 90,
        stepMedians: [undefined],
        inferSeconds: [[0.7, 0.1, 0.2]],
      },
    );
    const c = await compareRuns([A, partial], { folds: [0] });
    assert.deepEqual(c.foldsDone, [0]);
    assert.equal(c.cases, 3);
    const [ra, rp] = c.runs;
    // A on fold 0 (cases a, b, c): class 1 is 0.80, 0.82, 0.84 -> mean 0.82, sd 0.02
    assert.ok(Math.abs(ra!.perClass[0]!.dice.mean - 0.82) < 1e-12);
    assert.ok(Math.abs(ra!.perClass[0]!.dice.sd - 0.02) < 1e-12);
    assert.deepEqual([...ra!.dice.keys()], ['a', 'b', 'c']);
    // timing comes from fold 0 only: its record says 60 s and 1000 MB (fold 1's says 1001 MB)
    assert.equal(ra!.trainSecondsPerFold, 60);
    assert.equal(ra!.peakRssMB, 1000);
    assert.equal(rp!.trainSecondsPerFold, 90);
    // fold 0's own median step time (not fold 1's 0.6 s); a record without one reads as unknown, not as 0
    assert.equal(ra!.stepSeconds, 0.4);
    assert.equal(rp!.stepSeconds, null);
    assert.equal(ra!.inferenceSeconds, 0.5, "fold 0's median, not fold 1's faster 0.4");
    // three positive differences on class 1 (0.10, 0.09, 0.08), no ties: exact p = 2 / 2^3
    assert.equal(rp!.perClass[0]!.wilcoxon!.pValue, 2 / 8);
    const out = join(dir, 'cmp-fold0');
    const r = uxnet(['compare', A, partial, '-o', out, '--folds', '0']);
    assert.equal(r.status, 0, r.stderr);
    const md0 = await readFile(join(out, 'compare.md'), 'utf8');
    assert.match(md0, /^# Comparison on hippo: 2 runs, fold 0 of 2, 3 held-out cases/);
    assert.match(md0, /\| 1\.5 \| n\/a \| 0\.20 \| 1000 \|/);
    assertUserError(uxnet(['compare', A, partial, '-o', join(dir, 'y'), '--folds', '0,1']), /fold0only has not finished fold 1 \(finished: \[0\]\)/);
    assertUserError(uxnet(['compare', A, partial, '-o', join(dir, 'y'), '--folds', '2']), /uxnet has 2 folds, there is no fold 2/);
    assertUserError(uxnet(['compare', A, partial, '-o', join(dir, 'y'), '--folds', 'zero']), /--folds: expected fold numbers separated by commas/);
    assert.ok(!existsSync(join(dir, 'y')), 'a refused comparison writes nothing');
  });

  it('says which runs predicted their held-out cases with TTA: all folds, some (named), or none / not recorded', async () => {
    const all = await makeRun('tta-all', base, { tta: [true, true] });
    const mixed = await makeRun('tta-mixed', base, { tta: [false, true] });
    const some = await makeRun('tta-some', base, { tta: [true, undefined] });
    const none = await makeRun('tta-none', base, { tta: [false, false] });
    const read = async (r: string) => JSON.parse(await readFile(join(r, 'summary.json'), 'utf8'));
    assert.deepEqual(await Promise.all([all, mixed, some, none, A].map(async (r) => [(await read(r)).tta, (await read(r)).perFold.map((f: { tta: unknown }) => f.tta)])), [
      [true, [true, true]],
      [null, [false, true]],
      [null, [true, null]],
      [false, [false, false]],
      [null, [null, null]],
    ]);
    const md = async (r: string) => readFile(join(r, 'summary.md'), 'utf8');
    assert.match(await md(all), /\nHeld-out cases predicted with mirroring test-time augmentation \(TTA\)\.\n/);
    assert.match(await md(mixed), /\nHeld-out cases predicted with mirroring TTA in folds 1 only \(without: 0\): the folds are not scored alike\.\n/);
    assert.match(await md(some), /\nHeld-out cases predicted with mirroring TTA in folds 0 only \(not recorded: 1\): the folds are not scored alike\.\n/);
    for (const r of [none, A]) assert.doesNotMatch(await md(r), /TTA/);
    const c = await compareRuns([A, all, mixed, none]);
    assert.deepEqual(
      c.runs.map((r) => r.network),
      ['UX-Net 4/8/16/32, hidden 16', 'UX-Net 4/8/16/32, hidden 16, TTA', 'UX-Net 4/8/16/32, hidden 16, TTA in folds 1', 'UX-Net 4/8/16/32, hidden 16'],
    );
  });

  it('a summary of no finished fold is refused, not written with empty rows', async () => {
    await assert.rejects(makeRun('none', base, { folds: [] }), /^Error: crossval none: no finished fold to summarise$/);
    assert.ok(!existsSync(join(dir, 'none', 'summary.json')));
  });

  it('shows seconds per volume as unknown for a summary written before it kept medians', async () => {
    const old = await makeRun('old-summary', base);
    const p = join(old, 'summary.json');
    const s = JSON.parse(await readFile(p, 'utf8'));
    delete s.timing.inferenceSeconds;
    for (const f of s.perFold) delete f.inferenceSecondsMedian;
    await writeFile(p, JSON.stringify(s));
    for (const folds of [undefined, [0]]) {
      const c = await compareRuns([A, old], folds ? { folds } : {});
      assert.equal(c.runs[1]!.inferenceSeconds, null, `folds ${folds}`);
      assert.equal(c.runs[0]!.inferenceSeconds, folds ? 0.5 : 0.4);
    }
  });

  it('compares `uxnet evaluate` results (TTA, ensembles, any labelled set) with runs and each other, paired by case', async () => {
    // Fold 0's held-out cases a, b, c, predicted another way and scored by `uxnet evaluate`. On a 12x6x6
    // grid each class is a 4x4x4 cube; a prediction shifted by one voxel overlaps 48 of 64 voxels (Dice
    // 0.75), by two 32 (0.5). Dice per case [anterior, posterior]: a [1, 0.75], b [0.75, 1], c [0.5, 0.75].
    const cube = (out: Uint8Array, label: number, i0: number) => {
      for (let i = i0; i < i0 + 4; i++) for (let j = 1; j < 5; j++) for (let k = 1; k < 5; k++) out[(i * 6 + j) * 6 + k] = label;
      return out;
    };
    const map = (s1: number, s2: number) => cube(cube(new Uint8Array(12 * 36), 1, s1), 2, 6 + s2);
    const affine = mat4([
      [1, 0, 0, 0],
      [0, 1, 0, 0],
      [0, 0, 1, 0],
      [0, 0, 0, 1],
    ]);
    const gt = join(dir, 'ev-gt'),
      pred = join(dir, 'ev-pred');
    await mkdir(gt);
    await mkdir(pred);
    const shifts: Record<string, [number, number]> = { a: [0, 1], b: [1, 0], c: [2, 1] };
    for (const [id, [s1, s2]] of Object.entries(shifts)) {
      await writeNiftiFile(join(gt, `${id}.nii.gz`), { data: map(0, 0), shape: [12, 6, 6], affine });
      await writeNiftiFile(join(pred, `${id}.nii.gz`), { data: map(s1, s2), shape: [12, 6, 6], affine });
    }
    // without --labels: evaluate names no class, so the names come from the run
    let r = uxnet(['evaluate', pred, gt, '-o', join(dir, 'ev', 'tta')]);
    assert.equal(r.status, 0, r.stderr);
    const tta = join(dir, 'ev', 'tta');
    for (const input of [tta, `${tta}.json`]) {
      const c = await compareRuns([A, input], { folds: [0] });
      assert.equal(c.cases, 3);
      const [ra, re] = c.runs;
      assert.equal(re!.name, 'tta');
      assert.equal(re!.kind, 'evaluation');
      assert.equal(re!.network, '–');
      assert.equal(re!.parameters, null);
      assert.deepEqual(c.classes, classes);
      assert.ok(Math.abs(re!.perClass[0]!.dice.mean - 0.75) < 1e-12);
      assert.ok(Math.abs(re!.perClass[1]!.dice.mean - 2.5 / 3) < 1e-12);
      // per-case means 0.875, 0.875, 0.625
      assert.ok(Math.abs(re!.meanDice.mean - 2.375 / 3) < 1e-12);
      // HD95 at 1 mm spacing: 0 where exact, the shift where shifted (every surface voxel of the moved
      // faces, more than 5% of either surface, is that far from the other)
      assert.deepEqual(
        re!.perClass.map((k) => k.hd95.mean),
        [1, 2 / 3],
      );
      // anterior against the run's 0.80, 0.82, 0.84: d = +0.20, -0.07, -0.34, ranks 2, 1, 3, R+ = 2;
      // exact: P(R+ <= 2) = 3/8 of the 8 sign patterns, two-sided 0.75
      assert.equal(re!.perClass[0]!.wilcoxon!.method, 'exact');
      assert.ok(Math.abs(re!.perClass[0]!.wilcoxon!.pValue - 0.75) < 1e-12);
      assert.ok(Math.abs(ra!.perClass[0]!.dice.mean - 0.82) < 1e-12);
    }
    // evaluate's default output (PRED/metrics.json), named by its folder; the evaluation as the reference
    r = uxnet(['evaluate', pred, gt]);
    assert.equal(r.status, 0, r.stderr);
    const out = join(dir, 'cmp-eval');
    r = uxnet(['compare', pred, A, tta, '-o', out, '--folds', '0']);
    assert.equal(r.status, 0, r.stderr);
    const md = await readFile(join(out, 'compare.md'), 'utf8');
    assert.match(md, /^# Comparison on hippo: 3 runs, fold 0 of 2, 3 held-out cases/);
    assert.match(md, /\| ev-pred \| – \| 0\.7500 ± 0\.2500 \| 0\.8333 ± 0\.1443 \| 0\.7917 ± 0\.1443 \|/);
    // the same predictions: every difference is zero, so no p-value
    assert.match(md, /\| tta \| n\/a \| n\/a \| n\/a \|/);
    assert.match(md, /\| uxnet \| 0\.7500 \|/);
    assert.match(md, /ev-pred, tta are `uxnet evaluate` results/);
    const json = JSON.parse(await readFile(join(out, 'compare.json'), 'utf8'));
    assert.deepEqual(json.runs[0].perCase.c, [0.5, 0.75]);
    assert.deepEqual(
      json.runs.map((x: { kind: string }) => x.kind),
      ['evaluation', 'crossval', 'evaluation'],
    );
    // evaluations alone: no folds
    const c2 = await compareRuns([tta, pred]);
    assert.equal(c2.foldsDone, null);
    assert.equal(c2.dataset, 'ev-gt');
    assert.deepEqual(c2.classes, [
      { label: 1, name: 'label 1' },
      { label: 2, name: 'label 2' },
    ]);
    // `uxnet evaluate -m MODEL` records the model that made the predictions: its network fills the column
    const model = join(dir, 'ev-model');
    await mkdir(model);
    const manifest = {
      format: 'uxnet3d-model/1',
      name: 'm',
      network: { inChans: 1, outChans: 3, featSize: [4, 8, 16, 32], hiddenSize: 16 },
      inference: { roiSize: [32, 32, 32], overlap: 0.25, mode: 'constant', swBatchSize: 1 },
      labels: { 0: 'background', 1: 'anterior', 2: 'posterior' },
    };
    await writeFile(join(model, 'model.json'), JSON.stringify(manifest));
    r = uxnet(['evaluate', pred, gt, '-o', join(dir, 'ev', 'by-model'), '-m', model]);
    assert.equal(r.status, 0, r.stderr);
    r = uxnet(['compare', join(dir, 'ev', 'by-model'), tta, '-o', join(dir, 'cmp-model')]);
    assert.equal(r.status, 0, r.stderr);
    const mdModel = await readFile(join(dir, 'cmp-model', 'compare.md'), 'utf8');
    assert.match(mdModel, /\| Dice anterior \| Dice posterior \|/);
    assert.match(mdModel, /\n\| by-model \| UX-Net 4\/8\/16\/32, hidden 16 \| 0\.7500 ± 0\.2500 \|/);
    assert.match(mdModel, /\n\| tta \| – \| 0\.7500 ± 0\.2500 \|/);
    // refusals, one line each, nothing written
    assertUserError(uxnet(['compare', A, tta, '-o', join(dir, 'z')]), /tta scores other cases than uxnet; only in uxnet: d, e, f$/);
    assertUserError(
      uxnet(['compare', tta, pred, '-o', join(dir, 'z'), '--folds', '0']),
      /--folds selects folds of crossval runs, and every input here is an `uxnet evaluate` result/,
    );
    r = uxnet(['evaluate', pred, gt, '-o', join(dir, 'ev', 'one'), '--classes', '1']);
    assert.equal(r.status, 0, r.stderr);
    assertUserError(uxnet(['compare', tta, join(dir, 'ev', 'one'), '-o', join(dir, 'z')]), /one scores labels \[1\], tta \[1, 2\]/);
    await writeFile(join(dir, 'ev', 'other.json'), '{"loss": 1}');
    assertUserError(uxnet(['compare', A, join(dir, 'ev', 'other.json'), '-o', join(dir, 'z')]), /other\.json: not an `uxnet evaluate` result \(no classes and cases\)/);
    assert.ok(!existsSync(join(dir, 'z')), 'a refused comparison writes nothing');
  });
});
