/**
 * The WebGPU backend: WGSL kernels for the whole kernel contract, in browsers (navigator.gpu) and
 * in Node (the `webgpu` npm package, Dawn). Initialisation is asynchronous, so importing this module
 * registers nothing: `await initWebGPU()` registers the backend as 'webgpu' with priority −1 (never
 * the implicit default), after which `setBackend('webgpu')` selects it.
 *
 * Reads are asynchronous only (`await t.data()`); `dataSync()` throws on this backend.
 */
import type { Backend } from '../../engine/backend.js';
import { hasBackend, registerBackend, registerKernels } from '../../engine/registry.js';
import {
  allocStorage,
  closeDevice,
  context,
  freeStorage,
  isInitialised,
  openDevice,
  readStorage,
  storageOf,
  webgpuMemory,
  writeStorage,
  zerosStorage,
  type GpuStorage,
  type WebGPUInitOptions,
} from './device.js';
import { webgpuKernels } from './kernels.js';
import { pipelineCount, resetPrograms } from './program.js';

export type { WebGPUInitOptions } from './device.js';
export { webgpuKernels } from './kernels.js';
export { webgpuMemory } from './device.js';

export const WEBGPU_PRIORITY = -1;

function handle(h: unknown): GpuStorage {
  return storageOf({ data: h }, 'storage');
}

export const webgpuBackend: Backend = {
  name: 'webgpu',
  upload(data: Float32Array): GpuStorage {
    const s = allocStorage(data.length);
    writeStorage(s, data);
    return s;
  },
  zeros(size: number): GpuStorage {
    return zerosStorage(size);
  },
  read(h: unknown, size: number): Promise<Float32Array> {
    return readStorage(handle(h), size);
  },
  readSync(): Float32Array {
    throw new Error("webgpu backend: synchronous reads are not possible on WebGPU; use 'await tensor.data()'");
  },
  free(h: unknown): void {
    const s = h as GpuStorage;
    if (s.freed) throw new Error('webgpu backend: storage freed twice');
    freeStorage(s);
  },
  write(h: unknown, data: Float32Array): void {
    writeStorage(handle(h), data);
  },
};

let lastReason: string | null = null;

/**
 * Opens the GPU device (adapter's maximum limits) and registers the 'webgpu' backend. Returns false,
 * after printing one line saying why, when no adapter exists (or the Node package is missing).
 * Safe to call more than once.
 */
export async function initWebGPU(opts: WebGPUInitOptions & { quiet?: boolean } = {}): Promise<boolean> {
  if (isInitialised()) return true;
  let reason: string | null;
  try {
    reason = await openDevice(opts);
  } catch (e) {
    reason = `device request failed: ${(e as Error).message}`;
  }
  if (reason) {
    lastReason = reason;
    if (!opts.quiet) console.warn(`webgpu backend unavailable: ${reason}`);
    return false;
  }
  lastReason = null;
  // After closeWebGPU() the backend and its kernels stay registered; only the device is new.
  if (!hasBackend(webgpuBackend.name)) {
    registerBackend(webgpuBackend, WEBGPU_PRIORITY);
    registerKernels(webgpuBackend.name, webgpuKernels);
  }
  return true;
}

/** Why the last initWebGPU() returned false (null after a success). */
export function webgpuUnavailableReason(): string | null {
  return lastReason;
}

/**
 * Waits for queued GPU work, destroys the device and drops the references that keep Node's event
 * loop alive. Tensors on the backend must not be used afterwards; the backend stays registered, and
 * initWebGPU() opens a new device.
 */
export async function closeWebGPU(): Promise<void> {
  await closeDevice();
  resetPrograms();
}

/** Adapter and cache information, for logs and benchmarks. */
export function webgpuInfo(): {
  adapter: string;
  maxBindingBytes: number;
  maxBufferBytes: number;
  shaderF16: boolean;
  pipelines: number;
  memory: ReturnType<typeof webgpuMemory>;
} | null {
  if (!isInitialised() || !hasBackend('webgpu')) return null;
  const c = context();
  return { adapter: c.adapterName, maxBindingBytes: c.chunkElems * 4, maxBufferBytes: c.maxBufferBytes, shaderF16: c.hasF16, pipelines: pipelineCount(), memory: webgpuMemory() };
}

/** Resolves when every kernel recorded so far has finished on the GPU (for timing). */
export { flushAndWait as webgpuSync } from './device.js';
