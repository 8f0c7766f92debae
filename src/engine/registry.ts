import type { Backend } from './backend.js';
import type { Kernels, KernelName } from './kernels.js';

/**
 * Op × backend kernel registry (tfjs-style): backends register kernels by name; ops look them up for
 * the backend their inputs live on. A backend may register only the kernels it accelerates and fall
 * back to another backend for the rest (see `fallback`).
 */
type KernelTable = { [K in KernelName]?: Kernels[K] };

interface BackendEntry {
  backend: Backend;
  kernels: KernelTable;
  priority: number;
}

const backends = new Map<string, BackendEntry>();
let current: string | null = null;

export function registerBackend(backend: Backend, priority = 0): void {
  const existing = backends.get(backend.name);
  backends.set(backend.name, { backend, kernels: existing?.kernels ?? {}, priority });
}

export function registerKernel<K extends KernelName>(name: K, backendName: string, fn: Kernels[K]): void {
  const entry = backends.get(backendName);
  if (!entry) throw new Error(`registerKernel('${name}'): backend '${backendName}' is not registered`);
  // A second registration would silently replace the first (two backends' modules loaded twice, or a
  // typo in a kernel table); either way the wrong arithmetic would run without a sign.
  if (entry.kernels[name]) throw new Error(`registerKernel('${name}'): backend '${backendName}' already has this kernel`);
  entry.kernels[name] = fn as KernelTable[K];
}

export function registerKernels(backendName: string, table: KernelTable): void {
  for (const [name, fn] of Object.entries(table)) registerKernel(name as KernelName, backendName, fn as never);
}

export function hasBackend(name: string): boolean {
  return backends.has(name);
}

export function listBackends(): string[] {
  return [...backends.values()].sort((a, b) => b.priority - a.priority).map((e) => e.backend.name);
}

export function getBackend(name?: string): Backend {
  const n = name ?? getBackendName();
  const entry = backends.get(n);
  if (!entry) throw new Error(`backend '${n}' is not available (available: ${listBackends().join(', ') || 'none'})`);
  return entry.backend;
}

/** Selects the backend used for new tensors. */
export function setBackend(name: string): void {
  if (!backends.has(name)) throw new Error(`backend '${name}' is not available (available: ${listBackends().join(', ') || 'none'})`);
  current = name;
}

/** The selected backend, or the registered one with the highest priority. */
export function getBackendName(): string {
  if (current) return current;
  const best = listBackends()[0];
  if (!best) throw new Error('no backend is registered');
  return best;
}

export function getKernel<K extends KernelName>(name: K, backendName: string): Kernels[K] {
  const entry = backends.get(backendName);
  if (!entry) throw new Error(`backend '${backendName}' is not available`);
  const fn = entry.kernels[name];
  if (!fn) throw new Error(`kernel '${name}' is not implemented on backend '${backendName}'`);
  return fn as Kernels[K];
}

export function hasKernel(name: KernelName, backendName: string): boolean {
  return !!backends.get(backendName)?.kernels[name];
}
