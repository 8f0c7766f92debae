/// <reference types="@webgpu/types" />
/**
 * UXNET_WEBGPU_PROFILE=1 (Node only): where the webgpu backend's time goes. Every pipeline creation
 * (WGSL → driver code) and every dispatch is recorded under its kernel label; at exit (or when
 * `webgpuProfileReport()` is awaited) each recorded dispatch is replayed alone (submit, wait) and a
 * table per label says how many pipelines it compiled and at what cost, how many dispatches it
 * ran and how long they took. Times are process CPU time (process.cpuUsage, which counts the
 * driver's worker threads), because on a CPU adapter such as SwiftShader on a shared machine wall
 * time mostly measures the neighbours. UXNET_WEBGPU_PROFILE=compile skips the replay.
 *
 * While profiling, buffers are never destroyed (a replayed dispatch must find its bindings alive).
 */

interface Row {
  pipelines: number;
  compileMs: number;
  dispatches: number;
  execMs: number;
}

interface Dispatch {
  label: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  gx: number;
  gy: number;
}

const mode = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.UXNET_WEBGPU_PROFILE ?? '';
export const profiling = mode === '1' || mode === 'compile';

const rows = new Map<string, Row>();
let dispatches: Dispatch[] = [];

function row(label: string): Row {
  let r = rows.get(label);
  if (!r) rows.set(label, (r = { pipelines: 0, compileMs: 0, dispatches: 0, execMs: 0 }));
  return r;
}

/** CPU milliseconds of this process so far (every thread). */
export function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

export function recordCompile(label: string, ms: number): void {
  const r = row(label);
  r.pipelines++;
  r.compileMs += ms;
}

export function recordDispatch(d: Dispatch): void {
  row(d.label).dispatches++;
  if (mode === '1') dispatches.push(d);
}

let reported = false;

/** Replays the recorded dispatches one by one and prints the table (once). */
export async function webgpuProfileReport(device: GPUDevice, print: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<void> {
  if (!profiling || reported) return;
  reported = true;
  await device.queue.onSubmittedWorkDone();
  // What an empty submit-and-wait costs, subtracted from every replayed dispatch.
  let t0 = cpuMs();
  for (let i = 0; i < 20; i++) {
    device.queue.submit([device.createCommandEncoder().finish()]);
    await device.queue.onSubmittedWorkDone();
  }
  const idle = (cpuMs() - t0) / 20;
  const wall0 = performance.now();
  for (const d of dispatches) {
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(d.pipeline);
    pass.setBindGroup(0, d.bindGroup);
    pass.dispatchWorkgroups(d.gx, d.gy);
    pass.end();
    t0 = cpuMs();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    row(d.label).execMs += Math.max(0, cpuMs() - t0 - idle);
  }
  const replayWall = performance.now() - wall0;
  dispatches = [];
  const list = [...rows].sort((a, b) => b[1].compileMs + b[1].execMs - (a[1].compileMs + a[1].execMs));
  const tot = list.reduce((s, [, r]) => ({ p: s.p + r.pipelines, c: s.c + r.compileMs, d: s.d + r.dispatches, e: s.e + r.execMs }), { p: 0, c: 0, d: 0, e: 0 });
  print(
    `uxnet webgpu profile (UXNET_WEBGPU_PROFILE, CPU time): ${tot.p} pipelines compiled in ${(tot.c / 1000).toFixed(2)} s, ${tot.d} dispatches` +
      (mode === '1' ? ` executing in ${(tot.e / 1000).toFixed(2)} s (replay wall ${(replayWall / 1000).toFixed(1)} s)` : ''),
  );
  print(`${'kernel'.padEnd(36)} ${'pipes'.padStart(6)} ${'compile s'.padStart(10)} ${'dispatches'.padStart(10)} ${'exec s'.padStart(9)}`);
  for (const [label, r] of list)
    print(
      `${label.slice(0, 36).padEnd(36)} ${String(r.pipelines).padStart(6)} ${(r.compileMs / 1000).toFixed(2).padStart(10)} ${String(r.dispatches).padStart(10)} ${(r.execMs / 1000).toFixed(2).padStart(9)}`,
    );
}
