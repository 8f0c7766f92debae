import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { FlowProducer, type Queue } from 'bullmq';
import { resolveRoots } from '../../queue/confine.js';
import { QueueConfigError } from '../../queue/errors.js';
import { crossvalFoldJobId, crossvalSummaryJobId, modelDigest, predictJobId, trainJobId } from '../../queue/job-id.js';
import {
  cleanJobs,
  describeJob,
  queueStatus,
  retryFailed,
  submitCrossval,
  submitJobs,
  waitForCrossval,
  waitForJobs,
  type CrossvalSubmission,
  type SubmitReport,
  type Submission,
} from '../../queue/producer.js';
import { checkRedis, connectionOptions, KEY_PREFIX, openQueue, QUEUE_NAMES, RETRY_DEFAULTS, STALL_DEFAULTS, type QueueName } from '../../queue/queues.js';
import { parseRedisUrl, redact, type RedisTarget } from '../../queue/redis-url.js';
import {
  presetIsPath,
  validateCrossvalFoldJob,
  validateCrossvalSummaryJob,
  validatePredictJob,
  validateTrainJob,
  type PredictJobData,
  type TrainJobData,
} from '../../queue/schema.js';
import { prepareCrossval } from '../../train/crossval.js';
import { startQueueWorker } from '../../queue/worker.js';
import type { TrainConfig } from '../../train/config.js';
import { selectBackend } from '../backend.js';
import { UserError } from '../errors.js';
import { createProgress } from '../progress.js';
import { addCrossvalOptions, crossvalConfigFromFlags, crossvalUserError, type CrossvalFlags } from './crossval.js';
import { caseName, resolvePairs } from './predict.js';
import { addTrainOptions, trainConfigFromFlags, type TrainFlags } from './train.js';

const say = (s: string) => process.stderr.write(s + '\n');

interface RedisFlags {
  redis?: string;
}
interface RetryFlags {
  attempts?: number;
  backoff?: number;
  wait?: boolean;
}

const int = (name: string, min: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UserError(`${name} must be an integer >= ${min}, got '${v}'`);
  return n;
};
const collect = (v: string, prev: string[] = []) => [...prev, v];

function queuesFlag(v: string | undefined): QueueName[] {
  if (v === undefined || v === 'all') return [...QUEUE_NAMES];
  const names = v.split(',');
  for (const n of names) if (!(QUEUE_NAMES as readonly string[]).includes(n)) throw new UserError(`--queue must be predict, train or all, got '${n}'`);
  return names as QueueName[];
}

/**
 * Runs a queue command with the Redis URL parsed and checked. Whatever escapes is scrubbed of the
 * password first: a driver's message or a stack trace must not print it either.
 */
async function withRedis<T>(flags: RedisFlags, fn: (t: RedisTarget) => Promise<T>): Promise<T> {
  let target: RedisTarget | undefined;
  try {
    target = parseRedisUrl(flags.redis ?? process.env.UXNET_REDIS_URL);
    const { warnings } = await checkRedis(target);
    for (const w of warnings) say(`warning: ${w}`);
    return await fn(target);
  } catch (e) {
    if (e instanceof QueueConfigError) throw new UserError(e.message);
    if (target && e instanceof Error) {
      e.message = redact(e.message, target.secrets);
      if (e.stack) e.stack = redact(e.stack, target.secrets);
    }
    throw e;
  }
}

async function withQueue<T>(t: RedisTarget, name: QueueName, fn: (q: Queue) => Promise<T>): Promise<T> {
  const q = openQueue(t, name);
  let last = '';
  q.on('error', (e: Error) => {
    const msg = redact(e.message, t.secrets);
    if (msg !== last) say(`queue ${name}: ${msg}`);
    last = msg;
  });
  try {
    return await fn(q);
  } finally {
    await q.close();
  }
}

const retryOf = (f: RetryFlags) => ({ attempts: f.attempts ?? RETRY_DEFAULTS.attempts, backoff: f.backoff ?? RETRY_DEFAULTS.backoff });

