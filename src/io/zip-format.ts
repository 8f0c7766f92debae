/**
 * Minimal read-only ZIP reader (central directory, stored + deflated entries, ZIP64), written for
 * PyTorch checkpoints (torch.save >= 1.6 writes a ZIP via miniz) but not specific to them.
 *
 * The reader is written as generators that *yield requests* (bytes at {offset, length}, or the
 * decompression of an entry) and receive the bytes back. The same code then runs synchronously over
 * an in-memory buffer, asynchronously over a file handle (./zip.ts, Node; the archive is never held
 * whole, which matters for checkpoints beyond Node's maximum Buffer size), or over a buffer with the
 * browser's asynchronous DecompressionStream. Nothing here touches a file system or node:zlib.
 */
import { InputError } from '../engine/errors.js';

export class ZipError extends InputError {
  constructor(message: string) {
    super(message);
    this.name = 'ZipError';
  }
}

export interface ReadRequest {
  offset: number;
  length: number;
}

/**
 * Asks the runner for an entry's uncompressed, verified bytes given its raw (stored or deflated)
 * bytes. Decompression is the runner's job because it may be asynchronous (DecompressionStream in
 * browsers) while the readers below are synchronous generators.
 */
export interface DecodeRequest {
  decode: ZipEntry;
  raw: Uint8Array;
}

export type ZipRequest = ReadRequest | DecodeRequest;

/** A computation that needs bytes of the archive: yields what it wants to read (or decode), returns T. */
export type ByteReader<T> = Generator<ZipRequest, T, Uint8Array>;

/** Raw DEFLATE and CRC-32 as the platform provides them (node:zlib, or CompressionStream + ./crc32.ts). */
export interface ZipCodec {
  inflateRaw(raw: Uint8Array): Uint8Array;
  crc32(data: Uint8Array): number;
}

