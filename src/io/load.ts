import { tensor } from '../engine/creation.js';
import type { Tensor } from '../engine/tensor.js';
import { keep } from '../engine/scope.js';
import { readSafetensorsFile, writeSafetensorsFile } from './safetensors.js';

/** Reads a safetensors file into Tensors on the current backend, in file order (F16/BF16 become float32). */
export async function loadSafetensors(path: string, opts: { backend?: string } = {}): Promise<Map<string, Tensor>> {
  const { tensors } = await readSafetensorsFile(path);
  const out = new Map<string, Tensor>();
  for (const [name, t] of tensors) out.set(name, keep(tensor(t.data, t.shape, { backend: opts.backend })));
  return out;
}

/** Writes tensors (e.g. a model's stateDict()) as float32 safetensors, atomically. */
export async function saveSafetensors(path: string, tensors: Map<string, Tensor> | Iterable<[string, Tensor]>, metadata?: Record<string, string>): Promise<void> {
  const entries: [string, { shape: readonly number[]; data: Float32Array }][] = [];
  for (const [name, t] of tensors) entries.push([name, { shape: t.shape, data: await t.data() }]);
  await writeSafetensorsFile(path, entries, metadata);
}
