// A worker for test/data/worker-pool.test.ts: doubles a number, or exits mid-job when asked to.
import { serveJobs } from '../../src/data/worker-pool.js';

serveJobs<{ x: number; exit?: number; delayMs?: number }, { y: number }>(async (req) => {
  if (req.delayMs) await new Promise((r) => setTimeout(r, req.delayMs));
  if (req.exit !== undefined) process.exit(req.exit);
  return { reply: { y: 2 * req.x } };
});
