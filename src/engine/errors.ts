/**
 * The one base of every error a user can cause and fix — a file that is not what it claims to be,
 * a config field out of range, weights that do not fit, a path that cannot be written — as opposed
 * to a bug. Front ends map it once: the CLI prints the message as one line and exits with
 * `exitCode`, the browser app shows the message as is; anything else keeps its stack trace.
 * It lives in the lowest layer so that every layer's own error type can extend it.
 * Messages name the offending path once, at the start ("path: what is wrong").
 */
export class InputError extends Error {
  /** Process exit status for the CLI (2 = bad input, as for usage errors). */
  readonly exitCode: number;

  constructor(message: string, opts: { exitCode?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'InputError';
    this.exitCode = opts.exitCode ?? 2;
  }
}

export function isInputError(e: unknown): e is InputError {
  return e instanceof InputError;
}
