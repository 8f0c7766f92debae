import type { GradNode } from './autograd.js';
import type { KTensor } from './kernels.js';
import { getBackend } from './registry.js';
import { runKernel } from './run-kernel.js';
import { isGradEnabled } from './scope.js';
import { Storage } from './storage.js';
import { Tensor, shapeString, sizeOf } from './tensor.js';

/** Wraps a kernel output as a Tensor owned by the caller. */
export function wrap(k: KTensor, backendName: string): Tensor {
  return new Tensor(new Storage(getBackend(backendName), k.data, sizeOf(k.shape)), k.shape);
}

/** The backend shared by all given tensors; mixing backends is an error (move tensors explicitly). */
export function backendOf(op: string, ...ts: (Tensor | null | undefined)[]): string {
  let name: string | null = null;
  for (const t of ts) {
    if (!t) continue;
    const b = t.backendName;
    if (name === null) name = b;
    else if (b !== name) throw new Error(`${op}: inputs live on different backends ('${name}' and '${b}')`);
  }
  if (name === null) throw new Error(`${op}: no tensor inputs`);
  return name;
}

export { runKernel };

/**
 * Attaches an autograd node to `out` when grad mode is on and any input requires grad.
 * `saved` tensors are kept alive (aliased) until backward consumes the node.
 */
export function record(out: Tensor, op: string, inputs: (Tensor | null)[], saved: Tensor[], backward: GradNode['backward']): Tensor {
  if (!isGradEnabled() || !inputs.some((t) => t?.requiresGrad)) return out;
  out.requiresGrad = true;
  out.node = { op, inputs, saved: saved.map((t) => t.alias()), backward };
  return out;
}

export function assertShape(op: string, what: string, t: Tensor, rank: number): void {
  if (t.rank !== rank) throw new Error(`${op}: ${what} must have ${rank} dimensions, got shape ${shapeString(t.shape)}`);
}

export function assertSameShape(op: string, a: Tensor, b: Tensor): void {
  if (a.rank !== b.rank || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(`${op}: shapes ${shapeString(a.shape)} and ${shapeString(b.shape)} differ`);
  }
}

/** @internal untracked-by-autograd elementwise add, used for gradient accumulation. */
export function addRaw(a: Tensor, b: Tensor): Tensor {
  const be = backendOf('add', a, b);
  return wrap(runKernel('add', be, a.info, b.info), be);
}

/** @internal the seed gradient of backward(). */
export function onesLikeShape(shape: readonly number[], backendName: string): Tensor {
  const be = getBackend(backendName);
  const n = sizeOf(shape);
  return new Tensor(new Storage(be, be.upload(new Float32Array(n).fill(1)), n), shape);
}