export interface AsyncZipCodec {
  inflateRaw(raw: Uint8Array): Promise<Uint8Array> | Uint8Array;
  crc32(data: Uint8Array): number;
}

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflated (the only two methods accepted). */
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function u64(v: DataView, at: number, what: string): number {
  const x = v.getBigUint64(at, true);
  if (x > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipError(`${what} ${x} is too large`);
  return Number(x);
}

/** Does the archive start like a ZIP at all? (local header, or an empty archive's EOCD) */
export function looksLikeZip(head: Uint8Array): boolean {
  if (head.byteLength < 4) return false;
  const s = view(head).getUint32(0, true);
  return s === SIG_LOCAL || s === SIG_EOCD;
}

/**
 * Reads the central directory. Returns entries keyed by name, in directory order.
 * Only single-disk archives are accepted (split archives are not something torch writes).
 */
export function* readCentralDirectory(fileSize: number): ByteReader<Map<string, ZipEntry>> {
  if (fileSize < EOCD_SIZE) throw new ZipError(`not a zip archive (${fileSize} bytes is shorter than an end-of-central-directory record)`);
  // The EOCD record sits at the very end, followed only by an optional comment of up to 64 KiB.
  const tailLen = Math.min(fileSize, EOCD_SIZE + MAX_COMMENT);
  const tailStart = fileSize - tailLen;
  const tail = yield { offset: tailStart, length: tailLen };
  const tv = view(tail);
  let eocd = -1;
  for (let p = tailLen - EOCD_SIZE; p >= 0; p--) {
    // Require the comment length to reach exactly to the end of the file, so a stray signature
    // inside the comment or inside compressed data is not mistaken for the record.
    if (tv.getUint32(p, true) === SIG_EOCD && p + EOCD_SIZE + tv.getUint16(p + 20, true) === tailLen) {
      eocd = p;
      break;
    }
  }
  if (eocd < 0) throw new ZipError('not a zip archive (no end-of-central-directory record)');
  let diskNo = tv.getUint16(eocd + 4, true);
  let cdDisk = tv.getUint16(eocd + 6, true);
  let count = tv.getUint16(eocd + 10, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);

  // ZIP64: a locator immediately precedes the EOCD record and points at the ZIP64 EOCD record,
  // whose 64-bit fields replace the saturated (0xFFFF / 0xFFFFFFFF) 32-bit ones.
  const eocdAbs = tailStart + eocd;
  if (eocdAbs >= 20) {
    const loc = eocd >= 20 ? tail.subarray(eocd - 20, eocd) : yield { offset: eocdAbs - 20, length: 20 };
    const lv = view(loc);
    if (lv.getUint32(0, true) === SIG_ZIP64_LOCATOR) {
      const recOffset = u64(lv, 8, 'ZIP64 end-of-central-directory offset');
      if (recOffset + 56 > fileSize) throw new ZipError('truncated zip archive (ZIP64 end-of-central-directory record out of range)');
      const rec = yield { offset: recOffset, length: 56 };
      const rv = view(rec);
      if (rv.getUint32(0, true) !== SIG_ZIP64_EOCD) throw new ZipError('corrupt zip archive (bad ZIP64 end-of-central-directory signature)');
      diskNo = rv.getUint32(16, true);
      cdDisk = rv.getUint32(20, true);
      count = u64(rv, 32, 'ZIP64 entry count');
      cdSize = u64(rv, 40, 'ZIP64 central directory size');
      cdOffset = u64(rv, 48, 'ZIP64 central directory offset');
    }
  }
  if (diskNo !== 0 || cdDisk !== 0) throw new ZipError('multi-disk (split) zip archives are not supported');
  if (cdOffset + cdSize > fileSize) throw new ZipError(`truncated zip archive (central directory at ${cdOffset}+${cdSize} is beyond the ${fileSize}-byte file)`);

  const cd = yield { offset: cdOffset, length: cdSize };
  const cv = view(cd);
  const entries = new Map<string, ZipEntry>();
  const utf8 = new TextDecoder('utf-8');
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdSize || cv.getUint32(p, true) !== SIG_CENTRAL) throw new ZipError(`corrupt zip archive (central directory entry ${i} is malformed)`);
    const flags = cv.getUint16(p + 8, true);
    const method = cv.getUint16(p + 10, true);
    const crc = cv.getUint32(p + 16, true);
    let csize = cv.getUint32(p + 20, true);
    let usize = cv.getUint32(p + 24, true);
    const nameLen = cv.getUint16(p + 28, true);
    const extraLen = cv.getUint16(p + 30, true);
    const commentLen = cv.getUint16(p + 32, true);
    let local = cv.getUint32(p + 42, true);
    const end = p + 46 + nameLen + extraLen + commentLen;
    if (end > cdSize) throw new ZipError(`corrupt zip archive (central directory entry ${i} overruns the directory)`);
    const name = utf8.decode(cd.subarray(p + 46, p + 46 + nameLen));
    // ZIP64 extended information (header id 1): only the saturated fields are present, in this order.
    let e = p + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = cv.getUint16(e, true);
      const size = cv.getUint16(e + 2, true);
      if (id === 0x0001) {
        let q = e + 4;
        const take = (): number => {
          if (q + 8 > e + 4 + size) throw new ZipError(`corrupt zip archive (short ZIP64 extra field in '${name}')`);
          const v = u64(cv, q, `ZIP64 field of '${name}'`);
          q += 8;
          return v;
        };
        if (usize === 0xffffffff) usize = take();
        if (csize === 0xffffffff) csize = take();
        if (local === 0xffffffff) local = take();
      }
      e += 4 + size;
    }
    if (flags & 1) throw new ZipError(`zip entry '${name}' is encrypted`);
    if (method !== 0 && method !== 8) throw new ZipError(`zip entry '${name}' uses compression method ${method}; only stored (0) and deflate (8) are supported`);
    entries.set(name, { name, method, flags, crc32: crc, compressedSize: csize, uncompressedSize: usize, localHeaderOffset: local });
    p = end;
  }
  return entries;
}

/** Reads one entry's uncompressed bytes, checking sizes and the CRC-32 against the central directory. */
export function* readEntry(entry: ZipEntry, fileSize: number): ByteReader<Uint8Array> {
  if (entry.localHeaderOffset + 30 > fileSize) throw new ZipError(`truncated zip archive (local header of '${entry.name}' is beyond the end of the file)`);
  const lh = yield { offset: entry.localHeaderOffset, length: 30 };
  const lv = view(lh);
  if (lv.getUint32(0, true) !== SIG_LOCAL) throw new ZipError(`corrupt zip archive (bad local header signature for '${entry.name}')`);
  // The local name/extra lengths may differ from the central directory's (torch pads the local extra
  // field so that data is 64-byte aligned), so the data offset must come from the local header.
  const dataStart = entry.localHeaderOffset + 30 + lv.getUint16(26, true) + lv.getUint16(28, true);
  if (dataStart + entry.compressedSize > fileSize) {
    throw new ZipError(`truncated zip archive (entry '${entry.name}' needs bytes ${dataStart}..${dataStart + entry.compressedSize}, file has ${fileSize})`);
  }
  const raw = yield { offset: dataStart, length: entry.compressedSize };
  return yield { decode: entry, raw };
}

