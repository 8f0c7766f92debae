import type { KTensor, Kernels, KernelName } from './kernels.js';
import { getBackend, getKernel } from './registry.js';

/**
 * The one path every op takes to a kernel, so that instrumentation lives in one place: an optional
 * observer (profilers, tracing) and the opt-in numerics check (UXNET_CHECK_NUMERICS=1, or
 * setCheckNumerics(true)) that stops at the first kernel whose output holds NaN or ±Inf and names it.
 */
export type KernelObserver = (name: KernelName, backendName: string, args: readonly unknown[], ms: number) => void;

let observer: KernelObserver | null = null;
// Read through globalThis so the engine stays importable in browsers, where `process` does not exist.
let checkNumerics = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.UXNET_CHECK_NUMERICS === '1';
const uncheckable = new Set<string>();

/** Receives every kernel call with its wall time on the calling thread (asynchronous backends: enqueue time). */
export function setKernelObserver(fn: KernelObserver | null): void {
  observer = fn;
}

/** Turns the NaN/Inf check of every kernel output on or off (default: UXNET_CHECK_NUMERICS=1). */
export function setCheckNumerics(on: boolean): void {
  checkNumerics = on;
}

export function isCheckingNumerics(): boolean {
  return checkNumerics;
}

/** Thrown by the numerics check; `kernel` names the op that first produced a non-finite value. */
export class NonFiniteError extends Error {
  constructor(
    readonly kernel: KernelName,
    readonly backendName: string,
    readonly index: number,
    readonly value: number,
  ) {
    super(`UXNET_CHECK_NUMERICS: kernel '${kernel}' on backend '${backendName}' produced ${value} at flat index ${index} of its output`);
    this.name = 'NonFiniteError';
  }
}

export function runKernel<K extends KernelName>(name: K, backendName: string, ...args: Parameters<Required<Kernels>[K]>): ReturnType<Required<Kernels>[K]> {
  const fn = getKernel(name, backendName) as (...a: Parameters<Required<Kernels>[K]>) => ReturnType<Required<Kernels>[K]>;
  const t0 = observer ? performance.now() : 0;
  const out = fn(...args);
  if (observer) observer(name, backendName, args, performance.now() - t0);
  // adamwStep updates its first argument (the parameter) in place and returns nothing.
  if (checkNumerics) checkOutputs(name, backendName, out === undefined ? [args[0] as KTensor] : Array.isArray(out) ? (out as KTensor[]) : [out as KTensor]);
  return out;
}

function checkOutputs(name: KernelName, backendName: string, outs: KTensor[]): void {
  if (uncheckable.has(backendName)) return;
  const be = getBackend(backendName);
  for (const t of outs) {
    let n = 1;
    for (const d of t.shape) n *= d;
    let values: Float32Array;
    try {
      values = be.readSync(t.data, n);
    } catch {
      // Browser WebGPU cannot block for a read; say so once instead of failing every kernel.
      uncheckable.add(backendName);
      console.warn(`UXNET_CHECK_NUMERICS: backend '${backendName}' has no synchronous reads; its kernels are not checked`);
      return;
    }
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (v - v !== 0) throw new NonFiniteError(name, backendName, i, v);
    }
  }
}
