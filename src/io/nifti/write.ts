import { gzip } from 'node:zlib';
import { promisify } from 'node:util';
import { writeFileAtomic } from '../fs.js';
import { encodeNifti, type NiftiWriteInput } from './encode.js';

// Encoding lives in ./encode.ts (browser-safe); this module adds gzip and the atomic file write.
export * from './encode.js';

const gzipAsync = promisify(gzip);

/** Writes atomically; gzip-compresses when the name ends in .gz. */
export async function writeNiftiFile(path: string, input: NiftiWriteInput): Promise<void> {
  let bytes = encodeNifti(input);
  if (path.endsWith('.gz')) bytes = await gzipAsync(bytes, { level: 6 });
  await writeFileAtomic(path, bytes);
}
