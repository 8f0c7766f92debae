import { Worker } from 'node:worker_threads';
import type { CacheEntry } from '../cache.js';
import type { RandomStepSpec } from '../presets.js';
import { Rng } from '../rng.js';
import type { LoadedPatch, LoadReply, LoadRequest } from './worker.js';

export type { LoadedPatch };

export interface PatchLoaderOptions {
  /** Worker threads reading the cache and running the random tail (default 2, MONAI's num_workers). */
  workers?: number;
  /** Cases requested ahead of the consumer, so training never waits on I/O (default 2 per worker). */
  prefetch?: number;
  seed?: number;
  /** Index of the first request (a resumed run starts where it stopped: request n is always the same). */
  start?: number;
}

/**
 * Endless stream of random training patches from the on-disk cache. Case order is a seeded shuffle
 * per epoch, and request n always uses seed (seed, n), so the patches are the same for a given seed
 * whatever the number of workers or their timing; results are handed out in request order.
 */
export class PatchLoader {
  private workers: Worker[] = [];
  private pending = new Map<number, { resolve: (p: LoadedPatch[]) => void; reject: (e: Error) => void }>();
  private results = new Map<number, Promise<LoadedPatch[]>>();
  private nextRequest = 0;
  private nextDeliver = 0;
  private order: number[] = [];
  private rng: Rng;
  private readonly prefetch: number;

  constructor(private entries: CacheEntry[], private tail: RandomStepSpec[], private opts: PatchLoaderOptions = {}) {
    if (entries.length === 0) throw new Error('PatchLoader: no cached cases');
    this.rng = new Rng(opts.seed ?? 0);
    const n = Math.max(1, opts.workers ?? 2);
    this.prefetch = Math.max(1, opts.prefetch ?? 2 * n);
    this.nextRequest = this.nextDeliver = opts.start ?? 0;
    for (let i = 0; i < n; i++) {
      const w = new Worker(new URL('./worker.js', import.meta.url));
      w.on('message', (r: LoadReply) => {
        const p = this.pending.get(r.id);
        if (!p) return;
        this.pending.delete(r.id);
        if ('error' in r) p.reject(new Error(`loading case for request ${r.id}: ${r.error}`));
        else p.resolve(r.patches);
      });
      w.on('error', (e) => { for (const p of this.pending.values()) p.reject(e); this.pending.clear(); });
      this.workers.push(w);
    }
    this.fill();
  }

  private caseFor(n: number): CacheEntry {
    while (this.order.length <= n) {
      const perm = this.entries.map((_, i) => i);
      for (let i = perm.length - 1; i > 0; i--) {
        const j = this.rng.int(i + 1);
        [perm[i], perm[j]] = [perm[j]!, perm[i]!];
      }
      this.order.push(...perm);
    }
    return this.entries[this.order[n]!]!;
  }

  private fill(): void {
    while (this.nextRequest < this.nextDeliver + this.prefetch) {
      const id = this.nextRequest++;
      const req: LoadRequest = { id, entry: this.caseFor(id), tail: this.tail, seed: ((this.opts.seed ?? 0) * 1000003 + id) >>> 0 };
      this.results.set(id, new Promise((resolve, reject) => this.pending.set(id, { resolve, reject })));
      this.workers[id % this.workers.length]!.postMessage(req);
    }
  }

  /** The patches of the next case (MONAI's num_samples crops of one volume). */
  async next(): Promise<LoadedPatch[]> {
    const id = this.nextDeliver++;
    this.fill();
    const r = this.results.get(id)!;
    this.results.delete(id);
    return r;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers = [];
  }
}
