/**
 * The ZIP reader of ./zip-format.ts bound to Node: node:zlib for inflate and CRC-32, positional reads
 * of an open file.
 */
import type { FileHandle } from 'node:fs/promises';
import { crc32, inflateRawSync } from 'node:zlib';
import { runOnBufferWith, runWithReads, ZipError, type ByteReader, type ZipCodec } from './zip-format.js';

export * from './zip-format.js';

export const nodeZipCodec: ZipCodec = { inflateRaw: (raw) => inflateRawSync(raw), crc32: (data) => crc32(data) };

/** Runs a ByteReader over an in-memory buffer (no copies: requests are served as subarrays). */
export function runOnBuffer<T>(reader: ByteReader<T>, buf: Uint8Array): T {
  return runOnBufferWith(reader, buf, nodeZipCodec);
}

/** Runs a ByteReader over an open file, with positional reads (the file is never loaded whole). */
export async function runOnFile<T>(reader: ByteReader<T>, fh: FileHandle): Promise<T> {
  return runWithReads(reader, async ({ offset, length }) => {
    const out = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await fh.read(out, got, length - got, offset + got);
      if (bytesRead === 0) throw new ZipError(`truncated file (needs bytes ${offset}..${offset + length}, read only ${got})`);
      got += bytesRead;
    }
    return out;
  }, nodeZipCodec);
}
