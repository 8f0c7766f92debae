/// <reference types="@webgpu/types" />
/**
 * The WebGPU device, buffer management and command submission for the webgpu backend.
 *
 * - Device: `navigator.gpu` in browsers; in Node the `webgpu` npm package (Dawn), imported
 *   dynamically through a variable specifier so browser bundles never pull it in. The object that
 *   `create()` returns is kept in the module-level `gpuRoot` for the device's whole life: when only
 *   an unused local holds it, V8 may collect it and Dawn then crashes at random.
 * - Storage: one GPUBuffer per tensor (`GpuStorage`), up to the adapter's `maxBufferSize`. Kernels
 *   bind a tensor as one or more windows of at most `maxStorageBufferBindingSize` (see program.ts), so
 *   tensors larger than one binding still work.
 * - Commands: kernels record compute passes and copies into one open command encoder, submitted
 *   when it holds `FLUSH_EVERY` commands or before anything that must observe the queue order
 *   (queue.writeBuffer, reads). Freed buffers go to a size-keyed pool right away: every later use is
 *   recorded after every earlier one on the same queue, so reuse cannot race.
 */
import { profiling, webgpuProfileReport } from './profile.js';

/** GPUBufferUsage / GPUMapMode values (numeric, so no WebGPU globals are needed in Node). */
export const USAGE = { MAP_READ: 1, MAP_WRITE: 2, COPY_SRC: 4, COPY_DST: 8, UNIFORM: 64, STORAGE: 128 } as const;
const MAP_READ_MODE = 1;

export interface GpuStorage {
  readonly kind: 'webgpu';
  buffer: GPUBuffer;
  /** float32 values */
  readonly size: number;
  /** allocated bytes (multiple of 256) */
  readonly bytes: number;
  freed: boolean;
}

export interface WebGPUInitOptions {
  /** Use this GPU object (navigator.gpu-like) instead of looking one up. */
  gpu?: GPU;
  /** Dawn toggles for the Node package's create(), e.g. ['backend=vulkan']. */
  dawnOptions?: string[];
  powerPreference?: GPUPowerPreference;
  /**
   * Test hook: pretend the adapter's maxStorageBufferBindingSize is this many bytes (rounded down to
   * a multiple of 256), to exercise the split-binding path on small tensors.
   */
  maxBindingBytes?: number;
  /** Print the adapter once initialised (default false). */
  verbose?: boolean;
}

export interface GpuContext {
  device: GPUDevice;
  adapterName: string;
  /** largest binding window in float32 elements (multiple of 64) */
  chunkElems: number;
  maxBufferBytes: number;
  maxStorageBuffersPerStage: number;
  maxWorkgroupsPerDim: number;
  hasF16: boolean;
}

/** Strong, module-level references kept for the device's whole life (see the file comment). */
let gpuRoot: GPU | null = null;
let ctx: GpuContext | null = null;
let lastError: string | null = null;

export function context(): GpuContext {
  if (!ctx) throw new Error('webgpu backend: not initialised (await initWebGPU() first)');
  return ctx;
}

export function isInitialised(): boolean {
  return ctx !== null;
}

function isNode(): boolean {
  return typeof process !== 'undefined' && !!(process as { versions?: { node?: string } }).versions?.node;
}

async function findGpu(opts: WebGPUInitOptions): Promise<{ gpu: GPU | null; why: string }> {
  if (opts.gpu) return { gpu: opts.gpu, why: '' };
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return { gpu: nav.gpu, why: '' };
  if (!isNode()) return { gpu: null, why: 'navigator.gpu is not available in this browser' };
  const spec = 'webgpu'; // a variable: bundlers must not resolve the Node-only package
  let mod: { create(options: string[]): GPU };
  try {
    mod = (await import(spec)) as typeof mod;
  } catch (e) {
    return { gpu: null, why: `the 'webgpu' npm package could not be loaded (npm install webgpu@0.6.2): ${(e as Error).message.split('\n')[0]}` };
  }
  return { gpu: mod.create(opts.dawnOptions ?? []), why: '' };
}

/**
 * Requests an adapter and a device with the adapter's maximum limits. Returns a reason string when
 * there is no usable adapter, null on success.
 */
