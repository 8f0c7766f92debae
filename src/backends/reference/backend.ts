import type { Backend } from '../../engine/backend.js';
import { alloc, release } from './memory.js';

function asArray(handle: unknown): Float32Array {
  if (!(handle instanceof Float32Array)) throw new Error('reference backend: storage handle is not a Float32Array');
  return handle;
}

/** Plain host memory: a storage handle is a Float32Array owned by the backend. */
export const referenceBackend: Backend = {
  name: 'reference',
  upload(data: Float32Array): Float32Array {
    const a = alloc(data.length);
    a.set(data);
    return a;
  },
  zeros(size: number): Float32Array {
    return alloc(size);
  },
  read(handle: unknown, size: number): Promise<Float32Array> {
    return Promise.resolve(asArray(handle).slice(0, size));
  },
  readSync(handle: unknown, size: number): Float32Array {
    return asArray(handle).slice(0, size);
  },
  free(handle: unknown): void {
    release(asArray(handle));
  },
  write(handle: unknown, data: Float32Array): void {
    const a = asArray(handle);
    if (data.length > a.length) throw new Error(`reference backend: write of ${data.length} values into storage of ${a.length}`);
    a.set(data);
  },
};
