/**
 * What the engine needs from a backend besides kernels: memory. Storage handles are opaque to the
 * engine; kernels of the same backend know what they are.
 */
export interface Backend {
  readonly name: string;
  /** Copies host data into a new storage handle. */
  upload(data: Float32Array): unknown;
  /** A new zero-filled storage of `size` float32 values. */
  zeros(size: number): unknown;
  /** Waits for pending work and returns a copy of the values. */
  read(handle: unknown, size: number): Promise<Float32Array>;
  /** Synchronous read; backends that cannot block (browser WebGPU) throw here. */
  readSync(handle: unknown, size: number): Float32Array;
  /** Releases a storage handle; called exactly once per handle. */
  free(handle: unknown): void;
  /** Copies values into an existing storage (used for in-place parameter updates and loading weights). */
  write(handle: unknown, data: Float32Array): void;
}
