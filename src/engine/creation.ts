import { getBackend } from './registry.js';
import { keep } from './scope.js';
import { Storage } from './storage.js';
import { Tensor, shapeString, sizeOf } from './tensor.js';

function checkShape(shape: readonly number[]): void {
  if (!shape.every((d) => Number.isInteger(d) && d >= 0)) throw new Error(`invalid shape ${shapeString(shape)}: dimensions must be non-negative integers`);
}

/** A tensor holding a copy of `data` on the current (or given) backend. */
export function tensor(data: Float32Array | ArrayLike<number>, shape: readonly number[], opts: { requiresGrad?: boolean; backend?: string } = {}): Tensor {
  checkShape(shape);
  const n = sizeOf(shape);
  if (data.length !== n) throw new Error(`tensor(): ${data.length} values do not fill shape ${shapeString(shape)} (${n} values)`);
  const be = getBackend(opts.backend);
  const f32 = data instanceof Float32Array ? data : Float32Array.from(data);
  return new Tensor(new Storage(be, be.upload(f32), n), shape, { requiresGrad: opts.requiresGrad });
}

export function zeros(shape: readonly number[], opts: { requiresGrad?: boolean; backend?: string } = {}): Tensor {
  checkShape(shape);
  const be = getBackend(opts.backend);
  const n = sizeOf(shape);
  return new Tensor(new Storage(be, be.zeros(n), n), shape, { requiresGrad: opts.requiresGrad });
}

export function full(shape: readonly number[], value: number, opts: { requiresGrad?: boolean; backend?: string } = {}): Tensor {
  checkShape(shape);
  return tensor(new Float32Array(sizeOf(shape)).fill(value), shape, opts);
}

export function ones(shape: readonly number[], opts: { requiresGrad?: boolean; backend?: string } = {}): Tensor {
  return full(shape, 1, opts);
}

/** A trainable leaf: requires grad and is never disposed by tidy scopes. */
export function parameter(data: Float32Array | ArrayLike<number>, shape: readonly number[], opts: { backend?: string } = {}): Tensor {
  return keep(tensor(data, shape, { requiresGrad: true, backend: opts.backend }));
}

/**
 * Copies a tensor to another backend (values only; the copy is a leaf). Reads synchronously, so the
 * source must live on a CPU backend; from WebGPU use `toBackendAsync`.
 */
export function toBackend(t: Tensor, backend: string): Tensor {
  if (t.backendName === backend) return t.detach();
  return tensor(t.dataSync(), t.shape, { backend, requiresGrad: false });
}

/** `toBackend` with an asynchronous read: works from every backend, WebGPU included. */
export async function toBackendAsync(t: Tensor, backend: string): Promise<Tensor> {
  if (t.backendName === backend) return t.detach();
  return tensor(await t.data(), t.shape, { backend, requiresGrad: false });
}
