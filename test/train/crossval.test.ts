/**
 * `uxnet crossval` end to end on a tiny synthetic dataset: the stored seeded split, per-fold run
 * folders, held-out scores equal to `uxnet evaluate` on the fold's predictions, the summary's
 * statistics recomputed by hand, box plots, the ensemble folder; a crossval SIGKILLed in the middle
 * of a fold's training and re-run gives the same models and scores as an uninterrupted one; one
 * fold alone (--fold) equals that fold of a full run; an abort signal stops a fold after its step
 * or before its next prediction and the next call finishes it as if never stopped; a re-run with
 * another recipe is refused.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { writeSyntheticDataset } from '../helpers/synthetic-dataset.js';
import { tinyRecipe } from '../helpers/tiny-train.js';
import { uxnet, assertUserError, ROOT } from '../helpers/cli.js';
import { readHeldOutCases } from '../../src/train/split-file.js';
import { makeFolds, readSplitFile, encodeFoldRecord, parseFoldRecord, runCrossval, finishCrossval, openCrossval } from '../../src/train/crossval.js';
import { crossvalConfigFromFlags } from '../../src/cli/commands/crossval.js';
import { runEvaluate } from '../../src/cli/commands/evaluate.js';
import { loadCheckpoint } from '../../src/train/checkpoint.js';
import { readSafetensorsFile } from '../../src/io/safetensors.js';

let dir: string;
const env = { UXNET_QUIET: '1', UXNET_THREADS: '1' };
const sink = () =>
  new Writable({
    write(_c, _e, cb) {
      cb();
    },
  });

function crossvalArgs(out: string, extra: string[] = []): string[] {
  return ['crossval', '--dataset', join(dir, 'data'), '--config', join(dir, 'recipe.json'), '-o', out, '--folds', '2', ...extra];
}

async function summary(run: string): Promise<any> {
  return JSON.parse(await readFile(join(run, 'summary.json'), 'utf8'));
}

describe('uxnet crossval', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'uxnet-crossval-'));
    await writeSyntheticDataset(join(dir, 'data'), 6);
    await writeFile(join(dir, 'recipe.json'), JSON.stringify(tinyRecipe({ steps: 4, saveEvery: 1, lr: 0.01, split: 'ignored-by-crossval.json', modelDir: 'ignored' })));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('makes seeded folds that partition the cases', () => {
    const ids = ['e', 'a', 'c', 'b', 'd', 'f', 'g'];
    const f = makeFolds(ids, 3, 0);
    assert.deepEqual(f, makeFolds([...ids].reverse(), 3, 0), 'independent of the listing order');
    assert.notDeepEqual(f, makeFolds(ids, 3, 1), 'the seed changes the split');
    assert.deepEqual(f.flatMap((x) => x.val).sort(), [...ids].sort(), 'every case held out exactly once');
    assert.deepEqual(f.map((x) => x.val.length).sort(), [2, 2, 3]);
    for (const x of f) assert.deepEqual([...x.train, ...x.val].sort(), [...ids].sort());
  });

  it('reads split files in both forms and names bad ids', async () => {
    const ids = ['a', 'b', 'c', 'd'];
    const p = join(dir, 'split.json');
    await writeFile(
      p,
      JSON.stringify({
        folds: [
          ['a', 'b'],
          ['c', 'd'],
        ],
      }),
    );
    assert.deepEqual(await readSplitFile(p, ids), [
      { val: ['a', 'b'], train: ['c', 'd'] },
      { val: ['c', 'd'], train: ['a', 'b'] },
    ]);
    await writeFile(
      p,
      JSON.stringify({
        folds: [
          { train: ['a'], val: ['b'] },
          { train: ['b'], val: ['x'] },
        ],
      }),
    );
    await assert.rejects(readSplitFile(p, ids), /fold 1 names case 'x'/);
    await writeFile(p, JSON.stringify({ folds: [['a'], ['a', 'b']] }));
    await assert.rejects(readSplitFile(p, ids), /case 'a' is held out in fold 0 and fold 1/);
    await writeFile(
      p,
      JSON.stringify({
        folds: [
          { train: ['a', 'b'], val: ['b'] },
          { train: ['b'], val: ['a'] },
        ],
      }),
    );
    await assert.rejects(readSplitFile(p, ids), /fold 0 trains and validates on case 'b'/);
  });

  it('readHeldOutCases: a fold of a split file or of a crossval run folder, the val cases of a training run', async () => {
    const run = join(dir, 'held-run');
    await mkdir(join(run, 'fold_1'), { recursive: true });
    // A crossval run's splits.json, as crossval writes it (fold objects with val first).
    await writeFile(
      join(run, 'splits.json'),
      JSON.stringify({
        format: 'uxnet3d-splits/1',
        source: 'seeded',
        folds: [
          { val: ['c'], train: ['a', 'b'] },
          { val: ['a', 'b'], train: ['c'] },
        ],
      }),
    );
    await writeFile(join(run, 'fold_1', 'split.json'), JSON.stringify({ train: ['c'], val: ['a', 'b'] }));
    assert.deepEqual(await readHeldOutCases(run, 1), { cases: ['a', 'b'], description: `fold 1 of 2 in '${join(run, 'splits.json')}'` });
    assert.deepEqual(await readHeldOutCases(join(run, 'splits.json'), 0), { cases: ['c'], description: `fold 0 of 2 in '${join(run, 'splits.json')}'` });
    assert.deepEqual(await readHeldOutCases(join(run, 'fold_1')), { cases: ['a', 'b'], description: `the validation cases of '${join(run, 'fold_1', 'split.json')}'` });
    await assert.rejects(readHeldOutCases(run), /cross-validation split of 2 folds: say which fold's held-out cases with --fold \(0-1\)/);
    await assert.rejects(readHeldOutCases(run, 1.5), /--fold 1\.5: .* has folds 0-1/);
    await assert.rejects(readHeldOutCases(join(run, 'fold_1'), 0), /single train\/validation split, not a cross-validation; leave out --fold/);
    await assert.rejects(readHeldOutCases(join(run, 'missing.json'), 0), /cannot read split file '.*missing\.json': no such file/);
  });

  it('fold records keep infinite HD95 and NaN apart (JSON alone would write both as null)', () => {
    const rec = {
      fold: 0,
      steps: 1,
      trainSeconds: 1,
      inferenceSeconds: { NaN: 0.5 },
      peakRssMB: 1,
      parameters: 1,
      network: {},
      classes: [{ label: 1, name: 'NaN' }],
      cases: [{ caseId: 'Infinity', dice: [NaN, 0], hd95: [NaN, Infinity], nsd: [NaN, 0] }],
    };
    const back = parseFoldRecord(new TextDecoder().decode(encodeFoldRecord(rec)));
    assert.deepEqual(back, rec);
  });

  it('trains every fold, scores the held-out cases as uxnet evaluate does, summarises and writes the ensemble', async () => {
    const run = join(dir, 'full');
    const r = uxnet(crossvalArgs(run), { env, timeoutMs: 300_000 });
    assert.equal(r.status, 0, r.stderr);
    const splits = JSON.parse(await readFile(join(run, 'splits.json'), 'utf8'));
    assert.equal(splits.source, 'seeded');
    assert.equal(splits.folds.length, 2);
    const s = await summary(run);
    assert.equal(s.complete, true);
    assert.deepEqual(s.foldsDone, [0, 1]);
    assert.equal(s.cases.length, 6);
    for (const k of [0, 1]) {
      const ev = await runEvaluate({
        predDir: join(run, `fold_${k}`, 'predictions'),
        gtDir: join(dir, 'data', 'labelsTr'),
        output: join(dir, `ev${k}`),
        classes: '1,2',
        out: sink(),
        err: sink(),
      });
      const held = splits.folds[k].val as string[];
      assert.deepEqual(ev.pairs, held);
      const evJson = JSON.parse(await readFile(ev.jsonPath, 'utf8'));
      for (const c of evJson.cases) {
        const mine = s.cases.find((x: any) => x.caseId === c.caseId);
        assert.equal(mine.fold, k);
        assert.deepEqual(
          mine.dice,
          c.classes.map((m: any) => m.dice),
          `Dice of ${c.caseId}`,
        );
        assert.deepEqual(
          mine.hd95,
          c.classes.map((m: any) => m.hd95),
          `HD95 of ${c.caseId}`,
        );
        assert.deepEqual(
          mine.nsd,
          c.classes.map((m: any) => m.nsd),
          `NSD of ${c.caseId}`,
        );
      }
      // the fold's model was its final checkpoint (validation only at the last step)
      const ck = await loadCheckpoint(join(run, `fold_${k}`, 'checkpoint_last.safetensors'));
      assert.equal(ck.state.step, 4);
      assert.deepEqual(
        (ck.state.history as any[]).filter((h) => h.val_dice).map((h) => h.step),
        [4],
      );
      // the fold's step times: their sum and their median (4 steps: the mean of the middle two)
      const t = (ck.state.history as any[]).map((h) => h.seconds as number).sort((x, y) => x - y);
      assert.equal(t.length, 4);
      const rec = parseFoldRecord(await readFile(join(run, `fold_${k}`, 'fold.json'), 'utf8'));
      assert.ok(Math.abs(rec.trainSeconds - t.reduce((x, y) => x + y, 0)) < 1e-9);
      assert.equal(rec.stepSecondsMedian, (t[1]! + t[2]!) / 2);
      assert.equal(s.perFold[k].stepSecondsMedian, rec.stepSecondsMedian);
      // seconds per held-out volume: 3 cases, so the median is the middle one
      const v = Object.values(rec.inferenceSeconds).sort((x, y) => x - y);
      assert.equal(v.length, 3);
      assert.equal(s.perFold[k].inferenceSecondsMedian, v[1]);
    }
    assert.equal(s.timing.inferenceSeconds, Math.min(s.perFold[0].inferenceSecondsMedian, s.perFold[1].inferenceSecondsMedian));
    assert.equal(s.timing.stepSeconds, Math.min(s.perFold[0].stepSecondsMedian, s.perFold[1].stepSecondsMedian));
    // mean ± sample sd over cases, by hand
    const dice1 = s.cases.map((c: any) => c.dice[0]);
    const mean = dice1.reduce((a: number, b: number) => a + b, 0) / 6;
    const sd = Math.sqrt(dice1.reduce((a: number, b: number) => a + (b - mean) ** 2, 0) / 5);
    assert.ok(Math.abs(s.overall.perClass[0].dice.mean - mean) < 1e-12);
    assert.ok(Math.abs(s.overall.perClass[0].dice.sd - sd) < 1e-12);
    const f0 = s.cases.filter((c: any) => c.fold === 0).map((c: any) => c.dice[1]);
    assert.ok(Math.abs(s.perFold[0].perClass[1].dice.mean - f0.reduce((a: number, b: number) => a + b, 0) / f0.length) < 1e-12);
    assert.ok(s.parameters > 0 && s.macs > 0);
    assert.deepEqual(s.patch, [32, 32, 32]);
    assert.ok(s.timing.trainSeconds > 0 && s.timing.inferenceSecondsPerCase > 0 && s.timing.peakRssMB > 0);
    const csv = (await readFile(join(run, 'summary.csv'), 'utf8')).trim().split('\n');
    assert.equal(csv[0], 'fold,case,label,name,dice,hd95,nsd');
    assert.equal(csv.length, 1 + 6 * 2 + 3 * 2 * 2, 'case rows, then mean and sd rows for fold 0, fold 1 and all');
    assert.ok(csv.includes(`all,mean,1,bright,${s.overall.perClass[0].dice.mean},${s.overall.perClass[0].hd95.mean},${s.overall.perClass[0].nsd.mean}`));
    const md = await readFile(join(run, 'summary.md'), 'utf8');
    assert.match(md, /\| \*\*all\*\* \| 6 \|/);
    assert.match(await readFile(join(run, 'dice-boxplot.svg'), 'utf8'), /<svg[^>]*>[\s\S]*<rect/);
    assert.deepEqual([...(await readFile(join(run, 'dice-boxplot.png'))).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
    const ens = JSON.parse(await readFile(join(run, 'ensemble', 'model.json'), 'utf8'));
    assert.deepEqual(ens.members, [{ path: 'fold_0' }, { path: 'fold_1' }]);
    // what `uxnet demo` quotes for an ensemble that holds out no case: the overall cross-validated mean Dice
    assert.equal(ens.training.crossvalMeanDice, s.overall.meanDice.mean);
    assert.deepEqual(ens.training.split.val, []);
    assert.deepEqual(await readFile(join(run, 'ensemble', 'fold_1', 'weights.safetensors')), await readFile(join(run, 'fold_1', 'model', 'weights.safetensors')));
  });

  it('continues fold by fold after a SIGKILL in the middle of a fold, with results identical to an uninterrupted run', async () => {
    const run = join(dir, 'killed');
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'uxnet.js'), ...crossvalArgs(run)], { cwd: ROOT, env: { ...process.env, ...env }, stdio: 'ignore' });
    const exited = new Promise<void>((res) => child.on('exit', () => res()));
    // Kill once fold 1 has saved a checkpoint: fold 0 finished, fold 1 part-trained.
    const ck = join(run, 'fold_1', 'checkpoint_last.safetensors');
    const deadline = Date.now() + 240_000;
    while (!existsSync(ck) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 25));
    child.kill('SIGKILL');
    await exited;
    assert.ok(existsSync(join(run, 'fold_0', 'fold.json')), 'fold 0 had finished');
    assert.ok(!existsSync(join(run, 'fold_1', 'model', 'model.json')), 'killed while fold 1 was training');
    const stepAtKill = (await loadCheckpoint(ck)).state.step;
    assert.ok(stepAtKill < 4, `killed at step ${stepAtKill} of 4`);

    const r = uxnet(crossvalArgs(run), { env, timeoutMs: 300_000 });
    assert.equal(r.status, 0, r.stderr);
    const a = await summary(join(dir, 'full'));
    const b = await summary(run);
    const scores = (s: any) => s.cases.map((c: any) => [c.caseId, c.fold, c.dice, c.hd95, c.nsd]);
    assert.deepEqual(scores(b), scores(a));
    for (const k of [0, 1]) {
      assert.deepEqual(
        await readFile(join(run, `fold_${k}`, 'model', 'weights.safetensors')),
        await readFile(join(dir, 'full', `fold_${k}`, 'model', 'weights.safetensors')),
        `fold ${k} weights`,
      );
    }
    const steps = (await readFile(join(run, 'fold_1', 'metrics.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).step);
    assert.deepEqual(steps, [1, 2, 3, 4], 'the per-step log has each step once');
    // the peak memory of training is kept across the kill (the session that finished fold 1 trained it too)
    const peak = JSON.parse(await readFile(join(run, 'fold_1', 'peak-memory.json'), 'utf8')).trainingRssMB;
    const rec = JSON.parse(await readFile(join(run, 'fold_1', 'fold.json'), 'utf8'));
    assert.ok(peak > 0 && rec.peakRssMB >= peak);
    assert.ok(existsSync(join(run, 'ensemble', 'model.json')));
  });

  it('an abort signal stops training after the step (checkpoint saved) or prediction before the next case; the next call continues to the uninterrupted result', async () => {
    // In-process (the CLI's own thread count differs, and so would the float sums): stop, continue, and compare with an uninterrupted in-process run.
    const cfgFor = (out: string) => crossvalConfigFromFlags({ dataset: join(dir, 'data'), config: join(dir, 'recipe.json'), output: out, folds: 2 });
    const quiet = () => {};
    const run = join(dir, 'aborted');
    const cfg = await cfgFor(run);

    // Aborted before it starts: no fold is begun.
    const pre = new AbortController();
    pre.abort();
    const r0 = await runCrossval({ config: cfg, folds: 2, fold: 0, log: quiet, signal: pre.signal });
    assert.deepEqual(r0.stopped, { fold: 0, step: 0, steps: 4 });
    assert.equal(r0.summaryPath, null);
    assert.ok(!existsSync(join(run, 'fold_0')) && !existsSync(join(run, 'summary.json')));

    // Aborted during step 2: the step finishes and is saved.
    const a = new AbortController();
    const r1 = await runCrossval({ config: cfg, folds: 2, fold: 0, log: quiet, signal: a.signal, handlers: { onStepEnd: (e) => e.step === 2 && a.abort() } });
    assert.deepEqual(r1.stopped, { fold: 0, step: 2, steps: 4 });
    assert.equal((await loadCheckpoint(join(run, 'fold_0', 'checkpoint_last.safetensors'))).state.step, 2);
    assert.ok(!existsSync(join(run, 'fold_0', 'model')) && !existsSync(join(run, 'fold_0', 'fold.json')));
    // With no fold finished there is no summary to write (not one with empty rows).
    await assert.rejects(
      finishCrossval(await openCrossval(cfg), quiet),
      (e: Error) => e.name === 'TrainRunError' && /: no fold has finished yet, so there is nothing to summarise$/.test(e.message),
    );
    assert.ok(!existsSync(join(run, 'summary.json')));

    // Aborted once training has ended: the model is exported, prediction stops before its first case.
    const b = new AbortController();
    const r2 = await runCrossval({ config: cfg, folds: 2, fold: 0, log: quiet, signal: b.signal, handlers: { onEnd: () => b.abort() } });
    assert.deepEqual(r2.stopped, { fold: 0, step: 4, steps: 4 });
    assert.ok(existsSync(join(run, 'fold_0', 'model', 'model.json')) && !existsSync(join(run, 'fold_0', 'fold.json')));

    // Without --fold: fold 0 is predicted, then fold 1 trains, by when the summary already has fold 0.
    let foldsSummarised: number[] = [];
    const r3 = await runCrossval({ config: cfg, folds: 2, log: quiet, handlers: { onStart: () => void summary(run).then((s) => (foldsSummarised = s.foldsDone)) } });
    assert.equal(r3.stopped, undefined);
    assert.deepEqual(r3.foldsDone, [0, 1]);
    assert.deepEqual(foldsSummarised, [0], 'summary.json covered fold 0 while fold 1 trained');
    const ref = join(dir, 'not-aborted');
    await runCrossval({ config: await cfgFor(ref), folds: 2, fold: 0, log: quiet });
    assert.deepEqual(await readFile(join(run, 'fold_0', 'model', 'weights.safetensors')), await readFile(join(ref, 'fold_0', 'model', 'weights.safetensors')));
    const scores = (s: any) => s.cases.filter((c: any) => c.fold === 0).map((c: any) => [c.caseId, c.dice, c.hd95, c.nsd]);
    assert.deepEqual(scores(await summary(run)), scores(await summary(ref)));
    const steps = (await readFile(join(run, 'fold_0', 'metrics.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).step);
    assert.deepEqual(steps, [1, 2, 3, 4]);
  });

  it('--fold k runs that fold alone (same result as in the full run); no ensemble until all folds are done', async () => {
    const run = join(dir, 'one');
    const r = uxnet(crossvalArgs(run, ['--fold', '1']), { env, timeoutMs: 300_000 });
    assert.equal(r.status, 0, r.stderr);
    const s = await summary(run);
    assert.equal(s.complete, false);
    assert.deepEqual(s.foldsDone, [1]);
    assert.ok(!existsSync(join(run, 'ensemble')));
    assert.deepEqual(await readFile(join(run, 'fold_1', 'model', 'weights.safetensors')), await readFile(join(dir, 'full', 'fold_1', 'model', 'weights.safetensors')));
  });

  it('stores the dataset relative to RUN: a run moved together with its dataset continues; elsewhere it is refused', async () => {
    const stored = JSON.parse(await readFile(join(dir, 'full', 'crossval.json'), 'utf8'));
    assert.equal(stored.config.dataset, '../data');
    // The summary records it the same way: nothing in a kept run names this machine's directories.
    const s = await summary(join(dir, 'full'));
    assert.equal(s.dataset, '../data');
    assert.equal(s.config.dataset, '../data');
    const moved = join(dir, 'moved');
    await cp(join(dir, 'data'), join(moved, 'data'), { recursive: true });
    await cp(join(dir, 'full'), join(moved, 'full'), { recursive: true });
    const again = uxnet(['crossval', '--dataset', join(moved, 'data'), '--config', join(dir, 'recipe.json'), '-o', join(moved, 'full'), '--folds', '2'], { env });
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual((await summary(join(moved, 'full'))).foldsDone, [0, 1]);
    // The same run pointed at a dataset in another place is another run.
    assertUserError(
      uxnet(['crossval', '--dataset', join(dir, 'data'), '--config', join(dir, 'recipe.json'), '-o', join(moved, 'full'), '--folds', '2'], { env }),
      /another configuration: dataset \(".*moved\/data" then, ".*\/data" now\)/,
    );
    // Runs written before (absolute dataset path) still continue.
    await writeFile(join(moved, 'full', 'crossval.json'), JSON.stringify({ ...stored, config: { ...stored.config, dataset: join(moved, 'data') } }));
    assert.equal(uxnet(['crossval', '--dataset', join(moved, 'data'), '--config', join(dir, 'recipe.json'), '-o', join(moved, 'full'), '--folds', '2'], { env }).status, 0);
  });

  it('--init with {fold} starts each fold from its own earlier fold model; a missing one is refused before training', async () => {
    const full = join(dir, 'full');
    // lr 1e-7: one step moves a weight by about 1e-7, so each fold's result shows which weights it started from.
    await writeFile(join(dir, 'recipe-ft.json'), JSON.stringify({ ...JSON.parse(await readFile(join(dir, 'recipe.json'), 'utf8')), steps: 1, lr: 1e-7 }));
    const ft = join(dir, 'ft');
    const args = ['crossval', '--dataset', join(dir, 'data'), '--config', join(dir, 'recipe-ft.json'), '-o', ft, '--folds', '2', '--init', join(full, 'fold_{fold}', 'model')];
    const r = uxnet(args, { env, timeoutMs: 300_000 });
    assert.equal(r.status, 0, r.stderr);
    const weights = async (run: string, k: number) => (await readSafetensorsFile(join(run, `fold_${k}`, 'model', 'weights.safetensors'))).tensors;
    const maxDiff = (a: Map<string, { data: Float32Array }>, b: Map<string, { data: Float32Array }>) => {
      let m = 0;
      for (const [name, t] of a) t.data.forEach((v, i) => (m = Math.max(m, Math.abs(v - b.get(name)!.data[i]!))));
      return m;
    };
    const [a0, a1, b0, b1] = await Promise.all([weights(full, 0), weights(full, 1), weights(ft, 0), weights(ft, 1)]);
    assert.ok(maxDiff(b0, a0) < 1e-5, `fold 0 moved ${maxDiff(b0, a0)} from full/fold_0`);
    assert.ok(maxDiff(b1, a1) < 1e-5, `fold 1 moved ${maxDiff(b1, a1)} from full/fold_1`);
    assert.ok(maxDiff(a0, a1) > 1e-3, 'the two folds of the full run differ, so the check above can tell them apart');
    // crossval.json names the init relative to the run, like the dataset.
    assert.equal(JSON.parse(await readFile(join(ft, 'crossval.json'), 'utf8')).config.init, '../full/fold_{fold}/model');
    // A path that does not exist for a fold: one line naming it, and no fold trained.
    const bad = join(dir, 'ft-bad');
    assertUserError(
      uxnet([...args.slice(0, 5), '-o', bad, '--folds', '2', '--init', join(dir, 'nowhere_{fold}.safetensors')], { env }),
      /fold 0: --init .*nowhere_0\.safetensors does not exist/,
    );
    assert.ok(!existsSync(join(bad, 'fold_0', 'checkpoint_last.safetensors')));
  });

  it('a finished run kept without its weights (left out of a repository) is still summarised, MACs included; no ensemble is written from it until --remake-weights trains the folds again', async () => {
    const kept = join(dir, 'kept');
    await cp(join(dir, 'full'), kept, { recursive: true });
    await rm(join(kept, 'ensemble'), { recursive: true, force: true });
    await rm(join(kept, 'summary.json'));
    for (const k of [0, 1]) await rm(join(kept, `fold_${k}`, 'model', 'weights.safetensors'));
    // fold 1's record as written before records kept the median step time: it comes from metrics.jsonl
    const f1 = join(kept, 'fold_1', 'fold.json');
    const { stepSecondsMedian: m1, ...old } = parseFoldRecord(await readFile(f1, 'utf8'));
    await writeFile(f1, encodeFoldRecord(old));
    await writeFile(join(kept, 'fold_1', 'metrics.jsonl'), [3, 1, 2].map((sec, i) => JSON.stringify({ step: i + 1, loss: 1, seconds: sec }) + '\n').join(''));
    const r = uxnet(crossvalArgs(kept), { env: { ...env, UXNET_QUIET: '' } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /all 2 folds done, but no ensemble folder: fold_0\/model, fold_1\/model have no weights/);
    const [a, b] = [await summary(join(dir, 'full')), await summary(kept)];
    assert.ok(a.macs > 0);
    assert.equal(b.macs, a.macs);
    assert.deepEqual(b.overall, a.overall);
    assert.ok(typeof m1 === 'number');
    assert.equal(b.perFold[1].stepSecondsMedian, 2, 'the median of 3, 1, 2 s from metrics.jsonl');
    assert.equal(b.perFold[0].stepSecondsMedian, a.perFold[0].stepSecondsMedian);
    assert.ok(!existsSync(join(kept, 'ensemble')));
    assert.match(r.stderr, /fold 0: finished earlier; its model has no weights \(--remake-weights trains the fold again to re-make them\)/);
    assert.match(r.stderr, /have no weights \(--remake-weights trains them again\)/);

    // --remake-weights trains both folds again: the same weights as the original run, byte for byte,
    // the recorded results untouched, and the ensemble written.
    const recorded = [0, 1].map((k) => join(kept, `fold_${k}`, 'fold.json'));
    // fold 1's record says one case scored 0.1 more than its model does: the re-made model is reported as differing
    const rec1 = parseFoldRecord(await readFile(recorded[1]!, 'utf8'));
    const mean = (cases: { dice: number[] }[]) => cases.reduce((s, c) => s + (c.dice[0]! + c.dice[1]!) / 2, 0) / cases.length;
    const trueMean = mean(rec1.cases);
    rec1.cases[0]!.dice[0]! += 0.1;
    await writeFile(recorded[1]!, encodeFoldRecord(rec1));
    // fold 0's record as if the run had been given --tta: the re-make (without --tta) checks its model
    // with TTA too, and finds the scores of crossval-predict --tta on the original model
    const tp = uxnet(['crossval-predict', join(dir, 'full'), '-o', join(dir, 'full-tta0'), '--tta', '--folds', '0'], { env });
    assert.equal(tp.status, 0, tp.stderr);
    const ttaDice = new Map(
      (JSON.parse(await readFile(join(dir, 'full-tta0', 'metrics.json'), 'utf8')).cases as { caseId: string; classes: { dice: number }[] }[]).map((c) => [
        c.caseId,
        c.classes.map((x) => x.dice),
      ]),
    );
    const rec0 = parseFoldRecord(await readFile(recorded[0]!, 'utf8'));
    assert.equal(rec0.tta, false, 'the record says the run predicted without TTA');
    assert.ok(
      rec0.cases.some((c) => JSON.stringify(c.dice) !== JSON.stringify(ttaDice.get(c.caseId))),
      'TTA changes some held-out Dice of this model (else the check below could not fail)',
    );
    await writeFile(recorded[0]!, encodeFoldRecord({ ...rec0, tta: true, cases: rec0.cases.map((c) => ({ ...c, dice: ttaDice.get(c.caseId)! })) }));
    const before = await Promise.all([...recorded, join(kept, 'fold_1', 'metrics.jsonl'), join(kept, 'fold_0', 'model', 'model.json')].map((p) => readFile(p)));
    const re = uxnet([...crossvalArgs(kept), '--remake-weights'], { env: { ...env, UXNET_QUIET: '' }, timeoutMs: 300_000 });
    assert.equal(re.status, 0, re.stderr);
    assert.match(re.stderr, /fold 0: weights re-made; held-out Dice equals the recorded one on all 3 cases/);
    assert.match(
      re.stderr,
      new RegExp(
        `fold 1: weights re-made, but this machine's model scores its held-out cases differently: mean Dice ${trueMean.toFixed(4)} against the recorded ${mean(rec1.cases).toFixed(4)}`,
      ),
    );
    for (const k of [0, 1]) {
      assert.deepEqual(await readFile(join(kept, `fold_${k}`, 'model', 'weights.safetensors')), await readFile(join(dir, 'full', `fold_${k}`, 'model', 'weights.safetensors')));
      assert.ok(!existsSync(join(kept, `fold_${k}`, 'remake')), 'the re-training folder is removed');
    }
    const after = await Promise.all([...recorded, join(kept, 'fold_1', 'metrics.jsonl'), join(kept, 'fold_0', 'model', 'model.json')].map((p) => readFile(p)));
    assert.deepEqual(after, before, 'records, logs and model.json are those of the original run');
    assert.deepEqual(JSON.parse(await readFile(join(kept, 'ensemble', 'model.json'), 'utf8')).members, [{ path: 'fold_0' }, { path: 'fold_1' }]);
    // Run again: nothing left to re-make
    const again = uxnet([...crossvalArgs(kept), '--remake-weights'], { env: { ...env, UXNET_QUIET: '' } });
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /fold 0: finished earlier\nfold 1: finished earlier\n/);
  });

  it('refuses to continue a run with another recipe or fold count, naming the difference', async () => {
    assertUserError(uxnet([...crossvalArgs(join(dir, 'full')), '--steps', '5'], { env }), /another configuration: steps \(4 then, 5 now\)/);
    // The same recipe with its fields in another order, or as a file extending it, is the same run: it continues (both folds finished earlier).
    const recipe = JSON.parse(await readFile(join(dir, 'recipe.json'), 'utf8')) as Record<string, unknown>;
    const reversed = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).reverse());
    await writeFile(join(dir, 'reordered.json'), JSON.stringify(reversed({ ...recipe, network: reversed(recipe.network as Record<string, unknown>) })));
    await writeFile(join(dir, 'extending.json'), JSON.stringify({ extends: 'recipe.json', lr: 0.01 }));
    for (const f of ['reordered.json', 'extending.json']) {
      const r = uxnet(['crossval', '--dataset', join(dir, 'data'), '--config', join(dir, f), '-o', join(dir, 'full'), '--folds', '2'], { env });
      assert.equal(r.status, 0, `${f}: ${r.stderr}`);
      assert.match(r.stdout + r.stderr, /fold 0: finished earlier[^]*fold 1: finished earlier/);
    }
    assertUserError(
      uxnet(['crossval', '--dataset', join(dir, 'data'), '--config', join(dir, 'recipe.json'), '-o', join(dir, 'full'), '--folds', '3'], { env }),
      /has 2 folds, --folds asks for 3/,
    );
  });
});
