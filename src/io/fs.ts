import { writeFile, rename, unlink } from 'node:fs/promises';

/** Writes atomically: a temporary file next to the target, then rename, so a crash never leaves half a file. */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}
