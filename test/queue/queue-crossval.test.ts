/**
 * `uxnet queue crossval` against a real redis-server: two folds as jobs on two worker processes,
 * one worker SIGKILLed after its fold's first checkpoint; the fold continues on another worker and
 * the summary, fold weights and ensemble equal a single-process `uxnet crossval` of the same recipe;
 * the summary job runs once; resubmitting adds nothing; a fold that cannot run fails with its reason
 * while the summary waits for it; a run folder outside --root is refused; --remake-weights re-makes
 * the weights of a finished fold that lost them.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { ROOT } from '../helpers/cli.js';
import { REDIS_MISSING, TestRedis } from '../helpers/redis.js';
import { writeSyntheticDataset } from '../helpers/synthetic-dataset.js';
import { tinyRecipe } from '../helpers/tiny-train.js';
import { loadCheckpoint } from '../../src/train/checkpoint.js';
import { KEY_PREFIX } from '../../src/queue/queues.js';

const PASSWORD = 'cv-s3cret';
// A dead worker's fold moves on within ~5 s (lock 4 s, checks every second); see queue.test.ts.
const STALL = ['--lock-duration', '4000', '--stalled-interval', '1000', '--max-stalled', '5'];
const ENV = { UXNET_THREADS: '1', UXNET_QUIET: '1' };

interface Proc {
  child: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

function start(args: string[]): Proc {
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'uxnet.js'), ...args], { cwd: ROOT, env: { ...process.env, ...ENV }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => {
    out += b.toString();
  });
  child.stderr!.on('data', (b: Buffer) => {
    out += b.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, out: () => out, exited };
}

async function run(args: string[], timeoutMs = 120_000): Promise<{ status: number | null; out: string }> {
  const p = start(args);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs);
  const status = await p.exited;
  clearTimeout(timer);
  return { status, out: p.out() };
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 90_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The summary without what depends on the machine's speed and memory (seconds, RSS). */
function withoutTimings(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutTimings);
  if (v && typeof v === 'object')
    return Object.fromEntries(
      Object.entries(v)
        .filter(([k]) => !/seconds|rss/i.test(k) && k !== 'timing')
        .map(([k, x]) => [k, withoutTimings(x)]),
    );
  return v;
}

