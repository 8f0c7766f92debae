/**
 * `uxnet train` as a user runs it: Ctrl-C (a real SIGINT to a child process) finishes the step,
 * saves a checkpoint, says so and exits 130; `uxnet train -o RUN --resume` alone then continues from
 * another working directory, and metrics.jsonl holds every step exactly once. `uxnet crossval` stops a
 * fold the same way, and the same command continues it.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/cli.js';
import { writeSyntheticDataset } from '../helpers/synthetic-dataset.js';
import { tinyRecipe } from '../helpers/tiny-train.js';
import { loadCheckpoint } from '../../src/train/checkpoint.js';

const BIN = join(ROOT, 'bin', 'uxnet.js');
const env = { ...process.env, UXNET_QUIET: '1', UXNET_THREADS: '1' };
const steps = (run: string) =>
  existsSync(join(run, 'metrics.jsonl'))
    ? readFileSync(join(run, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l).step as number)
    : [];

describe('uxnet train: stop and resume', () => {
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'uxnet-train-stop-'));
    await writeSyntheticDataset(join(dir, 'data'), 4);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('SIGINT saves a checkpoint after the current step; --resume with only -o continues', async () => {
    // Relative paths from the first working directory: the resume below runs from another one.
    const child = spawn(
      process.execPath,
      [
        BIN,
        'train',
        '--dataset',
        'data',
        '-o',
        'run',
        '--preset',
        'auto',
        '--steps',
        '400',
        '--feat-size',
        '4,8,16,32',
        '--hidden-size',
        '16',
        '--depths',
        '1,1,1,1',
        '--roi',
        '32,32,32',
        '--crops',
        '1',
        '--volumes',
        '2',
        '--val-every',
        '1000',
        '--save-every',
        '1000',
        '--workers',
        '1',
        '--lr',
        '1e-3',
      ],
      { cwd: dir, env },
    );
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    const run = join(dir, 'run');
    const t0 = Date.now();
    while (steps(run).length < 2) {
      assert.ok(Date.now() - t0 < 120_000 && child.exitCode === null, `training did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGINT');
    const code = await exited;
    assert.equal(code, 130, stderr);
    const done = steps(run);
    const n = done.length;
    assert.ok(n >= 2 && n < 400);
    assert.deepEqual(
      done,
      Array.from({ length: n }, (_, i) => i + 1),
    );
    // save-every 1000: the only checkpoint is the one written because of the signal.
    assert.equal((await loadCheckpoint(join(run, 'checkpoint_last.safetensors'))).state.step, n);
    assert.match(stderr, /SIGINT: stopping after the current step and saving a checkpoint/);
    assert.match(stderr, new RegExp(`stopped after step ${n} of 400; checkpoint saved in ${join(run, 'checkpoint_last.safetensors')}`));
    assert.match(stderr.trim().split('\n').at(-1)!, new RegExp(`^uxnet: SIGINT: stopped after step ${n} of 400; continue with: uxnet train -o ${run} --resume$`));
    assert.doesNotMatch(stderr, /\n\s+at /);
    assert.equal(existsSync(join(run, 'model')), false);
    const cfg = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8'));
    assert.equal(cfg.dataset, join(dir, 'data'), 'config.json stores the dataset path absolute');
    assert.equal(cfg.volumesPerStep, 2, '--volumes is stored, so the resume below keeps it');
    assert.match(stderr, /crops 32x32x32 x 1 from each of 2 volumes a step/);

    const r = spawnSync(process.execPath, [BIN, 'train', '-o', run, '--resume', '--steps', String(n + 2)], { cwd: ROOT, env, encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`resuming at step ${n} of ${n + 2}`));
    assert.match(r.stderr, /from each of 2 volumes a step/);
    assert.deepEqual(
      steps(run),
      Array.from({ length: n + 2 }, (_, i) => i + 1),
      'every step once',
    );
    assert.ok(existsSync(join(run, 'model', 'model.json')));
  });

  it('--resume on a folder that is not a run names the missing config', () => {
    const r = spawnSync(process.execPath, [BIN, 'train', '-o', join(dir, 'nothing'), '--resume'], { cwd: ROOT, env, encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.equal(r.stderr, `uxnet: --resume: ${join(dir, 'nothing', 'config.json')} does not exist (is ${join(dir, 'nothing')} a training run folder?)\n`);
  });
});

describe('uxnet crossval: stop and continue', () => {
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'uxnet-crossval-stop-'));
    await writeSyntheticDataset(join(dir, 'data'), 4);
    writeFileSync(join(dir, 'recipe.json'), JSON.stringify(tinyRecipe({ cropsPerVolume: 1, steps: 120, saveEvery: 1000, lr: 1e-3 })));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('SIGINT in a fold saves its checkpoint after the current step and exits 130; the same command continues that fold', async () => {
    const args = [BIN, 'crossval', '--dataset', 'data', '--config', 'recipe.json', '-o', 'run', '--folds', '2', '--fold', '0'];
    const child = spawn(process.execPath, args, { cwd: dir, env });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    const fold = join(dir, 'run', 'fold_0');
    const t0 = Date.now();
    while (steps(fold).length < 2) {
      assert.ok(Date.now() - t0 < 120_000 && child.exitCode === null, `training did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGINT');
    assert.equal(await exited, 130, stderr);
    const n = steps(fold).length;
    assert.ok(n >= 2 && n < 120, `stopped at step ${n}`);
    assert.deepEqual(
      steps(fold),
      Array.from({ length: n }, (_, i) => i + 1),
    );
    // save-every 1000: the only checkpoint is the one written because of the signal.
    assert.equal((await loadCheckpoint(join(fold, 'checkpoint_last.safetensors'))).state.step, n);
    assert.match(stderr, /SIGINT: stopping after the current step and saving a checkpoint/);
    assert.match(stderr, new RegExp(`stopped after step ${n} of 120; checkpoint saved in .*; continue with: the same crossval command \\(it resumes this fold\\)`));
    assert.equal(stderr.trim().split('\n').at(-1), `uxnet: SIGINT: stopped in fold 0 at step ${n} of 120; run the same uxnet crossval command again to continue`);
    assert.doesNotMatch(stderr, /\n\s+at /);
    assert.ok(!existsSync(join(fold, 'fold.json')) && !existsSync(join(dir, 'run', 'summary.json')), 'no fold finished, so nothing is summarised');

    const r = spawnSync(process.execPath, args, { cwd: dir, env, encoding: 'utf8', timeout: 300_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`resuming at step ${n} of 120`));
    assert.deepEqual(
      steps(fold),
      Array.from({ length: 120 }, (_, i) => i + 1),
      'every step once',
    );
    assert.ok(existsSync(join(fold, 'fold.json')));
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'run', 'summary.json'), 'utf8')).foldsDone, [0]);
  });
});
