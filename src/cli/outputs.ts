/**
 * Output locations, checked before any compute and created only when the first file is written, so a
 * command that fails leaves nothing behind: no empty folder, no half-written file (files go through
 * writeFileAtomic), and folders this run created are removed again if nothing was written into them.
 */
import { constants, realpathSync } from 'node:fs';
import { access, mkdir, rmdir, stat } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { UserError } from './errors.js';

async function statOrNull(p: string) {
  try {
    return await stat(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ENOTDIR') return 'notdir' as const;
    throw e;
  }
}

/** A path as the user would write it: relative to the working folder when inside it. */
function shown(p: string): string {
  const r = relative(process.cwd(), p);
  return r && !r.startsWith('..') && !isAbsolute(r) ? r : p;
}

/**
 * Why no file could be written into `dir` (null when it can): the nearest existing ancestor must be
 * a folder we may write into, since the missing part will be created. `at` is the offending path.
 */
async function dirProblem(dir: string): Promise<{ at: string; reason: string } | null> {
  let p = resolve(dir);
  for (;;) {
    const s = await statOrNull(p);
    // ENOTDIR: some ancestor is a file; keep climbing until it is found and named.
    if (s && s !== 'notdir' && !s.isDirectory()) return { at: p, reason: 'is a file, not a folder' };
    if (s && s !== 'notdir') break;
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  try {
    await access(p, constants.W_OK | constants.X_OK);
    return null;
  } catch (e) {
    return { at: p, reason: `is not writable (${(e as NodeJS.ErrnoException).code ?? 'EACCES'})` };
  }
}

/** Checks that `dir` is, or can be created as, a writable folder; `what` names its role. */
export async function checkWritableDir(dir: string, what = 'output folder'): Promise<void> {
  const problem = await dirProblem(dir);
  if (!problem) return;
  if (problem.at === resolve(dir)) throw new UserError(`${what} '${dir}' ${problem.reason}`);
  throw new UserError(`${what} '${dir}' cannot be created: '${shown(problem.at)}' ${problem.reason}`);
}

/**
 * Checks that a file can be written at `path`: not a folder, and its folder writable — or, with
 * `createDirs`, creatable (the command makes it when it writes).
 */
export async function checkWritableFile(path: string, what = 'output', opts: { createDirs?: boolean } = {}): Promise<void> {
  const s = await statOrNull(path);
  if (s && s !== 'notdir' && s.isDirectory()) throw new UserError(`cannot write ${what} '${path}': it is a folder (EISDIR)`);
  const dir = dirname(path);
  if (!opts.createDirs && (await statOrNull(dir)) === null) throw new UserError(`cannot write ${what} '${path}': its folder '${dir}' does not exist (ENOENT)`);
  const problem = await dirProblem(dir);
  if (problem) throw new UserError(`cannot write ${what} '${path}': '${shown(problem.at)}' ${problem.reason}`);
}

/**
 * Folders created on demand, remembered so that `discardIfUnused` can remove exactly those this run
 * made (and only while they are still empty: rmdir refuses anything else).
 */
export class LazyDirs {
  private readonly created: string[] = [];

  async ensure(dir: string): Promise<void> {
    const chain: string[] = [];
    let p = resolve(dir);
    while ((await statOrNull(p)) === null) {
      chain.unshift(p);
      const up = dirname(p);
      if (up === p) break;
      p = up;
    }
    if (!chain.length) return;
    await mkdir(chain[chain.length - 1]!, { recursive: true });
    this.created.push(...chain);
  }

  /** Removes the folders this run created, deepest first, as long as they are empty. */
  async discardIfUnused(): Promise<void> {
    for (const d of [...this.created].reverse()) await rmdir(d).catch(() => {});
    this.created.length = 0;
  }
}

/** Before any compute: the output can be written and is none of the files this command reads. */
export async function checkOutputFile(output: string, reads: (string | undefined)[]): Promise<void> {
  const same = reads.find((r) => r !== undefined && sameFile(r, output));
  if (same !== undefined) throw new UserError(`output '${output}' is the file '${same}' this command reads; choose another output`);
  await checkWritableFile(output, 'output file');
}

/** Whether two paths name one file (symlinks and relative paths followed). */
export function sameFile(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return resolve(a) === resolve(b);
  }
}
