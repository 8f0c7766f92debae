/**
 * `uxnet queue` end to end against a real redis-server (started here on 127.0.0.1, a free port, a
 * temporary folder, password set, AOF persistence): several worker processes predict a folder of
 * bundled MSD Hippocampus cases while one is SIGKILLed mid-job; outputs exist once and equal a
 * single-process `uxnet predict` byte for byte; a corrupt case fails after its attempts with its
 * reason; resubmission adds nothing and rewrites nothing; paths outside --root are refused; queued
 * jobs survive a Redis crash; a training job whose worker is killed, and whose next workers are stopped (one
 * checkpoints the step it stopped after and hands the job back, one without grace hands it back as it is),
 * finishes on a fourth bit-identically to an uninterrupted `uxnet train`; rediss:// works; the password never appears.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { ROOT } from '../helpers/cli.js';
import { FIXTURES } from '../helpers/fixtures.js';
import { REDIS_MISSING, TestRedis } from '../helpers/redis.js';
import { writeSyntheticDataset } from '../helpers/synthetic-dataset.js';
import { checkpointStep, loadCheckpoint } from '../../src/train/checkpoint.js';
import { KEY_PREFIX } from '../../src/queue/queues.js';

const PASSWORD = 'Qx7-s3cret%pw';
const CASES = ['hippocampus_001', 'hippocampus_004', 'hippocampus_007'];
const MODEL = join(ROOT, 'models', 'hippocampus');
// Short lock and stall intervals so a dead worker's job moves on within ~5 s (defaults: 30 s each).
// On a loaded machine a live worker can miss a renewal too (its job then runs twice, which the
// outputs tolerate), so more stalls than the default 2 are allowed before a job fails.
const STALL = ['--lock-duration', '4000', '--stalled-interval', '1000', '--max-stalled', '5'];
const ENV = { UXNET_THREADS: '1', UXNET_QUIET: '1' };

/** Everything any process printed, checked for the password at the end. */
const transcript: string[] = [];

interface Proc {
  child: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

function start(args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'uxnet.js'), ...args], { cwd: ROOT, env: { ...process.env, ...ENV, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => {
    out += b.toString();
  });
  child.stderr!.on('data', (b: Buffer) => {
    out += b.toString();
  });
  const exited = new Promise<number | null>((resolve) =>
    child.on('close', (code) => {
      transcript.push(out);
      resolve(code);
    }),
  );
  return { child, out: () => out, exited };
}