describe('uxnet queue crossval (BullMQ flow on a real redis-server)', { skip: REDIS_MISSING }, () => {
  let dir: string;
  let work: string;
  let redis: TestRedis;
  let url: string;
  const workers: Proc[] = [];
  const worker = (name: string) => {
    const w = start(['queue', 'worker', '--redis', url, '--name', name, '--queue', 'train', '--root', work, ...STALL]);
    workers.push(w);
    return w;
  };
  const cv = (out: string, extra: string[] = []) => ['--dataset', join(work, 'data'), '--config', join(work, 'recipe.json'), '-o', out, '--folds', '2', ...extra];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'uxnet-queue-cv-'));
    work = join(dir, 'work');
    mkdirSync(work, { recursive: true });
    await writeSyntheticDataset(join(work, 'data'), 6);
    // The recipe of test/train/crossval.test.ts: a checkpoint every step, so a kill lands mid-fold.
    writeFileSync(join(work, 'recipe.json'), JSON.stringify(tinyRecipe({ steps: 4, saveEvery: 1, lr: 0.01 })));
    redis = new TestRedis({ password: PASSWORD });
    await redis.start();
    url = redis.url();
  });

  after(async () => {
    for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    await Promise.all(workers.map((w) => w.exited));
    await redis?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('two folds on two workers, one SIGKILLed mid-fold: summary, fold weights and ensemble equal uxnet crossval; the summary runs once; resubmitting adds nothing', async () => {
    // Same folder name under another parent: the run's name (in summary and ensemble) is its folder
    // name. It runs beside the queued one (the test's wall time is mostly waiting, not computing).
    const refDone = run(['crossval', ...cv(join(work, 'ref', 'cv'))]);

    const runDir = join(work, 'queued', 'cv');
    const w1 = worker('W1');
    const w2 = worker('W2');
    const sub = await run(['queue', 'crossval', '--redis', url, ...cv(runDir), '--attempts', '2', '--backoff', '200']);
    assert.equal(sub.status, 0, sub.out);
    assert.match(sub.out, /^crossval .*queued[/\\]cv: 3 job\(s\) queued on redis:\/\/:\*\*\*@127\.0\.0\.1:\d+$/m);
    assert.ok(existsSync(join(runDir, 'crossval.json')) && existsSync(join(runDir, 'splits.json')), 'shared run files are written at submission');

    // Kill whichever worker trains fold 0, right after its first checkpoint.
    const ck = join(runDir, 'fold_0', 'checkpoint_last.safetensors');
    await waitFor('fold 0 to save a checkpoint', () => existsSync(ck));
    const victim = /crossval-cv-fold0-\S+: start/.test(w1.out()) ? w1 : w2;
    victim.child.kill('SIGKILL');
    await victim.exited;
    const stepAtKill = (await loadCheckpoint(ck)).state.step;
    assert.ok(stepAtKill >= 1 && stepAtKill < 4, `killed at step ${stepAtKill} of 4`);
    assert.ok(!existsSync(join(runDir, 'fold_0', 'fold.json')), 'fold 0 was not finished');
    const w3 = worker('W3');

    const wait = await run(['queue', 'crossval', '--redis', url, ...cv(runDir), '--attempts', '2', '--backoff', '200', '--wait']);
    assert.equal(wait.status, 0, wait.out);
    assert.match(wait.out, /: 0 job\(s\) queued on .*; 3 submitted before/);
    assert.match(wait.out, /^2 of 2 fold job\(s\) completed$/m);
    assert.match(wait.out, /^summary .*queued[/\\]cv[/\\]summary\.json; ensemble .*queued[/\\]cv[/\\]ensemble$/m);

    const ref = await refDone;
    assert.equal(ref.status, 0, ref.out);
    const survivors = [w1, w2, w3].filter((w) => w !== victim);
    const logs = survivors.map((w) => w.out()).join('\n');
    const resumed = /crossval-cv-fold0-\S+: resuming at step (\d+) of 4/.exec(logs);
    assert.ok(resumed, `fold 0 did not resume from its checkpoint:\n${logs}`);
    assert.ok(Number(resumed[1]) >= stepAtKill);
    assert.equal(logs.split('crossval summary written, 2 of 2 folds').length - 1, 1, 'the summary job ran once');
    assert.doesNotMatch(victim.out(), /crossval summary written/);

    for (const k of [0, 1]) {
      const a = readFileSync(join(work, 'ref', 'cv', `fold_${k}`, 'model', 'weights.safetensors'));
      assert.ok(readFileSync(join(runDir, `fold_${k}`, 'model', 'weights.safetensors')).equals(a), `fold ${k} weights differ from uxnet crossval`);
      assert.ok(readFileSync(join(runDir, 'ensemble', `fold_${k}`, 'weights.safetensors')).equals(a), `ensemble member ${k}`);
    }
    assert.equal(readFileSync(join(runDir, 'ensemble', 'model.json'), 'utf8'), readFileSync(join(work, 'ref', 'cv', 'ensemble', 'model.json'), 'utf8'));
    const steps = readFileSync(join(runDir, 'fold_0', 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).step);
    assert.deepEqual(steps, [1, 2, 3, 4], 'the per-step log has each step once');
    const sa = JSON.parse(readFileSync(join(work, 'ref', 'cv', 'summary.json'), 'utf8'));
    const sb = JSON.parse(readFileSync(join(runDir, 'summary.json'), 'utf8'));
    assert.equal(sb.complete, true);
    assert.equal(sb.cases.length, 6);
    assert.deepEqual(withoutTimings(sb), withoutTimings(sa));
    assert.equal(readFileSync(join(runDir, 'summary.csv'), 'utf8'), readFileSync(join(work, 'ref', 'cv', 'summary.csv'), 'utf8'));

    const q = new Queue('train', { connection: { url, maxRetriesPerRequest: null }, prefix: KEY_PREFIX });
    try {
      const done = await q.getCompleted();
      assert.deepEqual(done.map((j) => j.data.kind).sort(), ['crossval-fold', 'crossval-fold', 'crossval-summary'], 'three jobs, none duplicated');
      const fold0 = done.find((j) => j.data.kind === 'crossval-fold' && j.data.fold === 0)!;
      assert.notEqual(fold0.processedBy, victim === w1 ? 'W1' : 'W2');
      assert.ok(fold0.attemptsStarted >= 2, `attempts started ${fold0.attemptsStarted}`);
    } finally {
      await q.close();
    }
  });

  it('a fold another job owns fails at once with its reason, the summary waits for it; a run folder outside --root is refused', async () => {
    const runDir = join(work, 'owned');
    mkdirSync(join(runDir, 'fold_1'), { recursive: true });
    writeFileSync(join(runDir, 'fold_1', 'queue-job.json'), JSON.stringify({ jobId: 'someone-else' }));
    const [r, outside] = await Promise.all([
      run(['queue', 'crossval', '--redis', url, ...cv(runDir, ['--fold', '1']), '--wait']),
      run(['queue', 'crossval', '--redis', url, ...cv(join(dir, 'outside'), ['--fold', '0']), '--wait']),
    ]);
    assert.equal(r.status, 1, r.out);
    assert.match(r.out, /^failed: crossval fold 1 of .*owned after 1 attempt\(s\): .*owned[/\\]fold_1 belongs to queued job someone-else, not this one/m);
    assert.match(r.out, /^the summary waits for the failed fold\(s\); `uxnet queue retry` runs them again$/m);
    assert.match(r.out, /^uxnet: 1 of 2 crossval job\(s\) failed$/m);
    const status = await run(['queue', 'status', '--redis', url, '--queue', 'train']);
    assert.equal(status.status, 0, status.out);
    assert.match(status.out, /^train: waiting 0, summaries waiting for folds 2, delayed 0, active 0, completed 3, failed 2; workers 2$/m);
    assert.match(status.out, /^ {2}failed crossval fold 1 of .*owned \[crossval-owned-fold1-[0-9a-f]+\] after 1 attempt\(s\): /m);
    assert.ok(!existsSync(join(runDir, 'summary.json')));

    assert.equal(outside.status, 1, outside.out);
    assert.match(outside.out, /^failed: crossval fold 0 of .*outside after 1 attempt\(s\): outDir .*outside is outside the worker's --root/m);
    assert.ok(!existsSync(join(dir, 'outside', 'fold_0')));
  });

  it('a worker stopped (SIGTERM) mid-fold checkpoints the step it finished, hands the fold back and exits 0; another worker finishes it, identical to uxnet crossval', async () => {
    const alive = workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
    assert.equal(alive.length, 2, 'the two surviving workers of the first test');
    const before = alive.map((w) => w.out().length);
    const runDir = join(work, 'stopped', 'cv');
    const waiting = run(['queue', 'crossval', '--redis', url, ...cv(runDir), '--wait']);
    const metrics = join(runDir, 'fold_0', 'metrics.jsonl');
    await waitFor('fold 0 to train a step', () => existsSync(metrics) && readFileSync(metrics, 'utf8').trim().length > 0);
    const fresh = (i: number) => alive[i]!.out().slice(before[i]);
    const i = /crossval-cv-fold0-\S+: start/.test(fresh(0)) ? 0 : 1;
    const stopped = alive[i]!;
    stopped.child.kill('SIGTERM');
    assert.equal(await stopped.exited, 0, stopped.out());
    const m = /(crossval-cv-fold0-\S+): stopped after step (\d+) of 4, checkpoint saved; handed back, the next worker continues from step (\d+)/.exec(fresh(i));
    assert.ok(m, `no checkpointed hand-back:\n${fresh(i)}`);
    const at = Number(m[2]);
    assert.equal(Number(m[3]), at);
    assert.ok(at >= 1 && at <= 4, `stopped at ${at}`);
    assert.equal((await loadCheckpoint(join(runDir, 'fold_0', 'checkpoint_last.safetensors'))).state.step, at, 'the checkpoint holds the step the stop finished');

    const r = await waiting;
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /^2 of 2 fold job\(s\) completed$/m);
    const other = fresh(1 - i);
    if (at < 4) assert.match(other, new RegExp(`${m[1]}: resuming at step ${at} of 4`), 'the other worker continues from the stop');
    for (const k of [0, 1]) {
      const a = readFileSync(join(work, 'ref', 'cv', `fold_${k}`, 'model', 'weights.safetensors'));
      assert.ok(readFileSync(join(runDir, `fold_${k}`, 'model', 'weights.safetensors')).equals(a), `fold ${k} weights differ from uxnet crossval`);
    }
    const steps = readFileSync(metrics, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).step);
    assert.deepEqual(steps, [1, 2, 3, 4], 'the per-step log has each step once');
    const q = new Queue('train', { connection: { url, maxRetriesPerRequest: null }, prefix: KEY_PREFIX });
    try {
      const job = await q.getJob(m[1]!);
      assert.equal(await job!.getState(), 'completed');
      // Two attempts started; only the one that finished counts as made (the hand-back is no failure).
      assert.equal(job!.attemptsStarted, 2);
      assert.equal(job!.attemptsMade, 1, 'the hand-back is not a failed attempt');
      assert.ok(!job!.failedReason, `failed reason ${job!.failedReason}`);
    } finally {
      await q.close();
    }
  });

  it("--remake-weights: a finished run kept without fold 1's weights gets no ensemble until a re-make job trains fold 1 again, to the same weights; fold 0 is left alone", async () => {
    const alive = workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
    assert.ok(alive.length >= 1, 'a worker of the earlier tests is still running');
    const runDir = join(work, 'stopped', 'cv'); // finished by the test before, both folds
    const w1 = join(runDir, 'fold_1', 'model', 'weights.safetensors');
    const ref = readFileSync(join(work, 'ref', 'cv', 'fold_1', 'model', 'weights.safetensors'));
    const fold0 = readFileSync(join(runDir, 'fold_0', 'model', 'weights.safetensors'));
    const record = readFileSync(join(runDir, 'fold_1', 'fold.json'), 'utf8');
    rmSync(w1);
    rmSync(join(runDir, 'ensemble'), { recursive: true });
    const before = alive.map((w) => w.out().length);
    const logs = () => alive.map((w, i) => w.out().slice(before[i])).join('\n');

    // Without the flag: the jobs of the first submission are found complete, nothing is trained.
    const plain = await run(['queue', 'crossval', '--redis', url, ...cv(runDir), '--wait']);
    assert.equal(plain.status, 0, plain.out);
    assert.match(plain.out, /: 0 job\(s\) queued on .*; 3 submitted before/);
    assert.ok(!existsSync(w1) && !existsSync(join(runDir, 'ensemble')));

    const re = await run(['queue', 'crossval', '--redis', url, ...cv(runDir), '--remake-weights', '--wait']);
    assert.equal(re.status, 0, re.out);
    assert.match(re.out, /: 3 job\(s\) queued on /, 'a re-make has jobs of its own');
    assert.match(re.out, /^2 of 2 fold job\(s\) completed$/m);
    assert.match(re.out, /^summary .*stopped[/\\]cv[/\\]summary\.json; ensemble .*stopped[/\\]cv[/\\]ensemble$/m);
    const l = logs();
    assert.match(l, /crossval-cv-fold0-\S+: fold 0: finished earlier\n/);
    assert.match(l, /crossval-cv-fold1-\S+: fold 1: finished earlier, but its model has no weights; training it again in \S+remake to re-make them/);
    assert.match(l, /crossval-cv-fold1-\S+: fold 1: weights re-made; held-out Dice equals the recorded one on all 3 cases \(mean \d\.\d{4}\)/);
    assert.ok(readFileSync(w1).equals(ref), 'the re-made weights are those of uxnet crossval');
    assert.ok(readFileSync(join(runDir, 'fold_0', 'model', 'weights.safetensors')).equals(fold0), 'fold 0 is not trained again');
    assert.ok(readFileSync(join(runDir, 'ensemble', 'fold_1', 'weights.safetensors')).equals(ref), 'the ensemble is written with the re-made member');
    assert.equal(readFileSync(join(runDir, 'fold_1', 'fold.json'), 'utf8'), record, "the fold's record is kept");
    assert.ok(!existsSync(join(runDir, 'fold_1', 'remake')), 'the re-training folder is removed');
  });
});
