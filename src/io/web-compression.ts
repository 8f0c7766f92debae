/**
 * gzip and raw DEFLATE with the web platform's CompressionStream / DecompressionStream (browsers,
 * Deno, Node >= 18), for code that must not depend on node:zlib. Streams are asynchronous, so these
 * feed the asynchronous entry points (parseNiftiAsync, parsePthAsync).
 */
import { crc32 } from './crc32.js';
import type { AsyncZipCodec } from './zip-format.js';

type Format = 'gzip' | 'deflate-raw';

async function pipe(bytes: Uint8Array, stream: TransformStream<Uint8Array, Uint8Array>): Promise<Uint8Array> {
  // Write and read concurrently: a large input would otherwise deadlock on back-pressure.
  const writer = stream.writable.getWriter();
  const written = writer.write(bytes).then(() => writer.close());
  written.catch(() => {}); // a corrupt stream rejects both sides; the reader's error is reported
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = stream.readable.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    total += value.byteLength;
  }
  await written;
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

export function decompress(bytes: Uint8Array, format: Format): Promise<Uint8Array> {
  return pipe(bytes, new DecompressionStream(format) as unknown as TransformStream<Uint8Array, Uint8Array>);
}

export function compress(bytes: Uint8Array, format: Format): Promise<Uint8Array> {
  return pipe(bytes, new CompressionStream(format) as unknown as TransformStream<Uint8Array, Uint8Array>);
}

export const gunzip = (bytes: Uint8Array): Promise<Uint8Array> => decompress(bytes, 'gzip');
export const gzip = (bytes: Uint8Array): Promise<Uint8Array> => compress(bytes, 'gzip');

/** Inflate and CRC-32 for the ZIP reader (PyTorch checkpoints) without node:zlib. */
export const webZipCodec: AsyncZipCodec = { inflateRaw: (raw) => decompress(raw, 'deflate-raw'), crc32 };
