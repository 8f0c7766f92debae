import type { KernelName, Kernels, KTensor } from '../engine/kernels.js';
import { referenceKernels } from './reference/index.js';
import { release } from './reference/memory.js';

/**
 * Kernels a CPU backend has not implemented natively yet: its inputs are read back to the host, the
 * reference kernel runs, and the outputs are uploaded. Slow but exact, so every op runs on every
 * backend while native kernels are written one by one.
 */
export interface HostMemory {
  readSync(handle: unknown, size: number): Float32Array;
  upload(data: Float32Array): unknown;
}

function isKTensor(v: unknown): v is KTensor {
  return typeof v === 'object' && v !== null && 'shape' in v && 'data' in v && Array.isArray((v as KTensor).shape);
}

function size(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function hostFallback<K extends KernelName>(name: K, mem: HostMemory): Kernels[K] {
  const ref = referenceKernels[name] as (...args: unknown[]) => unknown;
  const toHost = (v: unknown): unknown => (isKTensor(v) ? { shape: v.shape, data: mem.readSync(v.data, size(v.shape)) } : Array.isArray(v) && v.every(isKTensor) ? v.map(toHost) : v);
  const toDevice = (t: KTensor): KTensor => {
    const data = t.data as Float32Array;
    const handle = mem.upload(data);
    release(data);
    return { shape: t.shape, data: handle };
  };
  const fn = (...args: unknown[]): unknown => {
    const res = ref(...args.map(toHost));
    if (res === undefined) throw new Error(`host fallback: kernel '${name}' works in place and cannot run through a host copy`);
    return Array.isArray(res) ? (res as KTensor[]).map(toDevice) : toDevice(res as KTensor);
  };
  return fn as unknown as Kernels[K];
}

/** hostFallback for several kernels at once, as a table to spread into a backend's kernels. */
export function hostFallbacks<K extends KernelName>(names: readonly K[], mem: HostMemory): Pick<Kernels, K> {
  const table = {} as Pick<Kernels, K>;
  for (const n of names) table[n] = hostFallback(n, mem) as Pick<Kernels, K>[K];
  return table;
}
