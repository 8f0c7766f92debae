import type { KTensor } from '../../engine/kernels.js';

/**
 * Storage for the reference backend is a plain Float32Array. Every array this backend hands out
 * (uploads, zeros, kernel outputs) goes through `alloc` so live memory can be accounted for;
 * `release` is called from Backend.free.
 */
const live = new WeakSet<Float32Array>();
const stats = { bytes: 0, count: 0 };

export function alloc(size: number): Float32Array {
  const a = new Float32Array(size);
  live.add(a);
  stats.bytes += a.byteLength;
  stats.count++;
  return a;
}

export function release(a: Float32Array): void {
  if (!live.has(a)) return; // not ours (or already freed): nothing to account for
  live.delete(a);
  stats.bytes -= a.byteLength;
  stats.count--;
}

/** Live bytes and arrays allocated by the reference backend and not yet freed. */
export function referenceMemory(): { bytes: number; count: number } {
  return { bytes: stats.bytes, count: stats.count };
}

/** The Float32Array behind a KTensor of this backend. */
export function f32(t: KTensor): Float32Array {
  const d = t.data;
  if (!(d instanceof Float32Array)) throw new Error('reference backend: tensor data is not a Float32Array (tensor from another backend?)');
  return d;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Product of the dimensions from axis `from` on (the spatial size for NC... tensors with from = 2). */
export function tail(shape: readonly number[], from: number): number {
  let n = 1;
  for (let i = from; i < shape.length; i++) n *= shape[i]!;
  return n;
}

export function out(shape: readonly number[], data: Float32Array): KTensor {
  return { shape: [...shape], data };
}

export function check(cond: boolean, msg: string): asserts cond {
  if (!cond) throw new Error(`reference backend: ${msg}`);
}