function reportSubmission(t: RedisTarget, name: string, r: SubmitReport): void {
  const byState = new Map<string, number>();
  for (const e of r.existing) byState.set(e.state, (byState.get(e.state) ?? 0) + 1);
  const known = [...byState].map(([s, n]) => `${n} ${s}`).join(', ');
  say(`${name}: ${r.added.length} job(s) queued on ${t.display}${r.existing.length ? `; ${r.existing.length} submitted before (${known})` : ''}`);
  if (byState.get('failed')) say(`${byState.get('failed')} earlier job(s) had failed; \`uxnet queue retry\` runs them again`);
}

async function submitAndMaybeWait(t: RedisTarget, name: QueueName, jobs: Submission[], f: RetryFlags): Promise<void> {
  await withQueue(t, name, async (q) => {
    const r = await submitJobs(q, jobs, retryOf(f));
    reportSubmission(t, name, r);
    if (!f.wait) return;
    const bar = createProgress({ label: name, total: jobs.length, fields: ['active', 'failed'] });
    const outcomes = await waitForJobs(
      q,
      jobs.map((j) => j.id),
      { onProgress: (p) => bar.update(p.done, { active: p.active, failed: p.failed }) },
    );
    bar.stop();
    const failed = outcomes.filter((o) => o.state === 'failed');
    for (const o of failed)
      say(`failed: ${describeJob(o.data ?? jobs.find((j) => j.id === o.id)?.data, o.id)} after ${o.attempts} attempt(s): ${redact(o.reason ?? 'no reason recorded', t.secrets)}`);
    say(`${outcomes.length - failed.length} of ${outcomes.length} job(s) completed${failed.length ? `, ${failed.length} failed` : ''}`);
    if (failed.length) throw new UserError(`${failed.length} of ${outcomes.length} job(s) failed`, 1);
  });
}

interface PredictFlags extends RedisFlags, RetryFlags {
  input: string;
  output: string;
  model: string;
  tta?: boolean;
  fast?: boolean;
  overlap?: number;
  mode?: 'gaussian' | 'constant';
  swBatch?: number;
}

async function queuePredict(f: PredictFlags): Promise<void> {
  const modelDir = resolve(f.model);
  if (!existsSync(resolve(modelDir, 'model.json'))) throw new UserError(`model folder '${f.model}' has no model.json`);
  const pairs = await resolvePairs(resolve(f.input), resolve(f.output));
  const digest = await modelDigest(modelDir);
  const jobs = pairs.map(([input, output]): Submission => {
    const data: PredictJobData = validatePredictJob({
      kind: 'predict',
      case: caseName(input).replace(/_0000$/, ''),
      input,
      output,
      model: modelDir,
      modelDigest: digest,
      options: { tta: f.tta, fast: !!f.fast, overlap: f.overlap, mode: f.mode, swBatch: f.swBatch },
    });
    return { id: predictJobId(data), data };
  });
  await withRedis(f, (t) => submitAndMaybeWait(t, 'predict', jobs, f));
}

/** Paths of a training config made absolute: a worker on another machine runs in another directory. */
function absoluteTrainConfig(cfg: TrainConfig): TrainConfig {
  const c: TrainConfig = { ...cfg, dataset: resolve(cfg.dataset), outDir: resolve(cfg.outDir) };
  for (const k of ['split', 'init', 'cacheDir', 'modelDir'] as const) if (c[k]) c[k] = resolve(c[k]!);
  if (presetIsPath(c.preset)) c.preset = resolve(c.preset);
  return c;
}

/**
 * A queued job runs on whichever worker takes it, with that worker's backend; a `--backend` given at
 * submission would be silently ignored, so it is refused (the recipe's own `backend` key is ignored too).
 */
function refuseSubmitBackend(f: { backend?: string }): void {
  if (f.backend !== undefined)
    throw new UserError(`--backend: a queued job runs on the backend of the worker that takes it; start the workers with \`uxnet queue worker --backend ${f.backend}\` instead`);
}

async function queueTrain(f: TrainFlags & RedisFlags & RetryFlags): Promise<void> {
  refuseSubmitBackend(f);
  const cfg = absoluteTrainConfig(await trainConfigFromFlags(f));
  const data: TrainJobData = validateTrainJob({ kind: 'train', config: cfg });
  await withRedis(f, (t) => submitAndMaybeWait(t, 'train', [{ id: trainJobId(data), data }], f));
}

