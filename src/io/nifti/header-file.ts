import { open, type FileHandle } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import { NiftiError } from './errors.js';
import { fixGeometry } from './geometry.js';
import { parseHeader, type NiftiHeader } from './header.js';

/** The header only: reads (and for .gz inflates) just the first bytes of the file. */
export async function readNiftiHeaderFile(path: string): Promise<NiftiHeader> {
  const NEED = 540 + 4;
  let head: Uint8Array;
  try {
    const fh = await open(path, 'r');
    try {
      const first = new Uint8Array(NEED);
      const { bytesRead } = await fh.read(first, 0, NEED, 0);
      head = first.subarray(0, bytesRead);
      if (bytesRead >= 2 && head[0] === 0x1f && head[1] === 0x8b) head = await inflatePrefix(path, fh, NEED);
    } finally {
      await fh.close();
    }
  } catch (e) {
    if (e instanceof NiftiError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new NiftiError('IO', code === 'ENOENT' ? 'no such file' : `cannot read (${code ?? (e as Error).message})`, path);
  }
  return parseHeader(head, path);
}

async function inflatePrefix(path: string, fh: FileHandle, need: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const gunzip = createGunzip();
    const stream = fh.createReadStream({ start: 0, autoClose: false, highWaterMark: 16384 });
    const chunks: Buffer[] = [];
    let got = 0;
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      stream.unpipe(gunzip);
      stream.destroy();
      gunzip.destroy();
      if (err && got < need) reject(new NiftiError('GZIP', `corrupt gzip data (${err.message})`, path));
      else resolve(new Uint8Array(Buffer.concat(chunks)).subarray(0, Math.min(got, need)));
    };
    gunzip.on('data', (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (got >= need) finish();
    });
    gunzip.on('end', () => finish());
    gunzip.on('error', (e) => finish(e));
    stream.on('error', (e) => finish(e));
    stream.pipe(gunzip);
  });
}

/** nibabel's shape (trailing singletons beyond 3-D dropped) from a header. */
export function headerShape(h: NiftiHeader): number[] {
  const n = Math.max(1, Math.min(7, h.dim[0]!));
  const s = h.dim.slice(1, n + 1);
  while (s.length > 3 && s[s.length - 1] === 1) s.pop();
  while (s.length < 3) s.push(1);
  return s;
}

/**
 * Voxel spacing along i, j, k from pixdim with nibabel's repairs (|pixdim|, 0 -> 1), in the file's unit
 * (normally mm). Every distance metric takes its spacing from here, from the ground truth's header.
 */
export function voxelSpacing(h: NiftiHeader): [number, number, number] {
  const px = fixGeometry(h).pixdim;
  return [px[1]!, px[2]!, px[3]!];
}
