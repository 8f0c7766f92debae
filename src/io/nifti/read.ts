import { readFile } from 'node:fs/promises';
import { gunzip, gunzipSync } from 'node:zlib';
import { promisify } from 'node:util';
import { NiftiError } from './errors.js';
import { isGzip, parseDecompressed, type NiftiImage } from './parse.js';

// Parsing and decoding live in ./parse.ts (browser-safe); this module adds node:zlib and files.
export * from './parse.js';

const gunzipAsync = promisify(gunzip);

function zlibMessage(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'Z_BUF_ERROR' || /unexpected end/i.test(err.message)) return 'the gzip stream is truncated (incomplete download?)';
  if (/incorrect data check|incorrect length check/i.test(err.message)) return `gzip checksum mismatch: the file is corrupt (${err.message})`;
  return `corrupt gzip data (${err.message})`;
}

/**
 * Decompresses when the bytes are gzip, whatever the file name says: nibabel trusts the suffix, but
 * the content is the better witness (an uncompressed file named .nii.gz reads fine).
 */
export function maybeGunzip(bytes: Uint8Array, file?: string): Uint8Array {
  if (!isGzip(bytes)) return bytes;
  try {
    return gunzipSync(bytes);
  } catch (e) {
    throw new NiftiError('GZIP', zlibMessage(e), file);
  }
}

async function maybeGunzipAsync(bytes: Uint8Array, file?: string): Promise<Uint8Array> {
  if (!isGzip(bytes)) return bytes;
  try {
    return await gunzipAsync(bytes);
  } catch (e) {
    throw new NiftiError('GZIP', zlibMessage(e), file);
  }
}

/** Parses and validates a whole NIfTI file already in memory (gzip or not). */
export function parseNifti(input: Uint8Array, file?: string): NiftiImage {
  return parseDecompressed(maybeGunzip(input, file), file);
}

export async function readNiftiFile(path: string): Promise<NiftiImage> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new NiftiError('IO', code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory, not a NIfTI file' : `cannot read (${code ?? (e as Error).message})`, path);
  }
  return parseDecompressed(await maybeGunzipAsync(buf, path), path);
}
