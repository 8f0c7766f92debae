/**
 * `node dist/bench/queue.js [--cases N] [--threads T] [--json FILE]`: throughput of `uxnet queue` on
 * this machine. Segments N bundled MSD Hippocampus cases with models/hippocampus three ways, each from
 * a cold process: plain `uxnet predict` (one process), and `uxnet queue predict --wait` served by 1 and
 * by 2 worker processes (started and ready beforehand, as services would be), on a private
 * redis-server (AOF, appendfsync everysec). Reports wall seconds per volume, jobs per minute, and the
 * queue's overhead per job against plain predict. Needs redis-server on PATH.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findRedisServer, TestRedis } from '../test/helpers/redis.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const UXNET = join(ROOT, 'bin', 'uxnet.js');

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function launch(args: string[], env: Record<string, string>): { child: ChildProcess; out: () => string; done: Promise<number | null> } {
  const child = spawn(process.execPath, [UXNET, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => {
    out += b.toString();
  });
  child.stderr!.on('data', (b: Buffer) => {
    out += b.toString();
  });
  return { child, out: () => out, done: new Promise((r) => child.on('close', r)) };
}

async function timed(args: string[], env: Record<string, string>): Promise<{ seconds: number; out: string }> {
  const t0 = performance.now();
  const p = launch(args, env);
  const code = await p.done;
  if (code !== 0) throw new Error(`uxnet ${args.join(' ')} exited ${code}:\n${p.out()}`);
  return { seconds: (performance.now() - t0) / 1000, out: p.out() };
}

/** Sum of the per-case seconds a log reports (predict: "..., 1.4 s -> out"; worker: "wrote out (1.4 s)"). */
function caseSeconds(log: string, re: RegExp): number {
  return [...log.matchAll(re)].reduce((a, m) => a + Number(m[1]), 0);
}

async function main(): Promise<void> {
  if (!findRedisServer()) throw new Error('redis-server is not on PATH (Debian: apt-get install redis-server)');
  const n = Number(arg('--cases') ?? 12);
  const threads = arg('--threads') ?? '1';
  const env = { UXNET_THREADS: threads, UXNET_QUIET: '1' };
  const dir = mkdtempSync(join(tmpdir(), 'uxnet-bench-queue-'));
  const images = join(ROOT, 'datasets', 'msd-hippocampus', 'imagesTr');
  const cases = readdirSync(images)
    .filter((f) => f.endsWith('.nii.gz'))
    .sort()
    .slice(0, n);
  mkdirSync(join(dir, 'in'));
  for (const c of cases) copyFileSync(join(images, c), join(dir, 'in', c));
  const model = join(ROOT, 'models', 'hippocampus');
  const redis = new TestRedis();
  const workers: ReturnType<typeof launch>[] = [];
  try {
    await redis.start();
    const url = redis.url();
    const rows: { setup: string; seconds: number; perVolume: number; jobsPerMin: number; computePerVolume: number }[] = [];
    const add = (setup: string, seconds: number, compute: number) =>
      rows.push({ setup, seconds, perVolume: seconds / cases.length, jobsPerMin: (60 * cases.length) / seconds, computePerVolume: compute / cases.length });

    const plainRun = await timed(['predict', '-i', join(dir, 'in'), '-o', join(dir, 'plain'), '-m', model], env);
    add('uxnet predict (1 process)', plainRun.seconds, caseSeconds(plainRun.out, /, ([\d.]+) s -> /g));
    for (const count of [1, 2]) {
      for (let i = 0; i < count; i++) {
        const w = launch(['queue', 'worker', '--redis', url, '--queue', 'predict', '--name', `bench-${count}-${i}`], env);
        workers.push(w);
        while (!/queues predict on/.test(w.out())) {
          if (w.child.exitCode !== null) throw new Error(`worker exited:\n${w.out()}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      const r = await timed(['queue', 'predict', '--redis', url, '-i', join(dir, 'in'), '-o', join(dir, `queue${count}`), '-m', model, '--wait'], env);
      for (const w of workers) w.child.kill('SIGTERM');
      await Promise.all(workers.map((w) => w.done));
      add(
        `uxnet queue predict --wait, ${count} worker${count > 1 ? 's' : ''}`,
        r.seconds,
        caseSeconds(
          workers
            .splice(0)
            .map((w) => w.out())
            .join(''),
          /: wrote .* \(([\d.]+) s\)/g,
        ),
      );
    }
    const plain = rows[0]!.perVolume;
    console.log(`${cases.length} cases, UXNET_THREADS=${threads} per process`);
    // Per-case compute is what each log reports for the case itself (load, predict, write); wall minus
    // compute is what the process, the queue and the producer's polling add around it.
    console.log('setup                                   wall s   s/volume   jobs/min   compute s/case   overhead s/job vs plain');
    for (const r of rows)
      console.log(
        `${r.setup.padEnd(40)}${r.seconds.toFixed(1).padStart(6)}${r.perVolume.toFixed(2).padStart(11)}${r.jobsPerMin.toFixed(1).padStart(11)}${r.computePerVolume.toFixed(2).padStart(17)}${(r === rows[1] ? (r.perVolume - plain).toFixed(2) : '-').padStart(26)}`,
      );
    const json = arg('--json');
    if (json) writeFileSync(json, JSON.stringify({ cases: cases.length, threads: Number(threads), rows }, null, 1) + '\n');
  } finally {
    for (const w of workers) w.child.kill('SIGKILL');
    await redis.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
