import { parentPort } from 'node:worker_threads';
import { readCached, type CacheEntry } from '../cache.js';
import type { RandomStepSpec } from '../presets.js';
import { Rng } from '../rng.js';
import { runRandomSteps } from '../transforms/random.js';

export interface LoadRequest { id: number; entry: CacheEntry; tail: RandomStepSpec[]; seed: number }
export interface LoadedPatch { image: Float32Array; label?: Float32Array; shape: [number, number, number]; channels: number }
export type LoadReply = { id: number; patches: LoadedPatch[] } | { id: number; error: string };

// Reads one cached case and runs the random tail; arrays are transferred, not copied, to the caller.
parentPort?.on('message', async (req: LoadRequest) => {
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
    parentPort!.postMessage({ id: req.id, patches } satisfies LoadReply, transfer);
  } catch (e) {
    parentPort!.postMessage({ id: req.id, error: (e as Error).message } satisfies LoadReply);
  }
});
