import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { liveWorkers, WorkerLostError, WorkerPool } from '../../src/data/worker-pool.js';

const script = new URL('../helpers/pool-worker.js', import.meta.url);
type Req = { x: number; exit?: number; delayMs?: number };

describe('WorkerPool (preprocessing and the patch loader)', () => {
  it('answers every job with its own reply, more jobs than workers', async () => {
    const pool = new WorkerPool<Req, { y: number }>('test', script, 2);
    try {
      const replies = await Promise.all(Array.from({ length: 9 }, (_, i) => pool.run({ x: i, delayMs: (i * 7) % 5 }, `job ${i}`)));
      assert.deepEqual(
        replies.map((r) => r.y),
        [0, 2, 4, 6, 8, 10, 12, 14, 16],
      );
    } finally {
      await pool.close();
    }
    assert.equal(liveWorkers('test'), 0);
  });

  it('a worker that dies fails its job naming worker and job; queued and later jobs fail too, nothing hangs', async () => {
    const pool = new WorkerPool<Req, { y: number }>('test', script, 2);
    try {
      assert.equal((await pool.run({ x: 1 }, 'job 0')).y, 2);
      const dying = pool.run({ x: 0, exit: 3 }, 'job 1');
      const queued = [pool.run({ x: 5, delayMs: 200 }, 'job 2'), pool.run({ x: 6 }, 'job 3'), pool.run({ x: 7 }, 'job 4')];
      await assert.rejects(dying, (e: unknown) => {
        assert.ok(e instanceof WorkerLostError);
        assert.equal(e.job, 'job 1');
        assert.match(e.message, /^test worker [01] exited with code 3 \(while job 1\)$/);
        return true;
      });
      // job 2 was already running on the other worker and may finish; everything after the loss fails.
      const settled = await Promise.allSettled(queued);
      assert.ok(settled.slice(1).every((s) => s.status === 'rejected' && /test worker [01] exited with code 3/.test((s.reason as Error).message)));
      await assert.rejects(pool.run({ x: 8 }, 'job 5'), /test worker [01] exited with code 3/);
      assert.ok(pool.failure instanceof WorkerLostError);
    } finally {
      await pool.close();
    }
    assert.equal(liveWorkers('test'), 0);
  });

  it('close() rejects queued jobs and stops every worker', async () => {
    const pool = new WorkerPool<Req, { y: number }>('test', script, 1);
    const running = assert.rejects(pool.run({ x: 1, delayMs: 100 }, 'job 0'), /: test pool was closed$/);
    const queued = assert.rejects(pool.run({ x: 2 }, 'job 1'), /: test pool was closed$/);
    await pool.close();
    await Promise.all([running, queued]);
    await assert.rejects(pool.run({ x: 3 }, 'job 2'), /: test pool is closed$/);
    assert.equal(liveWorkers('test'), 0);
  });
});
