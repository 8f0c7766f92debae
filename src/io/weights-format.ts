/**
 * Weight files as bytes: which reader a file name calls for, and parsing either format from memory
 * (browser-safe; ./weights.ts reads files in Node). Both give the same ordered name -> float32 map.
 */
import { parseSafetensors, type RawTensorMap } from './safetensors-format.js';
import { parsePthAsync } from './pth-format.js';
import type { AsyncZipCodec } from './zip-format.js';
import { InputError } from '../engine/errors.js';

/** Extensions read as torch.save zip checkpoints (.bin is what HF-style repos use for torch.save files). */
export const PTH_EXTENSIONS = ['.pth', '.pt', '.bin', '.ckpt'] as const;
export const SAFETENSORS_EXTENSIONS = ['.safetensors'] as const;

export class WeightsFormatError extends InputError {
  constructor(message: string) {
    super(message);
    this.name = 'WeightsFormatError';
  }
}

/** The extension of the last path component, as node:path's posix extname gives it ('.gz', '' for '.bashrc'). */
export function extensionOf(path: string): string {
  const trimmed = path.replace(/\/+$/, '');
  const base = trimmed.slice(trimmed.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  return dot <= 0 || base === '..' ? '' : base.slice(dot);
}

export function weightsFormat(path: string): 'safetensors' | 'pth' {
  const ext = extensionOf(path).toLowerCase();
  if ((SAFETENSORS_EXTENSIONS as readonly string[]).includes(ext)) return 'safetensors';
  if ((PTH_EXTENSIONS as readonly string[]).includes(ext)) return 'pth';
  throw new WeightsFormatError(
    `don't know how to read weights from '${path}' (extension '${ext || '(none)'}'); ` + `expected ${[...SAFETENSORS_EXTENSIONS, ...PTH_EXTENSIONS].join(', ')}`,
  );
}

/** Parses weight bytes named `name` (.safetensors, or a torch.save checkpoint) with the given inflate. */
export async function parseWeights(bytes: Uint8Array, name: string, codec: AsyncZipCodec): Promise<RawTensorMap> {
  return weightsFormat(name) === 'safetensors' ? parseSafetensors(bytes).tensors : parsePthAsync(bytes, codec);
}
