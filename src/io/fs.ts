import { writeFile, rename, unlink } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';

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

/**
 * A path as a log line shows it: relative to the working directory when it lies inside it (what the
 * user typed, usually), else absolute.
 */
export function displayPath(path: string): string {
  const rel = relative(process.cwd(), resolve(path));
  if (rel === '') return '.';
  return rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel) ? resolve(path) : rel;
}

/**
 * Whether `child` is `parent` itself or lies inside it, by their paths (links not followed): what every
 * "an output must not be inside an input" check asks. A sibling named "..x" is not inside.
 */
export function isInside(parent: string, child: string): boolean {
  const r = relative(resolve(parent), resolve(child));
  return r === '' || (r !== '..' && !r.startsWith(`..${sep}`) && !isAbsolute(r));
}
