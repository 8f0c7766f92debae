import { cacheCase, type CacheEntry } from './cache.js';
import type { Case } from './dataset.js';
import type { StepSpec } from './pipeline.js';
import { serveJobs } from './worker-pool.js';

export interface CacheRequest {
  index: number;
  case: Case;
  steps: StepSpec[];
  dir: string;
}
/** `stack` is set for programming errors (TypeError, ...), not for bad data, which is the user's to fix. */
export type CacheReply = { index: number; entry: CacheEntry } | { index: number; error: string; stack?: string };

// Preprocesses one case into the on-disk cache (resampling and normalisation are the costly part).
serveJobs<CacheRequest, CacheReply>(async (req) => {
  try {
    return { reply: { index: req.index, entry: await cacheCase(req.case, req.steps, req.dir) } };
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    // NiftiError, VolumeError and plain Errors describe the data; the built-in subclasses mean a bug.
    const bug = err instanceof TypeError || err instanceof ReferenceError || err instanceof SyntaxError || err instanceof RangeError;
    return { reply: { index: req.index, error: err.message, ...(bug ? { stack: err.stack } : {}) } };
  }
});
