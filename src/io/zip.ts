/**
 * The ZIP reader of ./zip-format.ts bound to Node: node:zlib for inflate and CRC-32, positional reads
 * of an open file.
 */
import type { FileHandle } from 'node:fs/promises';
import * as zlib from 'node:zlib';
import { crc32 as plainCrc32 } from './crc32.js';
import { runOnBufferWith, runWithReads, ZipError, type ByteReader, type ZipCodec } from './zip-format.js';

export * from './zip-format.js';

// zlib.crc32 exists from Node 20.15 only; package.json allows any Node 20, so older ones use the
// plain TypeScript CRC-32 the browser build uses (a namespace import, because a named import of a
// missing export would fail to load the module at all).
const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;

export const nodeZipCodec: ZipCodec = { inflateRaw: (raw) => zlib.inflateRawSync(raw), crc32: nativeCrc32 ? (data) => nativeCrc32(data) : (data) => plainCrc32(data) };

/** Runs a ByteReader over an in-memory buffer (no copies: requests are served as subarrays). */
export function runOnBuffer<T>(reader: ByteReader<T>, buf: Uint8Array): T {
  return runOnBufferWith(reader, buf, nodeZipCodec);
}

/** Runs a ByteReader over an open file, with positional reads (the file is never loaded whole). */
export async function runOnFile<T>(reader: ByteReader<T>, fh: FileHandle): Promise<T> {
  return runWithReads(
    reader,
    async ({ offset, length }) => {
      const out = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await fh.read(out, got, length - got, offset + got);
        if (bytesRead === 0) throw new ZipError(`truncated file (needs bytes ${offset}..${offset + length}, read only ${got})`);
        got += bytesRead;
      }
      return out;
    },
    nodeZipCodec,
  );
}
