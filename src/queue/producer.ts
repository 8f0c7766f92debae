import type { Job, Queue } from 'bullmq';
import { jobOptions } from './queues.js';
import type { JobData } from './schema.js';

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
      const job = st === 'unknown' ? undefined : ((await queue.getJob(id)) as Job | undefined);
      outcomes.set(id, {
        id,
        state: st === 'completed' ? 'completed' : 'failed',
        reason: st === 'unknown' ? 'the job was removed from the queue' : job?.failedReason,
        attempts: job?.attemptsMade ?? 0,
        data: job?.data as JobData | undefined,
        result: job?.returnvalue,
      });
      pending.delete(id);
    }
    const failed = [...outcomes.values()].filter((o) => o.state === 'failed').length;
    opts.onProgress?.({ done: outcomes.size, total: ids.length, completed: outcomes.size - failed, failed, active });
    if (!pending.size) break;
    await new Promise((r) => setTimeout(r, pollMs));
  }
  return ids.map((id) => outcomes.get(id)!);
}

export interface QueueStatus {
  name: string;
  counts: Record<string, number>;
  workers: number;
  failed: { id: string; reason: string; attempts: number; data: JobData }[];
}

export async function queueStatus(queue: Queue, maxFailed = 50): Promise<QueueStatus> {
  const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed', 'prioritized');
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
  return id;
}