/**
 * A crossval as jobs on the train queue: one per fold and a summary job that BullMQ runs once all of
 * them have completed. RUN/crossval.json and RUN/splits.json are settled here, before any job exists,
 * so fold jobs running at once only read them (and a recipe that does not match RUN is refused now).
 */
async function queueCrossval(f: CrossvalFlags & RedisFlags & RetryFlags): Promise<void> {
  refuseSubmitBackend(f);
  const cfg = absoluteTrainConfig(await crossvalConfigFromFlags(f));
  await withRedis(f, async (t) => {
    const plan = await prepareCrossval({ config: cfg, folds: f.folds, fold: f.fold, splitFile: f.split }).catch((e: unknown) => {
      throw crossvalUserError(e);
    });
    const K = plan.splits.folds.length;
    const run = f.fold !== undefined ? [f.fold] : [...Array(K).keys()];
    const common = { config: cfg, folds: K, tta: !!f.tta, ...(f.remakeWeights ? { remakeWeights: true as const } : {}) };
    const folds = run.map((fold) => {
      const data = validateCrossvalFoldJob({ kind: 'crossval-fold', ...common, fold });
      return { id: crossvalFoldJobId(data), data };
    });
    const summaryData = validateCrossvalSummaryJob({ kind: 'crossval-summary', ...common, run });
    const sub: CrossvalSubmission = { summary: { id: crossvalSummaryJobId(summaryData), data: summaryData }, folds };
    await withQueue(t, 'train', async (q) => {
      const flow = new FlowProducer({ connection: connectionOptions(t), prefix: KEY_PREFIX });
      let r: SubmitReport;
      try {
        r = await submitCrossval(q, flow, sub, retryOf(f));
      } finally {
        await flow.close();
      }
      reportSubmission(t, `crossval ${plan.runDir}`, r);
      if (!f.wait) return;
      const bar = createProgress({ label: 'crossval', total: folds.length + 1, fields: ['active', 'failed'] });
      const out = await waitForCrossval(q, sub, { onProgress: (p) => bar.update(p.done, { active: p.active, failed: p.failed }) });
      bar.stop();
      const failed = [...out.folds, ...(out.summary ? [out.summary] : [])].filter((o) => o.state === 'failed');
      for (const o of failed)
        say(
          `failed: ${describeJob(o.data ?? sub.folds.find((j) => j.id === o.id)?.data, o.id)} after ${o.attempts} attempt(s): ${redact(o.reason ?? 'no reason recorded', t.secrets)}`,
        );
      const foldsOk = out.folds.filter((o) => o.state === 'completed').length;
      say(`${foldsOk} of ${folds.length} fold job(s) completed${failed.length ? `, ${failed.length} failed` : ''}`);
      if (out.summary?.state === 'completed') {
        const s = out.summary.result as { summaryPath?: string; ensembleDir?: string | null } | undefined;
        say(`summary ${s?.summaryPath ?? plan.runDir}${s?.ensembleDir ? `; ensemble ${s.ensembleDir}` : ''}`);
      } else if (!out.summary) say('the summary waits for the failed fold(s); `uxnet queue retry` runs them again');
      if (failed.length) throw new UserError(`${failed.length} of ${folds.length + 1} crossval job(s) failed`, 1);
    });
  });
}

interface WorkerFlags extends RedisFlags {
  queue?: string;
  concurrency?: number;
  backend?: string;
  root?: string[];
  name?: string;
  lockDuration?: number;
  stalledInterval?: number;
  maxStalled?: number;
  stopGrace?: number;
}

