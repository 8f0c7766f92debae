/**
 * PyTorch checkpoints in Node: the format reader of ./pth-format.ts over node:zlib, in memory or
 * from a file with positional reads.
 */
import { open, stat } from 'node:fs/promises';
import type { RawTensorMap } from './safetensors-format.js';
import { asPthError, parsePthWith, PthError, pthReader } from './pth-format.js';
import { nodeZipCodec, runOnFile } from './zip.js';

export * from './pth-format.js';

/** Parses a torch.save (zip) checkpoint held in memory. */
export function parsePth(buf: Uint8Array): RawTensorMap {
  return parsePthWith(buf, nodeZipCodec);
}

/** Reads a torch.save (zip) checkpoint from disk with positional reads (works for files > 4 GB). */
export async function readPth(path: string): Promise<RawTensorMap> {
  let fh;
  let size: number;
  try {
    size = (await stat(path)).size;
    fh = await open(path, 'r');
  } catch (e) {
    throw new PthError(`cannot read '${path}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return await runOnFile(pthReader(size), fh);
  } catch (e) {
    throw asPthError(e, path);
  } finally {
    await fh.close();
  }
}
