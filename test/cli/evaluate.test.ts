/**
 * `uxnet evaluate`, run as a real process from the built CLI on small synthetic NIfTI label maps whose
 * metrics are computed by hand (see the comments at each case).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES } from '../helpers/fixtures.js';
import { writeNiftiFile } from '../../src/io/nifti/index.js';
import { mat4 } from '../../src/io/nifti/mat4.js';

const ROOT = join(FIXTURES, '..', '..');
const LABELS = { 0: 'background', 1: 'anterior', 2: 'posterior' };

/** A model folder's model.json alone (evaluate reads no weights). */
function writeManifest(dir: string, net: { network: unknown; networkArgs?: unknown }): void {
  mkdirSync(dir, { recursive: true });
  const inference = { roiSize: [32, 32, 32], overlap: 0.25, mode: 'constant', swBatchSize: 1 };
  writeFileSync(join(dir, 'model.json'), JSON.stringify({ format: 'uxnet3d-model/1', name: 'm', ...net, inference, labels: LABELS }));
}

function uxnet(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'uxnet.js'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function assertUserError(r: { status: number | null; stderr: string }, re: RegExp): void {
  assert.notEqual(r.status, 0);
  const lines = r.stderr
    .trim()
    .split('\n')
    .filter((l) => !l.startsWith('uxnet: warning:'));
  assert.equal(lines.length, 1, `expected one error line, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^uxnet: /);
  assert.doesNotMatch(r.stderr, /\n\s+at |internal error/);
  assert.match(lines[0]!, re);
}

const SHAPE = [8, 6, 6] as const;
/** Spacing 2 mm along the first axis (i), 1 mm along the others: written into pixdim by the qform. */
const AFFINE = mat4([
  [2, 0, 0, 0],
  [0, 1, 0, 0],
  [0, 0, 1, 0],
  [0, 0, 0, 1],
]);

/** A label map of SHAPE (C order, last axis fastest) with `label` on the box [lo, hi). */
function labels(...boxes: { label: number; lo: [number, number, number]; hi: [number, number, number] }[]): Uint8Array {
  const [X, Y, Z] = SHAPE;
  const out = new Uint8Array(X * Y * Z);
  for (const b of boxes) {
    for (let i = b.lo[0]; i < b.hi[0]; i++) for (let j = b.lo[1]; j < b.hi[1]; j++) for (let k = b.lo[2]; k < b.hi[2]; k++) out[(i * Y + j) * Z + k] = b.label;
  }
  return out;
}

async function write(path: string, data: Uint8Array, shape: readonly number[] = SHAPE): Promise<void> {
  await writeNiftiFile(path, { data, shape, affine: AFFINE });
}

describe('uxnet evaluate CLI', () => {
  let dir: string;
  let pred: string;
  let gt: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'uxnet-evaluate-'));
    pred = join(dir, 'pred');
    gt = join(dir, 'gt');
    mkdirSync(pred);
    mkdirSync(gt);
    // Case a: label 1 is a 4x4x4 cube, predicted one voxel further along i (2 mm): overlap 3x4x4, so
    // Dice = 2*48/(64+64) = 0.75. Both surfaces have 56 voxels; per side 16 are 2 mm away (the face
    // that moved), 4 are 1 mm away (face centres, whose nearest surface is across j or k) and 36 are
    // on the other surface: HD95 = 2 mm (a 1 mm spacing bug would give 1), NSD at 1 mm = 80/112 = 5/7.
    // Label 2 is a 2x2x2 cube predicted exactly: Dice 1, HD95 0, NSD 1.
    const cube2 = { label: 2, lo: [6, 3, 3] as [number, number, number], hi: [8, 5, 5] as [number, number, number] };
    await write(join(gt, 'a.nii.gz'), labels({ label: 1, lo: [1, 1, 1], hi: [5, 5, 5] }, cube2));
    await write(join(pred, 'a.nii'), labels({ label: 1, lo: [2, 1, 1], hi: [6, 5, 5] }, cube2));
    // Case b: label 1 exact (Dice 1); label 2 absent from both sides (NaN, left out of the means);
    // label 3 only in the prediction, and in no ground truth, so it is not a default class.
    await write(join(gt, 'b.nii.gz'), labels({ label: 1, lo: [0, 0, 0], hi: [2, 2, 2] }));
    await write(join(pred, 'b.nii.gz'), labels({ label: 1, lo: [0, 0, 0], hi: [2, 2, 2] }, { label: 3, lo: [5, 5, 5], hi: [6, 6, 6] }));
    // c: ground truth only; d: prediction only.
    await write(join(gt, 'c.nii.gz'), labels({ label: 1, lo: [0, 0, 0], hi: [1, 1, 1] }));
    await write(join(pred, 'd.nii.gz'), labels());
    writeFileSync(join(pred, 'notes.txt'), 'not a NIfTI file, ignored');
    // What `predict --probabilities` writes next to the labels: skipped (else it would be a case
    // missing in the ground truth, and a 4-D float map).
    await writeNiftiFile(join(pred, 'a_probabilities.nii.gz'), { data: new Float32Array(2 * 8 * 6 * 6).fill(0.5), shape: [8, 6, 6, 2], affine: AFFINE });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('--help explains every flag', () => {
    const r = uxnet(['evaluate', '--help']);
    assert.equal(r.status, 0);
    for (const flag of ['<pred>', '<gt>', '--output', '--classes', '--nsd-tolerance', '--labels', '--model', '--split', '--fold']) assert.ok(r.stdout.includes(flag), flag);
  });

  it('hand-computed Dice, HD95 and NSD; missing cases warned and listed', () => {
    const out = join(dir, 'out', 'm');
    const r = uxnet(['evaluate', pred, gt, '-o', out]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /warning: 1 ground-truth case\(s\) have no prediction .*: c\n/);
    assert.match(r.stderr, /warning: 1 prediction\(s\) have no ground truth .*: d\n/);
    assert.match(r.stdout, /2 case\(s\) evaluated, 2 class\(es\)/);
    assert.match(r.stdout, /^1 +0\.8750 +1\.0000 +0\.8571 +2$/m); // class 1: mean Dice (0.75+1)/2, HD95 (2+0)/2, NSD (5/7+1)/2
    assert.match(r.stdout, /^2 +1\.0000 +0\.0000 +1\.0000 +1$/m);

    const csv = readFileSync(`${out}.csv`, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(','));
    assert.deepEqual(csv[0], ['case', 'label', 'name', 'dice', 'hd95', 'nsd', 'pred_voxels', 'gt_voxels']);
    const row = (c: string, l: string) => csv.find((r) => r[0] === c && r[1] === l)!;
    assert.equal(csv.length, 1 + 4 + 2 + 1);
    assert.deepEqual(row('a', '1').slice(3).map(Number), [0.75, 2, 5 / 7, 64, 64]);
    assert.deepEqual(row('a', '2').slice(3).map(Number), [1, 0, 1, 8, 8]);
    assert.deepEqual(row('b', '2').slice(3), ['', '', '', '0', '0']); // both empty: NaN -> empty cell
    assert.equal(Number(row('mean', '1')[3]), 0.875);
    assert.equal(Number(row('mean', '2')[3]), 1);
    assert.ok(row('mean', 'all'));

    const json = JSON.parse(readFileSync(`${out}.json`, 'utf8'));
    assert.deepEqual(json.missing_in_pred, ['c']);
    assert.deepEqual(json.missing_in_gt, ['d']);
    assert.deepEqual(
      json.classes.map((c: { label: number }) => c.label),
      [1, 2],
    );
    assert.equal(json.caseCount, 2);
    const a = json.cases.find((c: { caseId: string }) => c.caseId === 'a');
    assert.deepEqual(a.spacing, [2, 1, 1]);
    assert.equal(a.classes[0].dice, 0.75);
    assert.equal(a.classes[0].hd95, 2);
    assert.ok(Math.abs(a.classes[0].nsd - 5 / 7) < 1e-12);
    const b = json.cases.find((c: { caseId: string }) => c.caseId === 'b');
    assert.equal(b.classes[1].dice, null);
    assert.equal(json.perClass[0].dice.mean, 0.875);
    assert.equal(json.perClass[1].dice.count, 1);
    assert.deepEqual(readdirSync(join(dir, 'out')).sort(), ['m.csv', 'm.json'], 'no temporary file left behind');
  });

  it('--classes, --nsd-tolerance per class and --labels names', () => {
    const labelsFile = join(dir, 'dataset.json');
    writeFileSync(labelsFile, JSON.stringify({ labels: { background: 0, liver: 1, tumour: 2 } }));
    const out = join(dir, 'sel');
    const r = uxnet(['evaluate', pred, gt, '-o', `${out}.json`, '--classes', '1,3', '--nsd-tolerance', '2,1', '--labels', labelsFile]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^1 +liver +0\.8750 +1\.0000 +1\.0000 +2$/m); // every surface voxel within 2 mm
    const csv = readFileSync(`${out}.csv`, 'utf8');
    assert.match(csv, /^a,1,liver,0\.75,2,1,64,64$/m);
    assert.match(csv, /^b,3,,0,inf,0,1,0$/m); // only in the prediction: Dice 0, HD95 inf, NSD 0
    assert.match(csv, /^a,3,,,,,0,0$/m);
    const json = JSON.parse(readFileSync(`${out}.json`, 'utf8'));
    assert.deepEqual(json.nsd_tolerance_mm, [2, 1]);
    assert.equal(json.perClass[0].name, 'liver');
  });

  it('a shape mismatch names the case and writes nothing', async () => {
    const p2 = join(dir, 'pred2');
    const g2 = join(dir, 'gt2');
    mkdirSync(p2);
    mkdirSync(g2);
    await write(join(g2, 'ok.nii.gz'), labels({ label: 1, lo: [0, 0, 0], hi: [2, 2, 2] }));
    await write(join(p2, 'ok.nii.gz'), labels({ label: 1, lo: [0, 0, 0], hi: [2, 2, 2] }));
    await write(join(g2, 'case_7.nii.gz'), new Uint8Array(8 * 6 * 6));
    await write(join(p2, 'case_7.nii.gz'), new Uint8Array(8 * 6 * 5), [8, 6, 5]);
    const r = uxnet(['evaluate', p2, g2, '-o', join(dir, 'never')]);
    assertUserError(r, /shapes differ for 1 case\(s\): 'case_7' \(prediction 8x6x5, ground truth 8x6x6\)/);
    assert.ok(!existsSync(join(dir, 'never.csv')) && !existsSync(join(dir, 'never.json')));
  });

  it('user mistakes: one-line messages, non-zero exit', () => {
    const o = ['-o', join(dir, 'never')];
    assertUserError(uxnet(['evaluate', join(dir, 'nope'), gt, ...o]), /^uxnet: cannot read prediction '.*nope': no such file or directory$/);
    assertUserError(uxnet(['evaluate', pred, join(dir, 'dataset.json'), ...o]), /^uxnet: ground truth '.*dataset\.json' is not a \.nii or \.nii\.gz file$/);
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    assertUserError(uxnet(['evaluate', pred, empty, ...o]), /no case has both a prediction and a ground truth/);
    assertUserError(uxnet(['evaluate', pred, gt, ...o, '--classes', '1,x']), /--classes '1,x'/);
    assertUserError(uxnet(['evaluate', pred, gt, ...o, '--nsd-tolerance', '1,2']), /one tolerance per class needs --classes/);
    assertUserError(uxnet(['evaluate', pred, gt, ...o, '--nsd-tolerance', '-1']), /--nsd-tolerance '-1'/);
    assertUserError(uxnet(['evaluate', pred, gt, ...o, '--labels', join(dir, 'none.json')]), /cannot read labels file/);
    assert.ok(!existsSync(join(dir, 'never.csv')));
  });

  it('two single files pair whatever their names; --model names the classes as its model.json does and is recorded', () => {
    const model = join(dir, 'model');
    writeManifest(model, { network: { inChans: 1, outChans: 3, featSize: [4, 8, 16, 32], hiddenSize: 16, depths: [1, 1, 1, 1] } });
    const out = join(dir, 'single');
    const r = uxnet(['evaluate', join(pred, 'a.nii'), join(gt, 'a.nii.gz'), '-o', out, '-m', model]);
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /warning/, 'nothing missing on either side');
    assert.match(r.stdout, /^1 case\(s\) evaluated, 2 class\(es\)/);
    // Case a alone: class 1 Dice 0.75, HD95 2 mm, NSD 5/7; class 2 exact.
    assert.match(r.stdout, /^1 +anterior +0\.7500 +2\.0000 +0\.7143 +1$/m);
    assert.match(r.stdout, /^2 +posterior +1\.0000 +0\.0000 +1\.0000 +1$/m);
    const json = JSON.parse(readFileSync(`${out}.json`, 'utf8'));
    assert.deepEqual(json.classes, [
      { label: 1, name: 'anterior' },
      { label: 2, name: 'posterior' },
    ]);
    assert.deepEqual(json.files, { a: { pred: 'a.nii', gt: 'a.nii.gz', shape: [8, 6, 6] } });
    // what made the predictions, for uxnet compare's network column
    assert.deepEqual(json.model, { dir: model, network: 'UX-Net 4/8/16/32, hidden 16' });

    // An ensemble: its members' network, or each member's when they differ. No weights are read.
    const ens = join(dir, 'ens');
    writeManifest(join(ens, 'm0'), { network: { inChans: 1, outChans: 3, featSize: [4, 8, 16, 32], hiddenSize: 16 } });
    writeManifest(join(ens, 'm1'), { network: { inChans: 1, outChans: 3, featSize: [4, 8, 16, 32], hiddenSize: 16 } });
    const ensJson = { format: 'uxnet3d-ensemble/1', name: 'e', labels: LABELS, members: [{ path: 'm0' }, { path: 'm1' }] };
    writeFileSync(join(ens, 'model.json'), JSON.stringify(ensJson));
    const recorded = (m: string) => {
      const rr = uxnet(['evaluate', join(pred, 'a.nii'), join(gt, 'a.nii.gz'), '-o', join(dir, 'single-ens'), '-m', m]);
      assert.equal(rr.status, 0, rr.stderr);
      return JSON.parse(readFileSync(join(dir, 'single-ens.json'), 'utf8')).model.network;
    };
    assert.equal(recorded(ens), 'UX-Net 4/8/16/32, hidden 16, 2-member ensemble');
    writeManifest(join(ens, 'm1'), { network: 'unetr', networkArgs: { in_channels: 1, out_channels: 3, img_size: [32, 32, 32], hidden_size: 48, mlp_dim: 96, num_heads: 4 } });
    assert.equal(recorded(ens), 'ensemble: UX-Net 4/8/16/32, hidden 16 + UNETR');
    // A folder that is not a model: one line, nothing written.
    const o = ['-o', join(dir, 'never-model')];
    assertUserError(uxnet(['evaluate', join(pred, 'a.nii'), join(gt, 'a.nii.gz'), ...o, '-m', gt]), /is not a model folder: model\.json is missing$/);
    assertUserError(uxnet(['evaluate', join(pred, 'a.nii'), join(gt, 'a.nii.gz'), ...o, '-m', join(dir, 'nothing')]), /model folder '.*nothing' does not exist$/);
    assert.ok(!existsSync(join(dir, 'never-model.json')));
  });

  it('--split/--fold score exactly the held-out cases of a split, each required on both sides', () => {
    const splits = join(dir, 'splits.json');
    writeFileSync(splits, JSON.stringify({ folds: [['a'], ['b', 'c']] }));
    const out = join(dir, 'held');
    const r = uxnet(['evaluate', pred, gt, '-o', out, '--split', splits, '--fold', '0']);
    assert.equal(r.status, 0, r.stderr);
    // Only case a is scored; c (no prediction) and d (no ground truth) are outside the fold, so not "missing".
    assert.doesNotMatch(r.stderr, /warning/);
    assert.match(r.stdout, /^1 case\(s\) evaluated, 2 class\(es\)/);
    assert.match(r.stdout, /^1 +0\.7500 +2\.0000 +0\.7143 +1$/m);
    const json = JSON.parse(readFileSync(`${out}.json`, 'utf8'));
    assert.deepEqual(json.held_out, { split: splits, fold: 0, cases: 1 });
    assert.deepEqual(json.missing_in_pred, []);
    assert.deepEqual(Object.keys(json.files), ['a']);
    // A training run folder's split.json (one train/validation split): its "val" cases, no --fold.
    const run = join(dir, 'run');
    mkdirSync(run);
    writeFileSync(join(run, 'split.json'), JSON.stringify({ train: ['b'], val: ['a'] }));
    const r2 = uxnet(['evaluate', pred, gt, '-o', join(dir, 'held2'), '--split', run]);
    assert.equal(r2.status, 0, r2.stderr);
    assert.match(r2.stdout, /^1 +0\.7500 +2\.0000 +0\.7143 +1$/m);

    const o = ['-o', join(dir, 'never-held')];
    // Fold 1 holds out b and c; c has no prediction: refused, not scored on b alone.
    assertUserError(
      uxnet(['evaluate', pred, gt, ...o, '--split', splits, '--fold', '1']),
      /^uxnet: 1 of the 2 held-out case\(s\) of fold 1 of 2 in '.*splits\.json' have no prediction in '.*pred': c$/,
    );
    assertUserError(uxnet(['evaluate', pred, gt, ...o, '--split', splits]), /is a cross-validation split of 2 folds: say which fold's held-out cases with --fold \(0-1\)$/);
    assertUserError(uxnet(['evaluate', pred, gt, ...o, '--split', splits, '--fold', '2']), /^uxnet: --fold 2: '.*splits\.json' has folds 0-1$/);
    assertUserError(uxnet(['evaluate', pred, gt, ...o, '--split', splits, '--fold', 'x']), /^uxnet: --fold must be a fold number/);
    assertUserError(uxnet(['evaluate', pred, gt, ...o, '--split', run, '--fold', '0']), /is a single train\/validation split, not a cross-validation; leave out --fold$/);
    assertUserError(uxnet(['evaluate', pred, gt, ...o, '--fold', '0']), /^uxnet: --fold picks a fold of a split: give the split with --split/);
    assertUserError(uxnet(['evaluate', pred, gt, ...o, '--split', gt]), /is a folder without splits\.json \(a crossval run\) or split\.json/);
    assertUserError(
      uxnet(['evaluate', join(pred, 'a.nii'), join(gt, 'a.nii.gz'), ...o, '--split', splits, '--fold', '0']),
      /^uxnet: --split picks cases from folders, but '.*a\.nii' is one file$/,
    );
    assert.ok(!existsSync(join(dir, 'never-held.csv')));
  });
});