export async function openDevice(opts: WebGPUInitOptions): Promise<string | null> {
  if (ctx) return null;
  const { gpu, why } = await findGpu(opts);
  if (!gpu) return why;
  gpuRoot = gpu;
  const adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
  if (!adapter) {
    gpuRoot = null;
    const hint = isNode()
      ? " (Linux without a GPU: install a Vulkan driver, e.g. Debian's chromium package ships SwiftShader; run with VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json LD_LIBRARY_PATH=/usr/lib/chromium)"
      : '';
    return `no WebGPU adapter found${hint}`;
  }
  const requiredLimits: Record<string, number> = {};
  const al = adapter.limits as unknown as Record<string, number>;
  for (const k of [
    'maxStorageBufferBindingSize',
    'maxBufferSize',
    'maxStorageBuffersPerShaderStage',
    'maxComputeWorkgroupStorageSize',
    'maxComputeInvocationsPerWorkgroup',
    'maxComputeWorkgroupSizeX',
    'maxComputeWorkgroupSizeY',
    'maxComputeWorkgroupSizeZ',
    'maxComputeWorkgroupsPerDimension',
    'maxBindingsPerBindGroup',
    'maxUniformBufferBindingSize',
  ]) {
    if (typeof al[k] === 'number') requiredLimits[k] = al[k]!;
  }
  const hasF16 = adapter.features.has('shader-f16');
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures: hasF16 ? ['shader-f16'] : [] });
  device.addEventListener('uncapturederror', (ev) => {
    const msg = (ev as GPUUncapturedErrorEvent).error.message;
    lastError ??= msg;
    console.error(`webgpu backend: ${msg}`);
  });
  void device.lost.then((info) => {
    if (ctx?.device === device) {
      console.error(`webgpu backend: device lost (${info.reason}): ${info.message}`);
      lastError ??= `device lost: ${info.message}`;
    }
  });
  const limits = device.limits;
  let bind = limits.maxStorageBufferBindingSize;
  if (opts.maxBindingBytes !== undefined) bind = Math.min(bind, opts.maxBindingBytes);
  const chunkElems = Math.floor(bind / 256) * 64;
  if (chunkElems < 64) throw new Error(`webgpu backend: binding limit ${bind} bytes is too small`);
  const info = adapter.info;
  ctx = {
    device,
    adapterName: [info?.vendor, info?.architecture, info?.device, info?.description].filter(Boolean).join(' ') || 'unknown adapter',
    chunkElems,
    maxBufferBytes: limits.maxBufferSize,
    maxStorageBuffersPerStage: limits.maxStorageBuffersPerShaderStage,
    maxWorkgroupsPerDim: limits.maxComputeWorkgroupsPerDimension,
    hasF16,
  };
  if (profiling) process.once('beforeExit', () => void webgpuProfileReport(device));
  if (opts.verbose) console.log(`webgpu backend: ${ctx.adapterName}; max binding ${limits.maxStorageBufferBindingSize} B, max buffer ${limits.maxBufferSize} B`);
  return null;
}

/** Destroys the device and drops every reference to it (so Node can exit). */
export async function closeDevice(): Promise<void> {
  if (!ctx) return;
  await flushAndWait();
  if (profiling) await webgpuProfileReport(ctx.device);
  for (const list of pool.values()) for (const b of list) b.destroy();
  pool.clear();
  pooledBytes = 0;
  const d = ctx.device;
  ctx = null;
  d.destroy();
  gpuRoot = null;
}

/** Keeps TypeScript from flagging the strong reference as unused. */
export function gpuObject(): GPU | null {
  return gpuRoot;
}

// ---------------------------------------------------------------------------------------------
// Command recording

let encoder: GPUCommandEncoder | null = null;
let pending = 0;
/** Transient buffers (uniforms) destroyed after the submit that uses them. */
let transient: GPUBuffer[] = [];
const FLUSH_EVERY = 32;

export function commandEncoder(): GPUCommandEncoder {
  encoder ??= context().device.createCommandEncoder();
  return encoder;
}

/** Counts one recorded command; submits when enough have piled up. */
export function recorded(): void {
  // While profiling, work is submitted only when something must observe it, so that pipeline
  // creation (timed on this thread) does not overlap kernels running on the driver's threads.
  if (++pending >= FLUSH_EVERY && !profiling) flush();
}

export function addTransient(b: GPUBuffer): void {
  transient.push(b);
}

export function flush(): void {
  if (!ctx) return;
  if (encoder) {
    ctx.device.queue.submit([encoder.finish()]);
    encoder = null;
    pending = 0;
  }
  if (!profiling) for (const b of transient) b.destroy();
  transient = [];
}

export async function flushAndWait(): Promise<void> {
  flush();
  if (ctx) await ctx.device.queue.onSubmittedWorkDone();
}

