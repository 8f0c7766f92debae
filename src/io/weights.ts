/**
 * One entry point for weight files: dispatches on the extension to the safetensors or the PyTorch
 * checkpoint reader. Both return the same ordered name -> float32 tensor map.
 */
import { extname } from 'node:path';
import { readSafetensorsFile, type RawTensorMap } from './safetensors.js';
import { readPth } from './pth.js';

/** Extensions read as torch.save zip checkpoints (.bin is what HF-style repos use for torch.save files). */
export const PTH_EXTENSIONS = ['.pth', '.pt', '.bin', '.ckpt'] as const;
export const SAFETENSORS_EXTENSIONS = ['.safetensors'] as const;

export class WeightsFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WeightsFormatError';
  }
}

export function weightsFormat(path: string): 'safetensors' | 'pth' {
  const ext = extname(path).toLowerCase();
  if ((SAFETENSORS_EXTENSIONS as readonly string[]).includes(ext)) return 'safetensors';
  if ((PTH_EXTENSIONS as readonly string[]).includes(ext)) return 'pth';
  throw new WeightsFormatError(
    `don't know how to read weights from '${path}' (extension '${ext || '(none)'}'); ` +
      `expected ${[...SAFETENSORS_EXTENSIONS, ...PTH_EXTENSIONS].join(', ')}`,
  );
}

/** Reads a weight file (.safetensors, or a torch.save checkpoint .pth/.pt/.bin/.ckpt) as float32 tensors. */
export async function readWeightsFile(path: string): Promise<RawTensorMap> {
  return weightsFormat(path) === 'safetensors' ? (await readSafetensorsFile(path)).tensors : readPth(path);
}
