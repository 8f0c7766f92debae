import { parentPort } from 'node:worker_threads';
import { cacheCase, type CacheEntry } from './cache.js';
import type { Case } from './dataset.js';
import type { StepSpec } from './pipeline.js';

export interface CacheRequest { index: number; case: Case; steps: StepSpec[]; dir: string }
export type CacheReply = { index: number; entry: CacheEntry } | { index: number; error: string };

// Preprocesses one case into the on-disk cache (resampling and normalisation are the costly part).
parentPort?.on('message', async (req: CacheRequest) => {
  try {
    parentPort!.postMessage({ index: req.index, entry: await cacheCase(req.case, req.steps, req.dir) } satisfies CacheReply);
  } catch (e) {
    parentPort!.postMessage({ index: req.index, error: (e as Error).message ?? String(e) } satisfies CacheReply);
  }
});