function checkError(): void {
  if (lastError) {
    const e = lastError;
    lastError = null;
    throw new Error(`webgpu backend: ${e}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Buffers

const pool = new Map<number, GPUBuffer[]>();
let pooledBytes = 0;
const POOL_LIMIT_BYTES = 1 << 30;
const live = { count: 0, bytes: 0 };

function roundBytes(size: number): number {
  return Math.max(256, Math.ceil((size * 4) / 256) * 256);
}

function acquire(bytes: number): { buffer: GPUBuffer; fresh: boolean } {
  const list = pool.get(bytes);
  const b = list?.pop();
  if (b) {
    pooledBytes -= bytes;
    return { buffer: b, fresh: false };
  }
  const c = context();
  if (bytes > c.maxBufferBytes)
    throw new Error(
      `webgpu backend: a tensor of ${bytes / 4} float32 values (${bytes} bytes) exceeds this adapter's maxBufferSize (${c.maxBufferBytes} bytes); use a smaller input or ROI, or another backend`,
    );
  const buffer = c.device.createBuffer({ size: bytes, usage: USAGE.STORAGE | USAGE.COPY_SRC | USAGE.COPY_DST });
  return { buffer, fresh: true };
}

/** A new storage of `size` floats with undefined contents (kernel outputs that are fully written). */
export function allocStorage(size: number): GpuStorage {
  const bytes = roundBytes(size);
  const { buffer } = acquire(bytes);
  live.count++;
  live.bytes += bytes;
  return { kind: 'webgpu', buffer, size, bytes, freed: false };
}

export function zerosStorage(size: number): GpuStorage {
  const bytes = roundBytes(size);
  const { buffer, fresh } = acquire(bytes);
  if (!fresh) {
    commandEncoder().clearBuffer(buffer);
    recorded();
  }
  live.count++;
  live.bytes += bytes;
  return { kind: 'webgpu', buffer, size, bytes, freed: false };
}

export function freeStorage(s: GpuStorage): void {
  if (s.freed) throw new Error('webgpu backend: storage freed twice');
  s.freed = true;
  live.count--;
  live.bytes -= s.bytes;
  if (!ctx) return;
  if (pooledBytes + s.bytes > POOL_LIMIT_BYTES && !profiling) {
    // Destroy only after the commands already recorded have been submitted.
    flush();
    s.buffer.destroy();
    return;
  }
  let list = pool.get(s.bytes);
  if (!list) pool.set(s.bytes, (list = []));
  list.push(s.buffer);
  pooledBytes += s.bytes;
}

export function writeStorage(s: GpuStorage, data: Float32Array, offsetElems = 0): void {
  if (s.freed) throw new Error('webgpu backend: write after free');
  if (offsetElems + data.length > s.size) throw new Error(`webgpu backend: write of ${data.length} values into storage of ${s.size}`);
  if (data.length === 0) return;
  flush(); // queue.writeBuffer is ordered before commands still in the open encoder
  context().device.queue.writeBuffer(s.buffer, offsetElems * 4, data.buffer, data.byteOffset, data.byteLength);
}

export async function readStorage(s: GpuStorage, size: number): Promise<Float32Array> {
  if (s.freed) throw new Error('webgpu backend: read after free');
  const n = Math.min(size, s.size);
  if (n === 0) {
    checkError();
    return new Float32Array(0);
  }
  const c = context();
  const bytes = Math.ceil((n * 4) / 4) * 4;
  const staging = c.device.createBuffer({ size: bytes, usage: USAGE.MAP_READ | USAGE.COPY_DST });
  commandEncoder().copyBufferToBuffer(s.buffer, 0, staging, 0, bytes);
  flush();
  try {
    await staging.mapAsync(MAP_READ_MODE);
    const out = new Float32Array(n);
    out.set(new Float32Array(staging.getMappedRange(0, bytes), 0, n));
    staging.unmap();
    checkError();
    return out;
  } finally {
    staging.destroy();
  }
}

export function storageOf(t: { data: unknown }, op: string): GpuStorage {
  const d = t.data as GpuStorage | undefined;
  if (!d || typeof d !== 'object' || d.kind !== 'webgpu') throw new Error(`webgpu backend: ${op}: tensor data is not a webgpu storage (tensor from another backend?)`);
  if (d.freed) throw new Error(`webgpu backend: ${op}: tensor storage was freed`);
  return d;
}

/** Live storages and bytes allocated by this backend and not yet freed, plus pooled bytes. */
export function webgpuMemory(): { count: number; bytes: number; pooledBytes: number } {
  return { count: live.count, bytes: live.bytes, pooledBytes };
}
