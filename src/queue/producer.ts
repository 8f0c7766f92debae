import type { FlowProducer, Job, Queue } from 'bullmq';
import { QueueConfigError } from './errors.js';
import { jobOptions } from './queues.js';
import type { CrossvalFoldJobData, CrossvalSummaryJobData, JobData } from './schema.js';

export interface Submission {
  id: string;
  data: JobData;
}

export interface SubmitReport {
  added: string[];
  /** Ids that already existed, with their state (a resubmission adds nothing). */
  existing: { id: string; state: string }[];
}

/** Adds jobs under their deterministic ids; ids already in the queue are left as they are. */
export async function submitJobs(queue: Queue, jobs: readonly Submission[], retry: { attempts: number; backoff: number }): Promise<SubmitReport> {
  const existing: { id: string; state: string }[] = [];
  const fresh: Submission[] = [];
  const states = await Promise.all(jobs.map((j) => queue.getJobState(j.id)));
  jobs.forEach((j, i) => (states[i] === 'unknown' ? fresh.push(j) : existing.push({ id: j.id, state: states[i]! })));
  if (fresh.length) await queue.addBulk(fresh.map((j) => ({ name: j.data.kind, data: j.data, opts: jobOptions(j.id, retry) })));
  return { added: fresh.map((j) => j.id), existing };
}

export interface JobOutcome {
  id: string;
  state: 'completed' | 'failed';
  /** For failed jobs: BullMQ's failedReason (the error message of the last attempt). */
  reason?: string;
  attempts: number;
  data: JobData | undefined;
  result?: unknown;
}

export interface WaitProgress {
  done: number;
  total: number;
  completed: number;
  failed: number;
  active: number;
}

async function outcomeOf(queue: Queue, id: string, st: string): Promise<JobOutcome> {
  const job = st === 'unknown' ? undefined : ((await queue.getJob(id)) as Job | undefined);
  return {
    id,
    state: st === 'completed' ? 'completed' : 'failed',
    reason: st === 'unknown' ? 'the job was removed from the queue' : job?.failedReason,
    attempts: job?.attemptsMade ?? 0,
    data: job?.data as JobData | undefined,
    result: job?.returnvalue,
  };
}

/**
 * Polls until every job has finally completed or failed (a job with attempts left is in 'delayed'
 * or 'waiting', not finished). Polling, rather than QueueEvents, keeps working across a Redis
 * restart and needs no event stream retention.
 */
export async function waitForJobs(queue: Queue, ids: readonly string[], opts: { pollMs?: number; onProgress?: (p: WaitProgress) => void } = {}): Promise<JobOutcome[]> {
  const pending = new Set(ids);
  const outcomes = new Map<string, JobOutcome>();
  const pollMs = opts.pollMs ?? 500;
  for (;;) {
    const list = [...pending];
    const states = await Promise.all(list.map((id) => queue.getJobState(id)));
    let active = 0;
    for (let i = 0; i < list.length; i++) {
      const id = list[i]!;
      const st = states[i];
      if (st === 'active') active++;
      if (st !== 'completed' && st !== 'failed' && st !== 'unknown') continue;
      outcomes.set(id, await outcomeOf(queue, id, st));
      pending.delete(id);
    }
    const failed = [...outcomes.values()].filter((o) => o.state === 'failed').length;
    opts.onProgress?.({ done: outcomes.size, total: ids.length, completed: outcomes.size - failed, failed, active });
    if (!pending.size) break;
    await new Promise((r) => setTimeout(r, pollMs));
  }
  return ids.map((id) => outcomes.get(id)!);
}

export interface CrossvalSubmission {
  summary: { id: string; data: CrossvalSummaryJobData };
  folds: { id: string; data: CrossvalFoldJobData }[];
}

/**
 * Adds a crossval as one BullMQ flow: the summary job is the parent of the fold jobs, so BullMQ keeps
 * it in waiting-children until every fold has completed and then runs it once. A summary id already
 * in the queue means this submission was made before: nothing is added. Fold jobs that completed
 * under an earlier submission (e.g. `--fold k` first) are left out: their fold.json is on disk.
 */
