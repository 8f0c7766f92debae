import type { KTensor } from './kernels.js';
import { Storage } from './storage.js';
import { setTensorCheck, trackTensor } from './scope.js';
import type { GradNode } from './autograd.js';
import { backward as runBackward } from './autograd.js';

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major (C-order) element strides of a contiguous tensor of `shape`. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d]!;
  }
  return s;
}

export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/**
 * A float32 tensor on one backend (NCDHW for volumes). Values live in a reference-counted Storage;
 * `dispose()` releases this tensor's claim on it. Tensors that take part in autograd carry the node
 * that created them.
 */
export class Tensor {
  readonly shape: readonly number[];
  readonly size: number;
  requiresGrad: boolean;
  grad: Tensor | null = null;
  /** @internal the autograd node that produced this tensor (null for leaves and after backward). */
  node: GradNode | null = null;
  name?: string;
  private _storage: Storage | null;

  /** @internal use the creation functions or ops; `track=false` keeps the tensor out of tidy scopes. */
  constructor(storage: Storage, shape: readonly number[], opts: { requiresGrad?: boolean; track?: boolean } = {}) {
    const size = sizeOf(shape);
    if (size !== storage.size) throw new Error(`internal: shape ${shapeString(shape)} has ${size} values but storage has ${storage.size}`);
    this.shape = Object.freeze([...shape]);
    this.size = size;
    this._storage = storage;
    this.requiresGrad = opts.requiresGrad ?? false;
    if (opts.track !== false) trackTensor(this);
  }

  get storage(): Storage {
    if (!this._storage) throw new Error(`tensor ${this.name ? `'${this.name}' ` : ''}${shapeString(this.shape)} was disposed`);
    return this._storage;
  }

  get isDisposed(): boolean {
    return this._storage === null;
  }

  get backendName(): string {
    return this.storage.backend.name;
  }

  get rank(): number {
    return this.shape.length;
  }

  /** The kernel-level view {shape, data handle}. */
  get info(): KTensor {
    return { shape: this.shape, data: this.storage.handle };
  }

  /** A copy of the values; blocks until pending work on this tensor is done. */
  dataSync(): Float32Array {
    const s = this.storage;
    return s.backend.readSync(s.handle, s.size);
  }

  /** A copy of the values, without blocking the event loop on asynchronous backends. */
  data(): Promise<Float32Array> {
    const s = this.storage;
    return s.backend.read(s.handle, s.size);
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new Error(`item() needs a one-element tensor, got ${shapeString(this.shape)}`);
    return this.dataSync()[0]!;
  }

  /** Overwrites the values in place (loading weights, optimiser state). Not recorded by autograd. */
  assign(values: Float32Array): void {
    if (values.length !== this.size) throw new Error(`assign: ${values.length} values for a tensor of shape ${shapeString(this.shape)}`);
    const s = this.storage;
    s.backend.write(s.handle, values);
  }

  /** A new tensor object sharing this storage (no copy), cut off from autograd. */
  detach(): Tensor {
    return new Tensor(this.storage.retain(), this.shape);
  }

  /** @internal an untracked alias, used by autograd to keep saved tensors alive. */
  alias(): Tensor {
    return new Tensor(this.storage.retain(), this.shape, { track: false });
  }

  /** Releases this tensor's values. Safe to call more than once. */
  dispose(): void {
    if (!this._storage) return;
    this._storage.release();
    this._storage = null;
  }

  /** Back-propagates from this scalar (or with an explicit upstream gradient). */
  backward(grad?: Tensor): void {
    runBackward(this, grad);
  }

  toString(): string {
    return `Tensor(${shapeString(this.shape)}${this.requiresGrad ? ', requiresGrad' : ''}${this.isDisposed ? ', disposed' : ''})`;
  }
}

setTensorCheck((v: unknown): v is Tensor => v instanceof Tensor);
