import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from './fs.js';
import { parseSafetensors, serializeSafetensors, SafetensorsError, type RawTensorMap } from './safetensors-format.js';

// The byte-level format lives in ./safetensors-format.ts (browser-safe); this module adds files.
export * from './safetensors-format.js';

export async function readSafetensorsFile(path: string): Promise<{ tensors: RawTensorMap; metadata: Record<string, string> }> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (e) {
    throw new SafetensorsError(`cannot read '${path}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return parseSafetensors(buf);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new SafetensorsError(`${path}: ${e.message}`);
    throw e;
  }
}

export async function writeSafetensorsFile(
  path: string,
  tensors: Iterable<[string, { shape: readonly number[]; data: Float32Array }]>,
  metadata?: Record<string, string>,
  opts: { dtype?: 'F32' | 'F16' } = {},
): Promise<void> {
  await writeFileAtomic(path, serializeSafetensors(tensors, metadata, opts));
}
