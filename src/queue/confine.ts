import { realpathSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { QueueConfigError, RootRefusal } from './errors.js';

/**
 * The real path of `p`, following symbolic links. A path that does not exist yet (an output) is its
 * nearest existing ancestor's real path plus the rest, so a link inside a root that points outside
 * it cannot be used to escape.
 */
export function realPathOf(p: string): string {
  let head = resolve(p);
  const tail: string[] = [];
  for (;;) {
    try {
      return join(realpathSync(head), ...tail);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' && (e as NodeJS.ErrnoException).code !== 'ENOTDIR') throw e;
      const up = dirname(head);
      if (up === head) return join(head, ...tail);
      tail.unshift(basename(head));
      head = up;
    }
  }
}

export function isInside(path: string, root: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/**
 * Confines a worker's file access to its roots (real paths, resolved once at start). `roots` null
 * means no confinement. Returns the real path to use, so a link swapped in after the check does not
 * change what the worker believes it checked more than the file system itself allows.
 */
export function confine(path: string, roots: readonly string[] | null, what: string): string {
  const real = realPathOf(path);
  if (roots === null) return real;
  if (!roots.some((r) => isInside(real, r))) throw new RootRefusal(`${what} ${path} is outside the worker's --root (${roots.join(', ')})`);
  return real;
}

export function resolveRoots(roots: readonly string[] | undefined): string[] | null {
  if (!roots || roots.length === 0) return null;
  return roots.map((r) => {
    try {
      return realpathSync(resolve(r));
    } catch {
      throw new QueueConfigError(`--root ${r} does not exist`);
    }
  });
}
