import { availableParallelism } from 'node:os';
import { readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { CacheEntry } from './cache.js';
import type { Case } from './dataset.js';
import type { StepSpec } from './pipeline.js';
import type { CacheReply, CacheRequest } from './cache-worker.js';
import { liveWorkers, WorkerLostError, WorkerPool } from './worker-pool.js';

/**
 * A case that could not be preprocessed. The message names the case and, when the underlying error
 * does not already, its files. `internal` marks a programming error or a crashed worker rather than
 * bad data (the CLI shows those with their stack).
 */
export class CacheCaseError extends Error {
  constructor(
    readonly caseId: string,
    message: string,
    readonly internal = false,
    workerStack?: string,
  ) {
    super(`case '${caseId}': ${message}`);
    this.name = 'CacheCaseError';
    if (workerStack) this.stack = `${this.name}: ${this.message}\n(in worker) ${workerStack}`;
  }
}

function caseError(c: Case, message: string, internal = false, stack?: string): CacheCaseError {
  const files = [...c.images, ...(c.label ? [c.label] : [])];
  const named = files.some((f) => message.includes(f));
  return new CacheCaseError(c.id, named ? message : `${message} (files: ${files.join(', ')})`, internal, stack);
}

const POOL = 'preprocessing';
/** Preprocessing workers started and not yet exited (0 whenever no cacheCasesParallel call is running). */
export function liveCacheWorkers(): number {
  return liveWorkers(POOL);
}

/** Worker threads to use: min(requested (default 2), cores, cases), at least 1. */
export function poolSize(requested: number | undefined, cases: number): number {
  return Math.max(1, Math.min(requested ?? 2, availableParallelism(), cases));
}

/**
 * Preprocesses and caches cases in worker threads (poolSize). Entries come back in case order
 * whatever the completion order; `onDone` fires as each case finishes. On the first failure no
 * further case is started, every worker is terminated before this rejects, and the error names the
 * case. Entries already written stay valid (each file is written atomically and the meta file last,
 * so the cache resumes); temporary files of interrupted writes are removed.
 */
export async function cacheCasesParallel(
  cases: Case[],
  steps: readonly StepSpec[],
  dir: string,
  opts: { workers?: number; onDone?: (c: Case) => void } = {},
): Promise<CacheEntry[]> {
  const results: CacheEntry[] = new Array(cases.length);
  if (!cases.length) return results;
  const pool = new WorkerPool<CacheRequest, CacheReply>(POOL, new URL('./cache-worker.js', import.meta.url), poolSize(opts.workers, cases.length));
  let failed = false;
  try {
    await new Promise<void>((resolve, reject) => {
      let done = 0;
      let settled = false;
      const fail = (e: Error) => {
        if (settled) return;
        settled = failed = true;
        // No further case starts; the finally below waits for the workers to stop.
        void pool.close();
        reject(e);
      };
      cases.forEach((c, index) => {
        const what = `preprocessing case '${c.id}'`;
        pool.run({ index, case: c, steps: [...steps], dir }, what).then(
          (r) => {
            if (settled) return;
            if ('error' in r) return fail(caseError(c, r.error, r.stack !== undefined, r.stack));
            results[index] = r.entry;
            opts.onDone?.(c);
            if (++done === cases.length) {
              settled = true;
              resolve();
            }
          },
          // A worker that crashed or died (out of memory, exit()) is a bug or the machine's, not bad data.
          // Only the case the worker held is named; cases still queued behind it get the plain error.
          (e: Error) => fail(e instanceof WorkerLostError && e.job === what ? caseError(c, `the ${e.reason}`, true, e.stack) : e),
        );
      });
    });
  } finally {
    await pool.close();
    if (failed) await removeTempFiles(dir);
  }
  return results;
}

/** Leftovers of this process's atomic writes (writeFileAtomic: PATH.tmp-PID-TIME) that a terminated worker did not finish. */
async function removeTempFiles(dir: string): Promise<void> {
  const mark = `.tmp-${process.pid}-`;
  const names = await readdir(dir).catch(() => [] as string[]);
  await Promise.all(names.filter((n) => n.includes(mark)).map((n) => unlink(join(dir, n)).catch(() => {})));
}
