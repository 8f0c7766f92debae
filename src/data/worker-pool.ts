import { Worker, parentPort } from 'node:worker_threads';

/**
 * The one worker-thread pool of the data pipeline (preprocessing and the patch loader). Jobs wait in
 * one FIFO queue and each worker runs one job at a time, so the pool always knows which job a worker
 * holds: a worker that dies (crash, out of memory, process.exit) fails that job with an error naming
 * the worker and the job, and the pool stops - every queued and later job fails the same way - so a
 * consumer never waits for a reply that cannot come.
 */
export class WorkerLostError extends Error {
  /** What happened, without the job: "patch loader worker 1 exited with code 7". */
  readonly reason: string;
  constructor(
    readonly pool: string,
    readonly worker: number,
    readonly job: string | null,
    why: string,
    cause?: Error,
  ) {
    const reason = `${pool} worker ${worker} ${why}${cause ? `: ${cause.message}` : ''}`;
    super(job !== null ? `${reason} (while ${job})` : reason);
    this.reason = reason;
    this.name = 'WorkerLostError';
    if (cause?.stack) this.stack = `${this.name}: ${this.message}\n(in worker) ${cause.stack}`;
  }
}

interface Job<Req, Rep> {
  req: Req;
  what: string;
  transfer?: ArrayBuffer[];
  resolve: (r: Rep) => void;
  reject: (e: Error) => void;
}
interface Envelope<T> {
  job: number;
  body: T;
}

const live = new Map<string, number>();
/** Workers of pools with this name that were started and have not exited yet. */
export function liveWorkers(pool: string): number {
  return live.get(pool) ?? 0;
}

export class WorkerPool<Req, Rep> {
  private readonly workers: Worker[] = [];
  private readonly running = new Map<Worker, { id: number; job: Job<Req, Rep> }>();
  private readonly queue: Job<Req, Rep>[] = [];
  private nextId = 0;
  private broken: Error | null = null;
  private closing = false;

  /** `name` says what the workers do, for errors ("patch loader", "preprocessing"). */
  constructor(
    readonly name: string,
    script: URL,
    size: number,
  ) {
    for (let i = 0; i < Math.max(1, size); i++) {
      const w = new Worker(script);
      live.set(name, liveWorkers(name) + 1);
      w.once('exit', () => live.set(name, liveWorkers(name) - 1));
      w.on('message', (m: Envelope<Rep>) => this.onReply(w, m));
      w.on('error', (e) => this.lose(w, i, 'failed', e));
      w.on('exit', (code) => this.lose(w, i, `exited with code ${code}`));
      this.workers.push(w);
    }
  }

  get size(): number {
    return this.workers.length;
  }

  /** The error that stopped the pool (a worker died), or null while it works. */
  get failure(): Error | null {
    return this.broken;
  }

  /** @internal the threads themselves, so tests can kill one. */
  get threads(): readonly Worker[] {
    return this.workers;
  }

  /** Queues a job; `what` describes it for errors ("loading request 7"). */
  run(req: Req, what: string, transfer?: ArrayBuffer[]): Promise<Rep> {
    return new Promise<Rep>((resolve, reject) => {
      if (this.broken) return reject(this.broken);
      if (this.closing) return reject(new Error(`${this.name} pool is closed`));
      this.queue.push({ req, what, transfer, resolve, reject });
      this.dispatch();
    });
  }

  /** Terminates every worker; queued jobs are rejected. */
  async close(): Promise<void> {
    this.closing = true;
    const closed = new Error(`${this.name} pool was closed`);
    for (const j of this.queue.splice(0)) j.reject(closed);
    await Promise.all(this.workers.map((w) => w.terminate()));
    for (const { job } of this.running.values()) job.reject(closed);
    this.running.clear();
  }

  private dispatch(): void {
    for (const w of this.workers) {
      if (!this.queue.length || this.broken || this.closing) return;
      if (this.running.has(w)) continue;
      const job = this.queue.shift()!;
      const id = this.nextId++;
      this.running.set(w, { id, job });
      w.postMessage({ job: id, body: job.req } satisfies Envelope<Req>, job.transfer ?? []);
    }
  }

  private onReply(w: Worker, m: Envelope<Rep>): void {
    const r = this.running.get(w);
    if (!r || r.id !== m.job) return;
    this.running.delete(w);
    r.job.resolve(m.body);
    this.dispatch();
  }

  private lose(w: Worker, index: number, why: string, cause?: Error): void {
    if (this.closing) return;
    const r = this.running.get(w);
    this.running.delete(w);
    const err = new WorkerLostError(this.name, index, r ? r.job.what : null, why, cause);
    if (r) r.job.reject(err);
    if (!this.broken) this.broken = err;
    for (const j of this.queue.splice(0)) j.reject(this.broken);
  }
}

/**
 * The worker side: answers each job with `handler`'s reply; `transfer` lists buffers to move rather
 * than copy. The handler encodes its own errors in the reply (they are the data's, not the pool's).
 */
export function serveJobs<Req, Rep>(handler: (req: Req) => Promise<{ reply: Rep; transfer?: ArrayBuffer[] }>): void {
  parentPort?.on('message', async (m: Envelope<Req>) => {
    const { reply, transfer } = await handler(m.body);
    parentPort!.postMessage({ job: m.job, body: reply } satisfies Envelope<Rep>, transfer ?? []);
  });
}