async function run(args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): Promise<{ status: number | null; out: string }> {
  const p = start(args, env);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs);
  const status = await p.exited;
  clearTimeout(timer);
  return { status, out: p.out() };
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('uxnet queue (BullMQ on a real redis-server)', { skip: REDIS_MISSING }, () => {
  let dir: string;
  let work: string;
  let redis: TestRedis;
  let url: string;
  const workers: Proc[] = [];
  const worker = (name: string, extra: string[] = []) => {
    const w = start(['queue', 'worker', '--redis', url, '--name', name, '--root', work, '--root', MODEL, ...STALL, ...extra]);
    workers.push(w);
    return w;
  };
  const queue = (name: string) => new Queue(name, { connection: { url, maxRetriesPerRequest: null }, prefix: KEY_PREFIX });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'uxnet-queue-'));
    work = join(dir, 'work');
    mkdirSync(join(work, 'good'), { recursive: true });
    mkdirSync(join(work, 'batch'), { recursive: true });
    mkdirSync(join(dir, 'outside'), { recursive: true });
    for (const c of CASES) {
      copyFileSync(join(ROOT, 'datasets', 'msd-hippocampus', 'imagesTr', `${c}.nii.gz`), join(work, 'good', `${c}.nii.gz`));
      copyFileSync(join(work, 'good', `${c}.nii.gz`), join(work, 'batch', `${c}.nii.gz`));
    }
    // The poison case: a gzip stream cut off half-way, as a failed copy would leave it.
    const whole = readFileSync(join(work, 'good', `${CASES[0]}.nii.gz`));
    writeFileSync(join(work, 'batch', 'hippocampus_bad.nii.gz'), whole.subarray(0, whole.length >> 1));
    copyFileSync(join(work, 'good', `${CASES[1]}.nii.gz`), join(dir, 'outside', 'secret.nii.gz'));
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

  it('several workers predict a folder; one SIGKILLed mid-job; outputs once, byte-identical to uxnet predict; the poison case fails with its reason', async () => {
    const ref = await run(['predict', '-i', join(work, 'good'), '-o', join(work, 'ref'), '-m', MODEL]);
    assert.equal(ref.status, 0, ref.out);

    // Worker A alone takes the first job and dies holding it.
    const a = worker('A');
    const submit = await run(['queue', 'predict', '--redis', url, '-i', join(work, 'batch'), '-o', join(work, 'out'), '-m', MODEL, '--attempts', '2', '--backoff', '200']);
    assert.equal(submit.status, 0, submit.out);
    assert.match(submit.out, /predict: 4 job\(s\) queued/);
    await waitFor('worker A to start a job', () => /: start, attempt 1/.test(a.out()));
    const killedId = /(predict-\S+): start/.exec(a.out())![1]!;
    a.child.kill('SIGKILL');
    await a.exited;
    assert.doesNotMatch(a.out(), new RegExp(`${killedId}: wrote`), 'worker A was killed before finishing its job');

    worker('B');
    worker('C');
    // Resubmitting the same folder adds nothing; --wait follows the jobs to the end.
    const wait = await run(['queue', 'predict', '--redis', url, '-i', join(work, 'batch'), '-o', join(work, 'out'), '-m', MODEL, '--attempts', '2', '--backoff', '200', '--wait']);
    assert.equal(wait.status, 1, wait.out);
    assert.match(wait.out, /predict: 0 job\(s\) queued .*; 4 submitted before/);
    assert.match(wait.out, /^failed: case hippocampus_bad after 2 attempt\(s\): .*hippocampus_bad\.nii\.gz: .+$/m);
    assert.match(wait.out, /3 of 4 job\(s\) completed, 1 failed/);
    assert.match(wait.out, /^uxnet: 1 of 4 job\(s\) failed$/m);

    // The killed job was finished by another worker after it stalled.
    const q = queue('predict');
    try {
      const job = await q.getJob(killedId);
      assert.equal(await job!.getState(), 'completed');
      assert.ok(['B', 'C'].includes(job!.processedBy!), `processed by ${job!.processedBy}`);
      assert.ok(job!.attemptsStarted >= 2, `attempts started ${job!.attemptsStarted}`);
      const bad = (await q.getFailed()).map((j) => [j.data.case, j.attemptsMade]);
      assert.deepEqual(bad, [['hippocampus_bad', 2]]);
    } finally {
      await q.close();
    }

    const produced = readdirSync(join(work, 'out')).sort();
    assert.deepEqual(
      produced,
      CASES.map((c) => `${c}.nii.gz`),
      'each output exactly once, no temporary files, nothing for the poison case',
    );
    for (const f of produced) assert.ok(readFileSync(join(work, 'out', f)).equals(readFileSync(join(work, 'ref', f))), `${f} differs from uxnet predict`);

    const status = await run(['queue', 'status', '--redis', url]);
    assert.equal(status.status, 0, status.out);
    assert.match(status.out, /^predict: waiting 0, delayed 0, active 0, completed 3, failed 1; workers 2$/m);
    assert.match(status.out, /^ {2}failed case hippocampus_bad \[predict-hippocampus_bad-[0-9a-f]+\] after 2 attempt\(s\): .*hippocampus_bad\.nii\.gz/m);
  });

  it('a resubmission after cleaning re-runs the jobs but keeps identical outputs untouched; retry runs failed jobs again', async () => {
    const before = Object.fromEntries(CASES.map((c) => [c, statSync(join(work, 'out', `${c}.nii.gz`)).mtimeMs]));
    const clean = await run(['queue', 'clean', '--redis', url, '--queue', 'predict', '--completed']);
    assert.equal(clean.status, 0, clean.out);
    assert.match(clean.out, /predict: removed 4 failed and completed job\(s\)/);
    // Counted from here: under load a lock can lapse and a job run twice earlier, which is also kept.
    const kept = () =>
      workers
        .map((w) => w.out())
        .join('')
        .split('identical output already there, kept').length - 1;
    const keptBefore = kept();
    const again = await run(['queue', 'predict', '--redis', url, '-i', join(work, 'batch'), '-o', join(work, 'out'), '-m', MODEL, '--attempts', '1', '--wait']);
    assert.equal(again.status, 1, again.out);
    assert.match(again.out, /predict: 4 job\(s\) queued/);
    assert.match(again.out, /^failed: case hippocampus_bad after 1 attempt\(s\): /m);
    assert.equal(kept() - keptBefore, CASES.length);
    for (const c of CASES) assert.equal(statSync(join(work, 'out', `${c}.nii.gz`)).mtimeMs, before[c], `${c} was rewritten`);

    // `retry` gives the failed job its attempts again; it fails again, with its reason.
    const retry = await run(['queue', 'retry', '--redis', url, '--queue', 'predict']);
    assert.match(retry.out, /predict: 1 failed job\(s\) moved back to waiting/);
    const w = await run(['queue', 'predict', '--redis', url, '-i', join(work, 'batch'), '-o', join(work, 'out'), '-m', MODEL, '--attempts', '1', '--wait']);
    assert.equal(w.status, 1, w.out);
    assert.match(w.out, /predict: 0 job\(s\) queued .*; 4 submitted before \(3 completed, 1 (waiting|active|failed)\)/);
    assert.match(w.out, /^failed: case hippocampus_bad after 1 attempt\(s\): /m);
    assert.equal(existsSync(join(work, 'out', 'hippocampus_bad.nii.gz')), false);
    assert.equal(kept() - keptBefore, CASES.length);
  });

  it('refuses a job whose paths lie outside --root, also through a symbolic link, at the first attempt', async () => {
    const outside = await run([
      'queue',
      'predict',
      '--redis',
      url,
      '-i',
      join(dir, 'outside', 'secret.nii.gz'),
      '-o',
      join(work, 'refused', 'secret.nii.gz'),
      '-m',
      MODEL,
      '--wait',
    ]);
    assert.equal(outside.status, 1, outside.out);
    assert.match(outside.out, /^failed: case secret after 1 attempt\(s\): input .*outside[/\\]secret\.nii\.gz is outside the worker's --root/m);
    mkdirSync(join(work, 'linked'));
    symlinkSync(join(dir, 'outside', 'secret.nii.gz'), join(work, 'linked', 'innocent.nii.gz'));
    const linked = await run(['queue', 'predict', '--redis', url, '-i', join(work, 'linked'), '-o', join(work, 'refused'), '-m', MODEL, '--wait']);
    assert.equal(linked.status, 1, linked.out);
    assert.match(linked.out, /^failed: case innocent after 1 attempt\(s\): input .*innocent\.nii\.gz is outside the worker's --root/m);
    const escaped = await run([
      'queue',
      'predict',
      '--redis',
      url,
      '-i',
      join(work, 'good', `${CASES[0]}.nii.gz`),
      '-o',
      join(dir, 'outside', 'written.nii.gz'),
      '-m',
      MODEL,
      '--wait',
    ]);
    assert.equal(escaped.status, 1, escaped.out);
    assert.match(escaped.out, /output .*written\.nii\.gz is outside the worker's --root/);
    assert.deepEqual(readdirSync(join(dir, 'outside')), ['secret.nii.gz']);
    assert.equal(existsSync(join(work, 'refused')) && readdirSync(join(work, 'refused')).length > 0, false);
  });

  it('SIGTERM stops idle workers with exit 0; jobs queued before a Redis crash survive its restart (AOF)', async () => {
    for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGTERM');
    const codes = await Promise.all(workers.map((w) => w.exited));
    assert.deepEqual(codes.slice(1), [0, 0], 'workers B and C exit 0 on SIGTERM');

    const few = CASES.slice(0, 2);
    mkdirSync(join(work, 'few'));
    for (const c of few) copyFileSync(join(work, 'good', `${c}.nii.gz`), join(work, 'few', `${c}.nii.gz`));
    const submit = await run(['queue', 'predict', '--redis', url, '-i', join(work, 'few'), '-o', join(work, 'out2'), '-m', MODEL]);
    assert.match(submit.out, /predict: 2 job\(s\) queued/);
    await redis.kill();
    await redis.start();
    const q = queue('predict');
    try {
      assert.deepEqual(await q.getJobCounts('waiting', 'active', 'delayed'), { waiting: 2, active: 0, delayed: 0 });
    } finally {
      await q.close();
    }

    worker('D', ['--queue', 'predict']);
    const wait = await run(['queue', 'predict', '--redis', url, '-i', join(work, 'few'), '-o', join(work, 'out2'), '-m', MODEL, '--wait']);
    assert.equal(wait.status, 0, wait.out);
    assert.match(wait.out, /predict: 0 job\(s\) queued/);
    for (const c of few) assert.ok(readFileSync(join(work, 'out2', `${c}.nii.gz`)).equals(readFileSync(join(work, 'ref', `${c}.nii.gz`))), `${c} differs`);
  });

  it('a training job whose worker is SIGKILLed, then stopped (SIGTERM) with and without grace, finishes on a fourth worker bit-identical to uxnet train', async () => {
    await writeSyntheticDataset(join(work, 'data'), 5);
    // Checkpoints every 5 steps: T1 is killed after one, and T2's stop saves a step between them.
    const steps = 12;
    const saveEvery = 5;
    const train = (out: string) => [
      '--dataset',
      join(work, 'data'),
      '-o',
      out,
      '--preset',
      'auto',
      '--steps',
      String(steps),
      '--save-every',
      String(saveEvery),
      '--val-every',
      '100',
      '--feat-size',
      '4,8,16,32',
      '--hidden-size',
      '16',
      '--depths',
      '1,1,1,1',
      '--roi',
      '32,32,32',
      '--workers',
      '1',
      '--lr',
      '1e-3',
    ];
    const ref = await run(['train', ...train(join(work, 'ref-run'))]);
    assert.equal(ref.status, 0, ref.out);

    const t1 = worker('T1', ['--queue', 'train']);
    const sub = await run(['queue', 'train', '--redis', url, ...train(join(work, 'run'))]);
    assert.equal(sub.status, 0, sub.out);
    assert.match(sub.out, /train: 1 job\(s\) queued/);
    await waitFor('the first checkpoint', () => existsSync(join(work, 'run', 'checkpoint_last.safetensors')));
    t1.child.kill('SIGKILL');
    await t1.exited;
    assert.doesNotMatch(t1.out(), /training done/);

    // T2 takes the run over once T1's lock has expired, and is stopped while training: it finishes its
    // step, saves checkpoint_last at that step (not a multiple of --save-every), hands the run back and exits 0.
    const t2 = worker('T2', ['--queue', 'train']);
    await waitFor('T2 to resume the run', () => /resuming at step \d+/.test(t2.out()));
    const first = Number(/resuming at step (\d+)/.exec(t2.out())![1]);
    // Stopped once it has trained a step of its own, so the stop lands inside the training loop.
    const logged = () =>
      readFileSync(join(work, 'run', 'metrics.jsonl'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { step: number }).step);
    await waitFor('T2 to train a step', () => logged().some((n) => n > first));
    t2.child.kill('SIGTERM');
    assert.equal(await t2.exited, 0, t2.out());
    assert.doesNotMatch(t2.out(), /training done/);
    assert.ok(first >= saveEvery && first < steps, `T2 resumed at ${first}`);
    const stoppedAt = /stopped after step (\d+) of 12, checkpoint saved; handed back, the next worker continues from step (\d+)/.exec(t2.out());
    assert.ok(stoppedAt, `T2 did not checkpoint its stop:\n${t2.out()}`);
    const at = Number(stoppedAt[1]);
    assert.equal(Number(stoppedAt[2]), at);
    assert.ok(at > first && at < steps, `T2 stopped at ${at}, resumed at ${first}`);
    assert.equal(await checkpointStep(join(work, 'run', 'checkpoint_last.safetensors')), at, 'the checkpoint holds the step T2 stopped after');

    // T2b gets no grace (--stop-grace 0): stopped mid-step, it hands the run back as it is and exits 0
    // at once; the next worker continues from the last checkpoint on disk.
    const t2b = worker('T2b', ['--queue', 'train', '--stop-grace', '0']);
    await waitFor('T2b to resume the run', () => new RegExp(`resuming at step ${at} of 12`).test(t2b.out()));
    await waitFor('T2b to train a step', () => logged().some((n) => n > at));
    t2b.child.kill('SIGTERM');
    assert.equal(await t2b.exited, 0, t2b.out());
    assert.match(t2b.out(), /handed back; it continues from its last checkpoint on the next worker/);
    assert.doesNotMatch(t2b.out(), /checkpoint saved; handed back|training done/);
    // No save at the stop: the checkpoint is T2's, or a periodic one T2b reached.
    const onDisk = await checkpointStep(join(work, 'run', 'checkpoint_last.safetensors'));
    assert.ok(onDisk === at || (onDisk > at && onDisk % saveEvery === 0), `checkpoint at ${onDisk} after T2's stop at ${at}`);

    const t3 = worker('T3', ['--queue', 'train']);
    const wait = await run(['queue', 'train', '--redis', url, ...train(join(work, 'run')), '--wait']);
    assert.equal(wait.status, 0, wait.out);
    const resumed = /resuming at step (\d+) of 12/.exec(t3.out());
    assert.ok(resumed, `T3 did not resume:\n${t3.out()}`);
    assert.equal(Number(resumed[1]), onDisk, 'T3 continues from the checkpoint T2b left');

    const ca = await loadCheckpoint(join(work, 'ref-run', 'checkpoint_last.safetensors'));
    const cb = await loadCheckpoint(join(work, 'run', 'checkpoint_last.safetensors'));
    assert.equal(cb.state.step, steps);
    for (const [k, t] of ca.model) assert.deepEqual(cb.model.get(k)!.data, t.data, `parameter ${k}`);
    for (const [k, s] of ca.optimizer!.state) {
      assert.deepEqual(cb.optimizer!.state.get(k)!.expAvg, s.expAvg, `AdamW m of ${k}`);
      assert.deepEqual(cb.optimizer!.state.get(k)!.expAvgSq, s.expAvgSq, `AdamW v of ${k}`);
    }
    assert.ok(existsSync(join(work, 'run', 'model', 'weights.safetensors')));
  });

  it('a job naming a training run it does not own is refused; a malformed payload fails with the schema reason', async () => {
    const q = queue('train');
    try {
      await q.add('train', { kind: 'train', config: { dataset: 'relative/path', outDir: join(work, 'x'), preset: 'auto' } }, { jobId: 'bad-payload', attempts: 3 });
      await q.add('train', { kind: 'train', config: { dataset: join(work, 'data'), outDir: join(work, 'ref-run'), preset: 'auto', steps: 8 } }, { jobId: 'not-mine', attempts: 3 });
      // The worker logs a failure just before BullMQ records it: wait for the recorded state.
      for (const id of ['bad-payload', 'not-mine']) {
        const t0 = Date.now();
        while ((await q.getJobState(id)) !== 'failed') {
          assert.ok(Date.now() - t0 < 30_000, `job ${id} did not fail`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      const bad = await q.getJob('bad-payload');
      assert.equal(await bad!.getState(), 'failed');
      assert.equal(bad!.attemptsMade, 1);
      assert.match(bad!.failedReason, /invalid train job payload: config\.dataset: must be an absolute path/);
      const notMine = await q.getJob('not-mine');
      assert.match(notMine!.failedReason, /ref-run already holds a training run that this job did not start/);
    } finally {
      await q.close();
    }
  });

  it('rediss:// with a password works; a wrong password or host fails in one line; the password is never printed', async () => {
    const tls = new TestRedis({
      password: PASSWORD,
      tls: { cert: join(FIXTURES, 'queue', 'server.crt'), key: join(FIXTURES, 'queue', 'server.key'), ca: join(FIXTURES, 'queue', 'ca.crt') },
    });
    await tls.start();
    try {
      const env = { NODE_EXTRA_CA_CERTS: join(FIXTURES, 'queue', 'ca.crt') };
      // The URL from UXNET_REDIS_URL, as a service would pass it.
      const ok = await run(['queue', 'status'], { ...env, UXNET_REDIS_URL: tls.url() });
      assert.equal(ok.status, 0, ok.out);
      assert.match(ok.out, new RegExp(`^Redis rediss://:\\*\\*\\*@127\\.0\\.0\\.1:${tls.port}$`, 'm'));
      assert.match(ok.out, /^predict: waiting 0, /m);
      const untrusted = await run(['queue', 'status', '--redis', tls.url()]);
      assert.equal(untrusted.status, 2);
      assert.match(untrusted.out, /^uxnet: cannot use Redis at rediss:\/\/:\*\*\*@127\.0\.0\.1:\d+: .*certificate/m);
    } finally {
      await tls.dispose();
    }
    const wrong = await run(['queue', 'status', '--redis', redis.url('wrong-' + PASSWORD)]);
    assert.equal(wrong.status, 2);
    assert.equal(wrong.out.trim().split('\n').length, 1, wrong.out);
    assert.match(wrong.out, /^uxnet: cannot use Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+: WRONGPASS/);
    const unescaped = await run(['queue', 'status', '--redis', `redis://:${PASSWORD}@127.0.0.1:${redis.port}`]);
    assert.equal(unescaped.status, 2);
    assert.match(unescaped.out, /^uxnet: the password in --redis must be percent-encoded/);
    const bad = await run(['queue', 'predict', '--redis', `redis://:${encodeURIComponent(PASSWORD)}@127.0.0.1:1`, '-i', join(work, 'good'), '-o', join(work, 'none'), '-m', MODEL]);
    assert.equal(bad.status, 2);
    assert.match(bad.out, /^uxnet: cannot use Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1: connect ECONNREFUSED/);
    // A submission's --backend would be ignored (the worker's decides): refused before Redis is contacted.
    for (const cmd of [
      ['train', '--dataset', join(work, 'good')],
      ['crossval', '--dataset', join(work, 'good')],
    ]) {
      const be = await run(['queue', ...cmd, '--redis', `redis://127.0.0.1:1`, '--backend', 'reference']);
      assert.equal(be.status, 2, be.out);
      assert.match(
        be.out,
        /^uxnet: --backend: a queued job runs on the backend of the worker that takes it; start the workers with `uxnet queue worker --backend reference` instead$/m,
      );
    }
    const all = transcript.join('\n');
    // The transcript holds (at least) this test's own outputs, so the check below has something to search
    // even when this test runs alone.
    assert.ok(all.includes('uxnet: cannot use Redis at redis://:***@127.0.0.1:1'), 'the transcript records the commands run');
    for (const secret of [PASSWORD, encodeURIComponent(PASSWORD)]) assert.ok(!all.includes(secret), `the password appeared in output`);
  });
});
