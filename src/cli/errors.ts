import { InputError } from '../engine/errors.js';

/**
 * An error raised by the CLI itself about what the user typed or pointed at; the CLI prints it as
 * one line (no stack trace) and exits with `exitCode`, like every other InputError.
 */
export class UserError extends InputError {
  constructor(message: string, exitCode = 2) {
    super(message, { exitCode });
    this.name = 'UserError';
  }
}

/** Why an operating-system call failed, in words, for the errors a user can cause and fix. */
const OS_REASONS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EEXIST: 'already exists',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EISDIR: 'is a folder, not a file',
  ENOENT: 'no such file or folder',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  ENAMETOOLONG: 'name too long',
  EMFILE: 'too many open files',
  ENOTEMPTY: 'folder not empty',
  ELOOP: 'too many levels of symbolic links',
};

/**
 * A failed file-system call the user can fix (a folder that cannot be written, a full disk, a file
 * where a folder should be) as one line naming the path once; null for anything else (a bug).
 */
export function describeOsError(e: unknown): string | null {
  const err = e as (NodeJS.ErrnoException & { dest?: string }) | null;
  if (!err || typeof err !== 'object' || typeof err.code !== 'string' || !(err.code in OS_REASONS)) return null;
  if (typeof err.syscall !== 'string') return null;
  const verb =
    (
      {
        open: 'cannot open',
        read: 'cannot read',
        write: 'cannot write',
        mkdir: 'cannot create folder',
        rename: 'cannot write',
        unlink: 'cannot remove',
        rmdir: 'cannot remove',
        scandir: 'cannot list',
        stat: 'cannot read',
        lstat: 'cannot read',
        access: 'cannot access',
        copyfile: 'cannot copy',
      } as Record<string, string>
    )[err.syscall] ?? `${err.syscall} failed on`;
  // rename's error names the temporary file as path and the real target as dest.
  const path = err.syscall === 'rename' && err.dest ? err.dest : err.path;
  return path ? `${verb} '${path}': ${OS_REASONS[err.code]} (${err.code})` : `${verb}: ${OS_REASONS[err.code]} (${err.code})`;
}
