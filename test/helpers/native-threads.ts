/**
 * Bit-identity across thread counts for native kernels: a test gives the body of a script that runs
 * kernels on native and reference inputs made by `pair(shape)` and compares each result with `check(ref,
 * native)`; the script runs in a child process per UXNET_THREADS value (the pool size is fixed at load).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const src = join(dirname(fileURLToPath(import.meta.url)), '../../src/backends');

/** One run of a kernel script: the thread count it ran on, its worst relative error and each result (base64). */
export interface NativeScriptRun {
  threads: number;
  worst: number;
  out: string[];
}

/**
 * Runs `body` (JavaScript with `k`/`rk` = native/reference kernels, `m` = the native module, `pair`,
 * `check`) in a child process whose environment is this one's with `env` applied (undefined deletes a
 * variable): the native pool size and ISA are fixed when the addon loads, so each setting needs a process.
 */
export function runNativeScript(body: string, seed: number, env: Record<string, string | undefined>): NativeScriptRun {
  const script = `Promise.all([import(${JSON.stringify(join(src, 'native/index.js'))}), import(${JSON.stringify(join(src, 'reference/index.js'))})]).then(([m, r]) => {
    const k = m.makeNativeKernels(m.nativeAddon), rk = r.referenceKernels;
    let seed = ${seed};
    const rnd = (n) => Float32Array.from({ length: n }, () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1);
    const pair = (shape) => { const d = rnd(shape.reduce((a, b) => a * b, 1)); return [{ shape, data: d.slice() }, { shape, data: m.nativeAddon.upload(d) }]; };
    const out = [];
    let worst = 0;
    const check = (rt, nt) => {
      const g = m.nativeAddon.readSync(nt.data, rt.data.length);
      let mx = 0, e = 0;
      for (let i = 0; i < g.length; i++) { mx = Math.max(mx, Math.abs(rt.data[i])); e = Math.max(e, Math.abs(rt.data[i] - g[i])); }
      worst = Math.max(worst, e / mx);
      out.push(Buffer.from(g.buffer).toString('base64'));
    };
    ${body}
    console.log(JSON.stringify({ threads: m.nativeInfo().threads, worst, out }));
  })`;
  const e: NodeJS.ProcessEnv = { ...process.env };
  for (const [key, v] of Object.entries(env)) {
    if (v === undefined) delete e[key];
    else e[key] = v;
  }
  // Results travel base64 on stdout: room for large outputs (spawnSync's default 1 MB would kill the child).
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: e, maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim()) as NativeScriptRun;
}

/**
 * Runs `body` (see runNativeScript) on 1, 2 and 3 threads; asserts each run is within `relTol` of the
 * reference (relative to the largest reference value) and that every result is bit-identical to the
 * 1-thread run's.
 */
export function assertSameOnThreads(body: string, seed: number, relTol: number): void {
  const runs = ['1', '2', '3'].map((threads) => runNativeScript(body, seed, { UXNET_THREADS: threads }));
  assert.deepEqual(
    runs.map((r) => r.threads),
    [1, 2, 3],
  );
  for (const r of runs) assert.ok(r.worst <= relTol, `relative error ${r.worst} on ${r.threads} threads`);
  for (const r of runs.slice(1))
    assert.ok(
      r.out.every((o, i) => o === runs[0]!.out[i]),
      `results on ${r.threads} threads differ from 1 thread`,
    );
}