export async function submitCrossval(queue: Queue, flow: FlowProducer, sub: CrossvalSubmission, retry: { attempts: number; backoff: number }): Promise<SubmitReport> {
  const ids = [sub.summary.id, ...sub.folds.map((f) => f.id)];
  const states = await Promise.all(ids.map((id) => queue.getJobState(id)));
  const known = ids.flatMap((id, i) => (states[i] === 'unknown' ? [] : [{ id, state: states[i]! }]));
  if (states[0] !== 'unknown') return { added: [], existing: known };
  const children = sub.folds.filter((_, i) => states[i + 1] !== 'completed');
  try {
    await flow.add({
      name: sub.summary.data.kind,
      queueName: queue.name,
      data: sub.summary.data,
      opts: jobOptions(sub.summary.id, retry),
      children: children.map((f) => ({ name: f.data.kind, queueName: queue.name, data: f.data, opts: jobOptions(f.id, retry) })),
    });
  } catch (e) {
    // A fold job still pending under another submission's summary (BullMQ keeps one parent per job).
    throw new QueueConfigError(
      `cannot queue this crossval: ${(e as Error).message}; wait for the earlier submission of its folds to finish, or remove it with \`uxnet queue clean\``,
    );
  }
  return { added: [sub.summary.id, ...children.map((f) => f.id)], existing: known.filter((k) => k.id !== sub.summary.id && !children.some((c) => c.id === k.id)) };
}

export interface CrossvalOutcome {
  folds: JobOutcome[];
  /** The summary job's outcome; null when it cannot run because a fold failed (it waits for a `queue retry`). */
  summary: JobOutcome | null;
}

/**
 * Polls a submitted crossval until its summary job has finished, or until no fold is left running
 * and one of them has finally failed (the summary then stays in waiting-children: it runs if the
 * failed fold succeeds after `uxnet queue retry`).
 */
export async function waitForCrossval(queue: Queue, sub: CrossvalSubmission, opts: { pollMs?: number; onProgress?: (p: WaitProgress) => void } = {}): Promise<CrossvalOutcome> {
  const pollMs = opts.pollMs ?? 500;
  const final = (st: string) => st === 'completed' || st === 'failed' || st === 'unknown';
  for (;;) {
    const foldStates = await Promise.all(sub.folds.map((f) => queue.getJobState(f.id)));
    const summaryState = await queue.getJobState(sub.summary.id);
    const failed = foldStates.filter((st) => st === 'failed' || st === 'unknown').length + (summaryState === 'failed' || summaryState === 'unknown' ? 1 : 0);
    const done = foldStates.filter(final).length + (final(summaryState) ? 1 : 0);
    const active = foldStates.filter((st) => st === 'active').length + (summaryState === 'active' ? 1 : 0);
    opts.onProgress?.({ done, total: sub.folds.length + 1, completed: done - failed, failed, active });
    const foldsOver = foldStates.every(final) && foldStates.some((st) => st !== 'completed');
    if (final(summaryState) || foldsOver) {
      const folds = await Promise.all(sub.folds.map((f, i) => outcomeOf(queue, f.id, foldStates[i]!)));
      return { folds, summary: final(summaryState) ? await outcomeOf(queue, sub.summary.id, summaryState) : null };
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

export interface QueueStatus {
  name: string;
  counts: Record<string, number>;
  workers: number;
  failed: { id: string; reason: string; attempts: number; data: JobData }[];
}

export async function queueStatus(queue: Queue, maxFailed = 50): Promise<QueueStatus> {
  const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed', 'prioritized', 'waiting-children');
  const workers = (await queue.getWorkers()).length;
  const failed = (await queue.getFailed(0, maxFailed - 1)).map((j) => ({ id: j.id!, reason: j.failedReason ?? '', attempts: j.attemptsMade, data: j.data as JobData }));
  return { name: queue.name, counts, workers, failed };
}

/** Moves every failed job back to waiting with its attempts reset. */
export async function retryFailed(queue: Queue): Promise<string[]> {
  const ids: string[] = [];
  for (const j of await queue.getFailed(0, -1)) {
    await j.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
    ids.push(j.id!);
  }
  return ids;
}

/** Removes finished jobs of the given states; a later submission of the same work runs it again. */
export async function cleanJobs(queue: Queue, states: readonly ('failed' | 'completed')[]): Promise<number> {
  let n = 0;
  for (const s of states) {
    for (;;) {
      const removed = await queue.clean(0, 1000, s);
      n += removed.length;
      if (removed.length < 1000) break;
    }
  }
  return n;
}

/** A one-line description of a job for reports: the case of a prediction, the run folder of a training job. */
export function describeJob(data: JobData | undefined, id: string): string {
  if (!data || typeof data !== 'object') return id;
  if (data.kind === 'predict') return `case ${data.case}`;
  if (data.kind === 'train') return `training run ${data.config.outDir}`;
  if (data.kind === 'crossval-fold') return `crossval fold ${data.fold} of ${data.config.outDir}`;
  if (data.kind === 'crossval-summary') return `crossval summary of ${data.config.outDir}`;
  return id;
}