function isDecode(r: ZipRequest): r is DecodeRequest {
  return 'decode' in r;
}

function inflateError(entry: ZipEntry, err: unknown): ZipError {
  return new ZipError(`corrupt zip archive (cannot inflate '${entry.name}': ${(err as Error).message})`);
}

/** Checks the uncompressed size and the CRC-32 against the central directory. */
function verified(entry: ZipEntry, data: Uint8Array, codec: { crc32(data: Uint8Array): number }): Uint8Array {
  if (entry.method !== 0 && data.byteLength !== entry.uncompressedSize)
    throw new ZipError(`corrupt zip archive ('${entry.name}' inflated to ${data.byteLength} bytes, expected ${entry.uncompressedSize})`);
  // CRC-32 catches bit rot and truncated downloads that still happen to have a valid directory.
  if (codec.crc32(data) >>> 0 !== entry.crc32) throw new ZipError(`corrupt zip archive (CRC-32 mismatch in '${entry.name}')`);
  return data;
}

function checkStored(entry: ZipEntry): void {
  if (entry.compressedSize !== entry.uncompressedSize) throw new ZipError(`corrupt zip archive (stored entry '${entry.name}' has different compressed and uncompressed sizes)`);
}

/** Serves a DecodeRequest synchronously. */
export function decodeEntry(req: DecodeRequest, codec: ZipCodec): Uint8Array {
  const entry = req.decode;
  if (entry.method === 0) {
    checkStored(entry);
    return verified(entry, req.raw, codec);
  }
  let data: Uint8Array;
  try {
    data = codec.inflateRaw(req.raw);
  } catch (err) {
    throw inflateError(entry, err);
  }
  return verified(entry, data, codec);
}

/** Serves a DecodeRequest with a codec whose inflate may be asynchronous. */
export async function decodeEntryAsync(req: DecodeRequest, codec: AsyncZipCodec): Promise<Uint8Array> {
  const entry = req.decode;
  if (entry.method === 0) {
    checkStored(entry);
    return verified(entry, req.raw, codec);
  }
  let data: Uint8Array;
  try {
    data = await codec.inflateRaw(req.raw);
  } catch (err) {
    throw inflateError(entry, err);
  }
  return verified(entry, data, codec);
}

function bufferSlice(buf: Uint8Array, { offset, length }: ReadRequest): Uint8Array {
  if (offset < 0 || length < 0 || offset + length > buf.byteLength) {
    throw new ZipError(`truncated file (needs bytes ${offset}..${offset + length}, has ${buf.byteLength})`);
  }
  return buf.subarray(offset, offset + length);
}

/** Runs a ByteReader over an in-memory buffer (no copies: requests are served as subarrays). */
export function runOnBufferWith<T>(reader: ByteReader<T>, buf: Uint8Array, codec: ZipCodec): T {
  let r = reader.next();
  while (!r.done) r = reader.next(isDecode(r.value) ? decodeEntry(r.value, codec) : bufferSlice(buf, r.value));
  return r.value;
}

/** runOnBufferWith for an asynchronous inflate (browsers). */
export async function runOnBufferAsync<T>(reader: ByteReader<T>, buf: Uint8Array, codec: AsyncZipCodec): Promise<T> {
  let r = reader.next();
  while (!r.done) r = reader.next(isDecode(r.value) ? await decodeEntryAsync(r.value, codec) : bufferSlice(buf, r.value));
  return r.value;
}

/** Runs a ByteReader whose byte reads are served by `read` (positional file reads, say). */
export async function runWithReads<T>(reader: ByteReader<T>, read: (req: ReadRequest) => Promise<Uint8Array>, codec: AsyncZipCodec): Promise<T> {
  let r = reader.next();
  while (!r.done) r = reader.next(isDecode(r.value) ? await decodeEntryAsync(r.value, codec) : await read(r.value));
  return r.value;
}
