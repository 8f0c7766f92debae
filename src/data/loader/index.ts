import type { CacheEntry } from '../cache.js';
import type { RandomStepSpec } from '../step-schema.js';
import { dirname } from 'node:path';
import { InputError } from '../../engine/errors.js';
import { Rng } from '../../engine/rng.js';
import { WorkerPool } from '../worker-pool.js';
import type { LoadedPatch, LoadReply, LoadRequest } from './worker.js';

export type { LoadedPatch };

/** A cached case could not be read back (removed or damaged under a running job). */
export class CacheReadError extends InputError {
  constructor(message: string) {
    super(message, { exitCode: 1 });
    this.name = 'CacheReadError';
  }
}

/** The RNG seed of request n: a pure function of (seed, n), so neither worker count nor resume changes it. */
export function requestSeed(seed: number, n: number): number {
  return (seed * 1000003 + n) >>> 0;
}

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
  private pool: WorkerPool<LoadRequest, LoadReply>;
  private results = new Map<number, Promise<LoadedPatch[]>>();
  private nextRequest = 0;
  private nextDeliver = 0;
  private order: number[] = [];
  private rng: Rng;
  private readonly prefetch: number;

  constructor(
    private entries: CacheEntry[],
    private tail: RandomStepSpec[],
    private opts: PatchLoaderOptions = {},
  ) {
    if (entries.length === 0) throw new Error('PatchLoader: no cached cases');
    this.rng = new Rng(opts.seed ?? 0);
    const n = Math.max(1, opts.workers ?? 2);
    this.prefetch = Math.max(1, opts.prefetch ?? 2 * n);
    this.nextRequest = this.nextDeliver = opts.start ?? 0;
    this.pool = new WorkerPool('patch loader', new URL('./worker.js', import.meta.url), n);
    this.fill();
  }

  /** The case of request n (a seeded shuffle per epoch; the same whatever order requests are asked in). */
  caseFor(n: number): CacheEntry {
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
      const entry = this.caseFor(id);
      const req: LoadRequest = { entry, tail: this.tail, seed: requestSeed(this.opts.seed ?? 0, id) };
      const patches = this.pool.run(req, `loading request ${id} (case '${entry.id}')`).then((r) => {
        if ('error' in r) {
          const what = `loading case '${entry.id}' for request ${id}: ${r.error}`;
          // A cache file removed or damaged while the run used it is the user's to fix, not a bug: one
          // line saying how (a rerun re-makes missing files but reuses existing ones, hence the delete).
          if (r.fixable) throw new CacheReadError(`${what}; delete the cache folder '${dirname(entry.image)}' and run the same command again to rebuild it`);
          throw new Error(what);
        }
        return r.patches;
      });
      // Prefetched requests may fail before anyone awaits them; next() still sees the rejection.
      patches.catch(() => {});
      this.results.set(id, patches);
    }
  }

  /** The patches of the next case (MONAI's num_samples crops of one volume). */
  async next(): Promise<LoadedPatch[]> {
    // After a lost worker the stream has a gap; stop rather than hand out later requests.
    if (this.pool.failure) throw this.pool.failure;
    const id = this.nextDeliver++;
    this.fill();
    const r = this.results.get(id)!;
    this.results.delete(id);
    return r;
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  /** @internal the pool, so tests can kill a worker. */
  get workerPool(): WorkerPool<LoadRequest, LoadReply> {
    return this.pool;
  }
}
