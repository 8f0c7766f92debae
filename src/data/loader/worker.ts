import { readCached, type CacheEntry } from '../cache.js';
import type { RandomStepSpec } from '../step-schema.js';
import { isInputError } from '../../engine/errors.js';
import { Rng } from '../../engine/rng.js';
import { runRandomSteps } from '../transforms/random.js';
import { serveJobs } from '../worker-pool.js';

export interface LoadRequest {
  entry: CacheEntry;
  tail: RandomStepSpec[];
  seed: number;
}
export interface LoadedPatch {
  image: Float32Array;
  label?: Float32Array;
  shape: [number, number, number];
  channels: number;
}
/** `fixable`: the error was the user's to fix (a cache file removed or damaged), not a bug; the
 * error object itself cannot cross the thread boundary, so the loader needs to be told. */
export type LoadReply = { patches: LoadedPatch[] } | { error: string; fixable: boolean };

// Reads one cached case and runs the random tail; arrays are transferred, not copied, to the caller.
serveJobs<LoadRequest, LoadReply>(async (req) => {
  try {
    const sample = await readCached(req.entry);
    const out = runRandomSteps(sample, req.tail, new Rng(req.seed));
    const patches: LoadedPatch[] = out.map((s) => ({
      image: s.image.data,
      ...(s.label ? { label: Float32Array.from(s.label.data) } : {}),
      shape: s.image.shape,
      channels: s.image.channels,
    }));
    const transfer = patches.flatMap((p) => [p.image.buffer, ...(p.label ? [p.label.buffer] : [])]) as ArrayBuffer[];
    return { reply: { patches }, transfer };
  } catch (e) {
    // An OS error (ENOENT, EACCES, ...) is fixable; Node's own ERR_* codes are bugs and keep their stack.
    const code = (e as NodeJS.ErrnoException).code;
    const fixable = isInputError(e) || (typeof code === 'string' && /^E[A-Z]+$/.test(code));
    return { reply: { error: (e as Error).message, fixable } };
  }
});
