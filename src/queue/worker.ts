import { UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { JobStoppedError, PermanentJobError } from './errors.js';
import { runPredictJob, type OutputRecords } from './predict-job.js';
import { connectionOptions, KEY_PREFIX, STALL_DEFAULTS, type QueueName } from './queues.js';
import { redact, type RedisTarget } from './redis-url.js';
import { runCrossvalFoldJob, runCrossvalSummaryJob } from './crossval-job.js';
import { validatePredictJob, validateTrainQueueJob } from './schema.js';
import { runTrainJob } from './train-job.js';

export interface QueueWorkerOptions {
  target: RedisTarget;
  queues: readonly QueueName[];
  /** Jobs run at once by this process, per queue. */
  concurrency: number;
  /** Real paths a job may read and write; null: anywhere. */
  roots: readonly string[] | null;
  /** Recorded on every job this process runs (BullMQ's processedBy). */
  name: string;
  lockDuration?: number;
  stalledInterval?: number;
  maxStalledCount?: number;
  /**
   * How long stop() waits for training jobs to finish their step and save a checkpoint before it
   * hands them back as they are (default 120 s; a job still preprocessing its data ignores the stop).
   */
  stopGraceMs?: number;
  log: (s: string) => void;
}

export interface RunningWorker {
  /**
   * Stops taking jobs. Predictions in progress finish (seconds). Training runs in progress finish
   * their current step, save checkpoint_last and go back to waiting (`checkpointed`), so the next
   * worker continues from that step; one that has not stopped within the grace period is moved back
   * as it is and continues from its last periodic checkpoint. `handedBack` lists both kinds: when it
   * is not empty, the caller must exit the process, since a late run's computation cannot be interrupted.
   */
  stop(): Promise<{ handedBack: string[]; checkpointed: string[] }>;
}

const OUTPUTS_KEY = `${KEY_PREFIX}:outputs`;

export async function startQueueWorker(o: QueueWorkerOptions): Promise<RunningWorker> {
  const log = (s: string) => o.log(redact(s, o.target.secrets));
  const client = new Redis(o.target.url, { maxRetriesPerRequest: null });
  client.on('error', () => {
    /* the BullMQ workers report connection trouble */
  });
  const records: OutputRecords = {
    get: async (k) => client.hget(OUTPUTS_KEY, k),
    set: async (k, v) => {
      await client.hset(OUTPUTS_KEY, k, v);
    },
  };
  const activeTrain = new Map<string, { job: Job; token: string; abort: AbortController; settled: Promise<void> }>();
  const checkpointed: string[] = [];

  const processor =
    (queue: QueueName) =>
    async (job: Job, token?: string): Promise<unknown> => {
      const id = job.id!;
      const t0 = Date.now();
      log(`${id}: start, attempt ${job.attemptsMade + 1} of ${job.opts.attempts ?? 1}`);
      try {
        let result: unknown;
        if (queue === 'predict') {
          const r = await runPredictJob(validatePredictJob(job.data), id, { roots: o.roots, records });
          log(`${id}: ${r.skipped ? 'identical output already there, kept' : `wrote ${r.output}`} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
          result = r;
        } else {
          const abort = new AbortController();
          let settle = () => {};
          const settled = new Promise<void>((r) => (settle = r));
          activeTrain.set(id, { job, token: token!, abort, settled });
          try {
            const d = validateTrainQueueJob(job.data);
            const ctx = { roots: o.roots, log: (s: string) => log(`${id}: ${s}`), signal: abort.signal };
            const minutes = () => ((Date.now() - t0) / 60000).toFixed(1);
            if (d.kind === 'crossval-fold') {
              result = await runCrossvalFoldJob(d, id, ctx);
              log(`${id}: crossval fold ${d.fold} done (${minutes()} min)`);
            } else if (d.kind === 'crossval-summary') {
              const r = await runCrossvalSummaryJob(d, ctx);
              log(`${id}: crossval summary written, ${r.foldsDone.length} of ${d.folds} folds${r.ensembleDir ? `; ensemble ${r.ensembleDir}` : ''}`);
              result = r;
            } else {
              result = await runTrainJob(d, id, ctx);
              log(`${id}: training done (${minutes()} min)`);
            }
          } catch (e) {
            if (!(e instanceof JobStoppedError)) throw e;
            // The shutdown stopped it after a step, with that step saved: back to waiting, not a failed attempt.
            await job.moveToWait(token);
            checkpointed.push(id);
            log(`${id}: ${e.message}, checkpoint saved; handed back, the next worker continues from step ${e.step}`);
            throw new WaitingError();
          } finally {
            activeTrain.delete(id);
            settle();
          }
        }
        return result;
      } catch (e) {
        if (e instanceof WaitingError) throw e;
        const msg = redact((e as Error)?.message ?? String(e), o.target.secrets);
        log(`${id}: failed: ${msg}`);
        // Refusals and malformed payloads fail at once: retrying cannot change their outcome.
        if (e instanceof PermanentJobError) throw new UnrecoverableError(msg);
        if (e instanceof Error) e.message = msg;
        throw e;
      }
    };

  const workers = o.queues.map((q) => {
    const w = new Worker(q, processor(q), {
      connection: connectionOptions(o.target),
      prefix: KEY_PREFIX,
      name: o.name,
      concurrency: q === 'train' ? 1 : o.concurrency,
      lockDuration: o.lockDuration ?? STALL_DEFAULTS.lockDuration,
      stalledInterval: o.stalledInterval ?? STALL_DEFAULTS.stalledInterval,
      maxStalledCount: o.maxStalledCount ?? STALL_DEFAULTS.maxStalledCount,
    });
    let lastError = '';
    w.on('error', (e) => {
      // ioredis repeats the same connection error on every retry while Redis is down: say it once.
      const msg = redact(e.message, o.target.secrets);
      if (msg !== lastError) log(`queue ${q}: ${msg}`);
      lastError = msg;
    });
    w.on('ready', () => {
      lastError = '';
    });
    w.on('stalled', (jobId) => log(`${jobId}: a worker stopped renewing its lock; the job goes back to waiting`));
    return w;
  });
  await Promise.all(workers.map((w) => w.waitUntilReady()));

  return {
    async stop() {
      const handedBack: string[] = [];
      const closing = workers.map((w) => w.close());
      const running = [...activeTrain.values()];
      for (const r of running) r.abort.abort();
      if (running.length) {
        let timer: NodeJS.Timeout | undefined;
        const grace = new Promise<void>((r) => (timer = setTimeout(r, o.stopGraceMs ?? 120_000)));
        await Promise.race([Promise.all(running.map((r) => r.settled)), grace]);
        clearTimeout(timer);
      }
      handedBack.push(...checkpointed);
      for (const [id, { job, token }] of activeTrain) {
        try {
          await job.moveToWait(token);
          log(`${id}: handed back; it continues from its last checkpoint on the next worker`);
        } catch (e) {
          log(`${id}: could not hand back (${redact((e as Error).message, o.target.secrets)}); another worker takes it over once its lock expires`);
        }
        handedBack.push(id);
      }
      // Predictions finish; a late training run's close would wait for the whole run, so it is not awaited.
      const late = handedBack.length > checkpointed.length;
      await Promise.all(closing.filter((_, i) => !(o.queues[i] === 'train' && late)));
      if (!late) client.disconnect();
      return { handedBack, checkpointed: [...checkpointed] };
    },
  };
}
