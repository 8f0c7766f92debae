/**
 * `uxnet crossval-predict` on two tiny 2-fold crossval runs of one synthetic dataset: without TTA it
 * reproduces the run's own held-out scores exactly; with --tta its label maps are those of `uxnet
 * predict --tta` with each fold's model; with two runs they are those of `uxnet predict` with an
 * `uxnet ensemble` of the two fold-k models; its metrics are `uxnet evaluate`'s on the same files, and
 * `uxnet compare` pairs them with the run. Refusals name the problem and write nothing; a stop leaves
 * the output as it was.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { writeSyntheticDataset } from '../helpers/synthetic-dataset.js';
import { tinyRecipe } from '../helpers/tiny-train.js';
import { uxnet, assertUserError } from '../helpers/cli.js';
import { loadVolume } from '../../src/data/load.js';
import { runEvaluate } from '../../src/cli/commands/evaluate.js';
import { crossvalPredict } from '../../src/train/crossval-predict.js';
import '../../src/backends/index.js';

let dir: string;
const env = { env: { UXNET_QUIET: '1', UXNET_THREADS: '1' }, timeoutMs: 300_000 };
const sink = () =>
  new Writable({
    write(_c, _e, cb) {
      cb();
    },
  });

const json = async (p: string) => JSON.parse(await readFile(p, 'utf8'));
const diceOf = (m: any) => Object.fromEntries(m.cases.map((c: any) => [c.caseId, c.classes.map((x: any) => x.dice)]));

describe('uxnet crossval-predict', () => {
  let A: string, B: string, splits: { folds: { train: string[]; val: string[] }[] };
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'uxnet-cvpredict-'));
    await writeSyntheticDataset(join(dir, 'data'), 6);
    await writeFile(join(dir, 'recipe.json'), JSON.stringify(tinyRecipe({ steps: 4, lr: 0.01 })));
    A = join(dir, 'cv-a');
    B = join(dir, 'cv-b');
    let r = uxnet(['crossval', '--dataset', join(dir, 'data'), '--config', join(dir, 'recipe.json'), '-o', A, '--folds', '2'], env);
    assert.equal(r.status, 0, r.stderr);
    // the same split, another seed: other weights
    r = uxnet(['crossval', '--dataset', join(dir, 'data'), '--config', join(dir, 'recipe.json'), '-o', B, '--split', join(A, 'splits.json'), '--seed', '3'], env);
    assert.equal(r.status, 0, r.stderr);
    splits = await json(join(A, 'splits.json'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("without TTA it reproduces the run's own held-out scores; its metrics are uxnet evaluate's", async () => {
    const out = join(dir, 'again');
    const r = uxnet(['crossval-predict', A, '-o', out], env);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /fold 0: mean Dice \d\.\d{4} over 3 held-out cases \(cv-a\)/);
    const m = await json(join(out, 'metrics.json'));
    const s = await json(join(A, 'summary.json'));
    assert.deepEqual(diceOf(m), Object.fromEntries(s.cases.map((c: any) => [c.caseId, c.dice])));
    assert.deepEqual(m.crossval.folds, [0, 1]);
    assert.equal(m.crossval.tta, false);
    assert.deepEqual(Object.keys(m.crossval.foldOf).sort(), [...splits.folds[0]!.val, ...splits.folds[1]!.val].sort());
    for (const id of splits.folds[1]!.val) assert.equal(m.crossval.foldOf[id], 1);
    const ev = await runEvaluate({
      predDir: join(out, 'predictions'),
      gtDir: join(dir, 'data', 'labelsTr'),
      output: join(dir, 'ev-again'),
      labels: join(dir, 'data', 'dataset.json'),
      out: sink(),
      err: sink(),
    });
    const evj = await json(ev.jsonPath);
    const byId = (cases: any[]) => [...cases].sort((x, y) => (x.caseId < y.caseId ? -1 : 1));
    assert.deepEqual(byId(m.cases), byId(evj.cases));
    assert.deepEqual(m.perClass, evj.perClass);
    assert.equal(await readFile(join(out, 'metrics.csv'), 'utf8'), await readFile(ev.csvPath, 'utf8'));
    // the run and its re-prediction pair case by case: every difference is zero
    const c = uxnet(['compare', A, out, '-o', join(dir, 'cmp-again')], env);
    assert.equal(c.status, 0, c.stderr);
    assert.match(c.stdout, /\| again \| n\/a \| n\/a \| n\/a \|/);
  });

  it("--tta predicts as uxnet predict --tta with each fold's model", async () => {
    const out = join(dir, 'tta');
    const r = uxnet(['crossval-predict', A, '-o', out, '--tta', '--folds', '1'], env);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual((await readdir(join(out, 'predictions'))).sort(), splits.folds[1]!.val.map((id) => `${id}.nii.gz`).sort());
    for (const id of splits.folds[1]!.val) {
      const p = join(dir, 'tta-direct', `${id}.nii.gz`);
      const d = uxnet(['predict', '-i', join(dir, 'data', 'imagesTr', `${id}.nii.gz`), '-o', p, '-m', join(A, 'fold_1', 'model'), '--tta'], env);
      assert.equal(d.status, 0, d.stderr);
      assert.deepEqual((await loadVolume(join(out, 'predictions', `${id}.nii.gz`), 'label')).data, (await loadVolume(p, 'label')).data, id);
    }
    const m = await json(join(out, 'metrics.json'));
    assert.equal(m.crossval.tta, true);
    assert.equal(m.cases.length, 3);
  });

  it('two runs: fold k of each averaged, as uxnet predict with an uxnet ensemble of the two fold-k models', async () => {
    const out = join(dir, 'pair');
    const r = uxnet(['crossval-predict', A, B, '-o', out], env);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /fold 1: mean Dice \d\.\d{4} over 3 held-out cases \(the average of cv-a \+ cv-b\)/);
    let differs = false;
    for (const k of [0, 1]) {
      const ens = join(dir, `ens-${k}`);
      const e = uxnet(['ensemble', '-o', ens, join(A, `fold_${k}`, 'model'), join(B, `fold_${k}`, 'model')], env);
      assert.equal(e.status, 0, e.stderr);
      for (const id of splits.folds[k]!.val) {
        const p = join(dir, 'pair-direct', `${id}.nii.gz`);
        const d = uxnet(['predict', '-i', join(dir, 'data', 'imagesTr', `${id}.nii.gz`), '-o', p, '-m', ens], env);
        assert.equal(d.status, 0, d.stderr);
        const mine = (await loadVolume(join(out, 'predictions', `${id}.nii.gz`), 'label')).data;
        assert.deepEqual(mine, (await loadVolume(p, 'label')).data, id);
        differs ||= String(mine) !== String((await loadVolume(join(A, `fold_${k}`, 'predictions', `${id}.nii.gz`), 'label')).data);
      }
    }
    assert.ok(differs, 'the average differs from run A alone somewhere, so the test can tell them apart');
    const m = await json(join(out, 'metrics.json'));
    assert.deepEqual(m.crossval.runs, ['../cv-a', '../cv-b']);
    // compare's network column says what made an evaluation
    let c = uxnet(['compare', A, out, '-o', join(dir, 'cmp-pair')], env);
    assert.equal(c.status, 0, c.stderr);
    assert.match(c.stdout, /\| pair \| cv-a \+ cv-b \|/);
    c = uxnet(['compare', A, join(dir, 'tta'), '--folds', '1', '-o', join(dir, 'cmp-tta')], env);
    assert.equal(c.status, 0, c.stderr);
    assert.match(c.stdout, /\| tta \| cv-a, TTA \|/);
  });

  it('refuses runs that do not pair, folds not finished, an existing output and one inside a run; writes nothing', async () => {
    // another split (one case of each fold swapped), fold 0 trained only
    const [v0, v1] = [splits.folds[0]!.val, splits.folds[1]!.val];
    await writeFile(
      join(dir, 'other-split.json'),
      JSON.stringify({
        folds: [
          [v1[0], ...v0.slice(1)],
          [v0[0], ...v1.slice(1)],
        ],
      }),
    );
    const other = join(dir, 'cv-other');
    let r = uxnet(['crossval', '--dataset', join(dir, 'data'), '--config', join(dir, 'recipe.json'), '-o', other, '--split', join(dir, 'other-split.json'), '--fold', '0'], env);
    assert.equal(r.status, 0, r.stderr);
    const no = join(dir, 'refused');
    assertUserError(
      uxnet(['crossval-predict', A, other, '-o', no, '--folds', '0'], env),
      new RegExp(`fold 0 holds out other cases in cv-other than in cv-a \\(cv-a only: ${v0[0]}; cv-other only: ${v1[0]}\\)`),
    );
    // by default, the folds every run has finished: here fold 0 only
    assertUserError(uxnet(['crossval-predict', A, other, '-o', no], env), /fold 0 holds out other cases/);
    assertUserError(uxnet(['crossval-predict', other, '-o', no, '--folds', '1'], env), /cv-other has not finished fold 1 \(finished: \[0\]\)/);
    assertUserError(uxnet(['crossval-predict', A, '-o', no, '--folds', '2'], env), /cv-a has 2 folds, there is no fold 2/);
    assertUserError(uxnet(['crossval-predict', A, '-o', join(A, 'sub')], env), /the output folder .* is inside the run cv-a/);
    assertUserError(uxnet(['crossval-predict', join(dir, 'data'), '-o', no], env), /data: no summary\.json/);
    // a fold model without weights (a run kept in a repository without them): refused before any work
    const light = join(dir, 'cv-light');
    await cp(A, light, { recursive: true });
    await rm(join(light, 'fold_1', 'model', 'weights.safetensors'));
    assertUserError(
      uxnet(['crossval-predict', A, light, '-o', no], env),
      /cv-light: fold 1's model folder .* has no weights, so it cannot predict \(the run's uxnet crossval command with --remake-weights re-makes them\)/,
    );
    assert.ok(!existsSync(no) && !existsSync(join(A, 'sub')));
    assert.deepEqual(
      (await readdir(dir)).filter((n) => n.includes('.tmp-')),
      [],
      'no staging folder left',
    );
    assertUserError(uxnet(['crossval-predict', A, '-o', join(dir, 'again')], env), /again already exists; pass --force/);
    r = uxnet(['crossval-predict', A, '-o', join(dir, 'again'), '--folds', '0', '--force'], env);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual((await json(join(dir, 'again', 'metrics.json'))).crossval.folds, [0]);
    assert.equal((await readdir(join(dir, 'again', 'predictions'))).length, 3, '--force replaced the earlier predictions, not added to them');
  });

  it('a stop leaves the output folder as it was: nothing new, no staging folder', async () => {
    const out = join(dir, 'stopped');
    const r = await crossvalPredict({ runs: [A], outDir: out, signal: AbortSignal.abort() });
    assert.equal(r.metricsPath, null);
    assert.ok(!existsSync(out));
    // an existing result is kept whole when a --force run is stopped
    const again = join(dir, 'again');
    const before = await readFile(join(again, 'metrics.json'), 'utf8');
    await crossvalPredict({ runs: [A], outDir: again, force: true, tta: true, signal: AbortSignal.abort() });
    assert.equal(await readFile(join(again, 'metrics.json'), 'utf8'), before);
    assert.equal((await readdir(join(again, 'predictions'))).length, 3);
    assert.deepEqual(
      (await readdir(dir)).filter((n) => n.includes('.tmp-')),
      [],
    );
  });
});
