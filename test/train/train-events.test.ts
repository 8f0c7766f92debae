/**
 * Training as a library: the event handlers receive the run's real values, a stop request saves a
 * checkpoint after the step in progress, metrics.jsonl never holds a step twice, and nothing outside
 * the run folder is replaced without `force`.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile, appendFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSyntheticDataset } from '../helpers/synthetic-dataset.js';
import { tinyTrainConfig } from '../helpers/tiny-train.js';
import type { TrainConfig } from '../../src/train/config.js';
import { runTraining, TrainRunError } from '../../src/train/run.js';
import type { CheckpointEvent, StepEndEvent, ValidationEndEvent } from '../../src/train/events.js';
import type { PreprocessProgress } from '../../src/data/preprocess.js';
import { loadCheckpoint } from '../../src/train/checkpoint.js';
import '../../src/backends/index.js';

let dir: string;

const config = (out: string, over: Partial<TrainConfig> = {}): TrainConfig => tinyTrainConfig(dir, out, over);

const metricSteps = async (run: string) =>
  (await readFile(join(run, 'metrics.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));

describe('training library: handlers, stop, resume, outputs', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'uxnet-train-ev-'));
    await writeSyntheticDataset(join(dir, 'data'), 5);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reports preprocessing, steps, validations and checkpoints to the handlers with the logged values', async () => {
    const out = join(dir, 'run');
    const progress: PreprocessProgress[] = [];
    const steps: StepEndEvent[] = [];
    const vals: ValidationEndEvent[] = [];
    const cks: CheckpointEvent[] = [];
    const ends: unknown[] = [];
    const starts: unknown[] = [];
    const lines: string[] = [];
    const r = await runTraining(config(out), {
      handlers: {
        onProgress: (e) => progress.push({ ...e }),
        onStepEnd: (e) => steps.push(e),
        onValidationEnd: (e) => vals.push(e),
        onCheckpoint: (e) => cks.push(e),
        onEnd: (e) => ends.push(e),
        onStart: (e) => starts.push(e),
        onLog: (l) => lines.push(l),
      },
    });
    // 5 training cases: fingerprinted, then cached, each counted up to 5.
    assert.deepEqual(
      progress.filter((p) => p.stage === 'fingerprint').map((p) => p.done),
      [0, 1, 2, 3, 4, 5],
    );
    assert.deepEqual(
      progress.filter((p) => p.stage === 'caching').map((p) => p.done),
      [0, 1, 2, 3, 4, 5],
    );
    assert.ok(progress.every((p) => p.total === 5));
    assert.deepEqual(starts, [{ startStep: 0, totalSteps: 3 }]);
    const logged = await metricSteps(out);
    assert.deepEqual(
      steps.map((s) => s.step),
      [1, 2, 3],
    );
    steps.forEach((s, i) => {
      assert.equal(s.totalSteps, 3);
      assert.equal(s.loss, logged[i].loss, 'the event carries the logged loss');
      assert.equal(s.lossDice, logged[i].loss_dice);
      assert.equal(s.lossCe, logged[i].loss_ce);
      assert.equal(s.lr, 1e-3);
      assert.ok(Math.abs(s.loss - (s.lossDice + s.lossCe)) < 1e-5);
    });
    // valEvery 2 and the last step: validations at 2 and 3, equal to what metrics.jsonl holds.
    assert.deepEqual(
      vals.map((v) => v.step),
      [2, 3],
    );
    vals.forEach((v) => {
      const l = logged[v.step - 1];
      assert.deepEqual(v.dicePerClass, l.val_dice);
      assert.equal(v.meanDice, l.val_mean_dice);
      assert.equal(v.meanDice, (v.dicePerClass[0]! + v.dicePerClass[1]!) / 2);
    });
    assert.equal(vals[0]!.isBest, true);
    assert.deepEqual(r.best, vals[1]!.best);
    // saveEvery 1: `last` after every step; `best` whenever the validation improved.
    assert.deepEqual(
      cks.filter((c) => c.kind === 'last').map((c) => c.step),
      [1, 2, 3],
    );
    assert.deepEqual(
      cks.filter((c) => c.kind === 'best').map((c) => c.step),
      vals.filter((v) => v.isBest).map((v) => v.step),
    );
    assert.equal(cks[0]!.path, join(out, 'checkpoint_last.safetensors'));
    assert.deepEqual(ends, [{ step: 3, totalSteps: 3, stopped: false }]);
    assert.match(lines[0]!, /^UX-Net 4\/8\/16\/32 hidden 16 .* 3 classes; 4 training and 1 validation cases; crops 32x32x32 x 2$/);
    assert.match(lines.at(-1)!, /^done in .*model folder .*run\/model$/);
    assert.equal(r.modelDir, join(out, 'model'));
  });

  it('a stop request finishes the step, saves a checkpoint, exports nothing; resume never logs a step twice', async () => {
    const out = join(dir, 'stopped');
    const stop = new AbortController();
    const r = await runTraining(config(out, { steps: 4, saveEvery: 10, valEvery: 10 }), {
      signal: stop.signal,
      handlers: {
        onStepEnd: (e) => {
          if (e.step === 2) stop.abort();
        },
      },
    });
    assert.equal(r.stopped, true);
    assert.equal(r.completed, 2);
    assert.equal(r.modelDir, null);
    assert.equal(existsSync(join(out, 'model')), false, 'no model folder from an unfinished run');
    assert.equal((await loadCheckpoint(join(out, 'checkpoint_last.safetensors'))).state.step, 2, 'saved at the stop, not at a periodic save');
    assert.deepEqual(
      (await metricSteps(out)).map((l) => l.step),
      [1, 2],
    );
    // A run killed outright after logging step 3 but before saving it: the line is dropped on resume.
    await appendFile(join(out, 'metrics.jsonl'), JSON.stringify({ step: 3, loss: 123 }) + '\n');
    const r2 = await runTraining(config(out, { steps: 4, saveEvery: 10, valEvery: 10 }), { resume: true });
    assert.equal(r2.completed, 4);
    const lines = await metricSteps(out);
    assert.deepEqual(
      lines.map((l) => l.step),
      [1, 2, 3, 4],
    );
    assert.notEqual(lines[2].loss, 123);
  });

  it('never replaces an existing model folder outside the run without force, and checks before any compute', async () => {
    const target = join(dir, 'shipped-model');
    await mkdir(target);
    await writeFile(join(target, 'model.json'), '{"keep": true}');
    const out = join(dir, 'export-run');
    await assert.rejects(
      runTraining(config(out, { modelDir: target })),
      (e: Error) => e instanceof TrainRunError && e.message === `model export target ${target} already exists; pass --force to replace it, or export elsewhere`,
    );
    assert.equal(existsSync(out), false, 'refused before the run folder was created');
    assert.equal(await readFile(join(target, 'model.json'), 'utf8'), '{"keep": true}');
    // A folder holding anything but a run's files is not a run folder.
    await assert.rejects(runTraining(config(target)), (e: Error) => e instanceof TrainRunError && /holds files that are not a training run's \(model\.json\)/.test(e.message));
    const r = await runTraining(config(out, { modelDir: target, steps: 1 }), { force: true });
    assert.equal(r.modelDir, target);
    const manifest = JSON.parse(await readFile(join(target, 'model.json'), 'utf8'));
    assert.equal(manifest.format, 'uxnet3d-model/1');
    assert.equal(manifest.network.outChans, 3);
    assert.equal(existsSync(join(out, 'model')), false, 'exported only to the named target');
  });
});
