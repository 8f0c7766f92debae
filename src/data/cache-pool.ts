import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import type { CacheEntry } from './cache.js';
import type { Case } from './dataset.js';
import type { StepSpec } from './pipeline.js';
import type { CacheReply, CacheRequest } from './cache-worker.js';

export class CacheCaseError extends Error {
  constructor(readonly caseId: string, message: string) {
    super(`case '${caseId}': ${message}`);
    this.name = 'CacheCaseError';
  }
}

/**
 * Preprocesses and caches cases in worker threads (default: min(2, cores)). Entries come back in case
 * order whatever the completion order; `onDone` fires as each case finishes. On the first failure
 * every worker is stopped and the error names the case; entries already written stay valid, since
 * the cache is resumable.
 */
export async function cacheCasesParallel(cases: Case[], steps: readonly StepSpec[], dir: string, opts: { workers?: number; onDone?: (c: Case) => void } = {}): Promise<CacheEntry[]> {
  const n = Math.max(1, Math.min(opts.workers ?? Math.min(2, availableParallelism()), cases.length || 1));
  const results: CacheEntry[] = new Array(cases.length);
  if (!cases.length) return results;
  const workers = Array.from({ length: n }, () => new Worker(new URL('./cache-worker.js', import.meta.url)));
  let next = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      let done = 0;
      let failed = false;
      const feed = (w: Worker) => {
        if (next >= cases.length) return;
        const index = next++;
        w.postMessage({ index, case: cases[index]!, steps: [...steps], dir } satisfies CacheRequest);
      };
      for (const w of workers) {
        w.on('message', (r: CacheReply) => {
          if (failed) return;
          if ('error' in r) { failed = true; reject(new CacheCaseError(cases[r.index]!.id, r.error)); return; }
          results[r.index] = r.entry;
          opts.onDone?.(cases[r.index]!);
          if (++done === cases.length) resolve();
          else feed(w);
        });
        w.on('error', (e) => { if (!failed) { failed = true; reject(e); } });
        feed(w);
      }
    });
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return results;
}