async function queueWorker(f: WorkerFlags): Promise<void> {
  const queues = queuesFlag(f.queue);
  let roots: string[] | null;
  try {
    roots = resolveRoots(f.root);
  } catch (e) {
    if (e instanceof QueueConfigError) throw new UserError(e.message);
    throw e;
  }
  await withRedis(f, async (t) => {
    const backend = await selectBackend(f.backend);
    const name = f.name ?? `${hostname()}:${process.pid}`;
    say(`worker ${name}: queues ${queues.join(', ')} on ${t.display}, backend '${backend}', ${roots ? `confined to ${roots.join(', ')}` : 'no --root: jobs may name any path'}`);
    const w = await startQueueWorker({
      target: t,
      queues,
      concurrency: f.concurrency ?? 1,
      roots,
      name,
      log: say,
      lockDuration: f.lockDuration,
      stalledInterval: f.stalledInterval,
      maxStalledCount: f.maxStalled,
      stopGraceMs: f.stopGrace === undefined ? undefined : f.stopGrace * 1000,
    });
    await new Promise<void>((done) => {
      let stopping = false;
      const onSignal = (sig: NodeJS.Signals) => {
        if (stopping) {
          say(`worker ${name}: ${sig} again, exiting now`);
          process.exit(1);
        }
        stopping = true;
        say(`worker ${name}: ${sig}, finishing current predictions; training runs save a checkpoint after their current step and go back to the queue`);
        w.stop().then(
          ({ handedBack }) => {
            say(`worker ${name}: stopped`);
            // A run handed back late is still computing, and nothing interrupts it in place: leaving ends it.
            if (handedBack.length) process.exit(0);
            done();
          },
          (e) => {
            say(`worker ${name}: ${redact((e as Error).message, t.secrets)}`);
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    });
  });
}

async function queueStatusCmd(f: RedisFlags & { queue?: string }): Promise<void> {
  await withRedis(f, async (t) => {
    const out: string[] = [`Redis ${t.display}`];
    for (const name of queuesFlag(f.queue)) {
      const s = await withQueue(t, name, (q) => queueStatus(q));
      const c = s.counts;
      out.push(
        `${name}: waiting ${(c.waiting ?? 0) + (c.prioritized ?? 0)}${c['waiting-children'] ? `, summaries waiting for folds ${c['waiting-children']}` : ''}, delayed ${c.delayed ?? 0}, active ${c.active ?? 0}, completed ${c.completed ?? 0}, failed ${c.failed ?? 0}; workers ${s.workers}`,
      );
      for (const j of s.failed) out.push(`  failed ${describeJob(j.data, j.id)} [${j.id}] after ${j.attempts} attempt(s): ${redact(j.reason, t.secrets)}`);
      if ((c.failed ?? 0) > s.failed.length) out.push(`  ... and ${(c.failed ?? 0) - s.failed.length} more failed`);
    }
    process.stdout.write(out.join('\n') + '\n');
  });
}

async function queueRetry(f: RedisFlags & { queue?: string }): Promise<void> {
  await withRedis(f, async (t) => {
    for (const name of queuesFlag(f.queue)) {
      const ids = await withQueue(t, name, (q) => retryFailed(q));
      say(`${name}: ${ids.length} failed job(s) moved back to waiting`);
    }
  });
}

async function queueClean(f: RedisFlags & { queue?: string; completed?: boolean }): Promise<void> {
  await withRedis(f, async (t) => {
    for (const name of queuesFlag(f.queue)) {
      const n = await withQueue(t, name, (q) => cleanJobs(q, f.completed ? ['failed', 'completed'] : ['failed']));
      say(`${name}: removed ${n} ${f.completed ? 'failed and completed' : 'failed'} job(s)`);
    }
  });
}

const REDIS_HELP = 'redis://[:password@]host:port[/db] or rediss:// for TLS (default: $UXNET_REDIS_URL, which keeps the password out of process listings)';

function retryOptions(c: Command): Command {
  return c
    .option('--attempts <n>', `attempts per job before it finally fails (default ${RETRY_DEFAULTS.attempts})`, int('--attempts', 1))
    .option('--backoff <ms>', `delay before the first retry, doubling after each (default ${RETRY_DEFAULTS.backoff})`, int('--backoff', 0))
    .option('--wait', 'show progress until every job has finished; exit non-zero listing the jobs that failed and why');
}

export function registerQueue(program: Command): void {
  const queue = program.command('queue').description('run predictions, training runs and cross-validations as jobs on Redis (BullMQ) across many worker processes and machines');

  queue
    .command('worker')
    .description('take jobs until SIGTERM/SIGINT (then finish current predictions, checkpoint and hand back training runs, exit 0)')
    .option('--redis <url>', REDIS_HELP)
    .option('--queue <names>', 'predict, train or all (default all)')
    .option('--concurrency <n>', 'predictions run at once by this process (default 1; training runs one at a time)', int('--concurrency', 1))
    .option('--backend <name>', 'compute backend (default: native when built)')
    .option('--root <dir>', 'confine every path a job reads or writes to this folder (repeatable); a job naming a path outside fails', collect)
    .option('--name <name>', 'worker name recorded on its jobs (default host:pid)')
    .option('--lock-duration <ms>', `job lock lifetime, renewed every half of it while the worker lives (default ${STALL_DEFAULTS.lockDuration})`, int('--lock-duration', 1))
    .option('--stalled-interval <ms>', `how often locks of dead workers are looked for (default ${STALL_DEFAULTS.stalledInterval})`, int('--stalled-interval', 1))
    .option('--max-stalled <n>', `times a job may lose its worker before it fails (default ${STALL_DEFAULTS.maxStalledCount})`, int('--max-stalled', 0))
    .option('--stop-grace <s>', 'on SIGTERM/SIGINT: seconds a training run gets to finish its step and save a checkpoint (default 120)', int('--stop-grace', 0))
    .action(async (f: WorkerFlags) => queueWorker(f));

  retryOptions(
    queue
      .command('predict')
      .description('queue one prediction job per case (ids derived from case, model and options: resubmitting adds nothing)')
      .option('--redis <url>', REDIS_HELP)
      .requiredOption('-i, --input <path>', 'input image or folder of images, on storage every worker sees')
      .requiredOption('-o, --output <path>', 'output file or folder, on storage every worker sees')
      .requiredOption('-m, --model <dir>', 'model folder, on storage every worker sees')
      .option('--tta', "mirroring test-time augmentation (default: the model's)")
      .option('--no-tta', "no mirroring test-time augmentation even where the model's default is on")
      .option('--fast', "use the model's coarser spacing")
      .option('--overlap <f>', 'sliding-window overlap in [0, 1)', (v) => {
        const n = Number(v);
        if (!(n >= 0 && n < 1)) throw new UserError(`invalid --overlap: '${v}'`);
        return n;
      })
      .option('--mode <mode>', 'window blending: gaussian or constant', (v) => {
        if (v !== 'gaussian' && v !== 'constant') throw new UserError(`--mode must be gaussian or constant, got '${v}'`);
        return v;
      })
      .option('--sw-batch <n>', 'windows per network call', int('--sw-batch', 1)),
  ).action(async (f: PredictFlags) => queuePredict(f));

  retryOptions(
    addTrainOptions(
      queue
        .command('train')
        .description("queue a training run with `uxnet train`'s arguments; a run whose worker dies continues from its last checkpoint elsewhere, bit-identically")
        .option('--redis <url>', REDIS_HELP),
    ),
  ).action(async (f: TrainFlags & RedisFlags & RetryFlags) => queueTrain(f));

  retryOptions(
    addCrossvalOptions(
      queue
        .command('crossval')
        .description(
          "queue a crossval with `uxnet crossval`'s arguments: one training job per fold (a fold whose worker dies continues from its last checkpoint elsewhere, bit-identically) and a summary job that runs once all folds are done",
        )
        .option('--redis <url>', REDIS_HELP),
    ),
  ).action(async (f: CrossvalFlags & RedisFlags & RetryFlags) => queueCrossval(f));

  queue
    .command('status')
    .description('waiting/active/completed/failed counts per queue, live workers, failed jobs with their reasons')
    .option('--redis <url>', REDIS_HELP)
    .option('--queue <names>', 'predict, train or all (default all)')
    .action(async (f: RedisFlags & { queue?: string }) => queueStatusCmd(f));

  queue
    .command('retry')
    .description('move failed jobs back to waiting, with their attempts reset')
    .option('--redis <url>', REDIS_HELP)
    .option('--queue <names>', 'predict, train or all (default all)')
    .action(async (f: RedisFlags & { queue?: string }) => queueRetry(f));

  queue
    .command('clean')
    .description('remove failed jobs (with --completed, finished ones too, so that resubmitting runs them again)')
    .option('--redis <url>', REDIS_HELP)
    .option('--queue <names>', 'predict, train or all (default all)')
    .option('--completed', 'also remove completed jobs')
    .action(async (f: RedisFlags & { queue?: string; completed?: boolean }) => queueClean(f));
}
