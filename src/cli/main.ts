import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { commands } from './commands/index.js';
import { InputError } from '../engine/errors.js';
import { describeOsError } from './errors.js';
import { releaseBackend } from './backend.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('uxnet')
    .description('3D UX-Net volumetric segmentation: forward, train, predict, evaluate')
    .version(packageVersion(), '-V, --version', 'print the version of uxnet3d')
    .showHelpAfterError()
    .exitOverride();
  for (const register of commands) register(program);
  return program;
}

/** package.json's version (this file is dist/src/cli/main.js once built). */
export function packageVersion(): string {
  const path = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'package.json');
  return (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version;
}

/** Runs the CLI; resolves to the process exit code and never throws. */
export async function run(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit through here with code 0; usage errors were already printed.
      return err.exitCode;
    }
    const { text, exitCode } = reportError(err);
    process.stderr.write(text);
    return exitCode;
  } finally {
    // A GPU device (--backend webgpu) keeps the event loop alive until it is destroyed.
    await releaseBackend().catch(() => {});
  }
}

export async function main(argv: string[]): Promise<void> {
  // Output piped into a reader that stops early (`uxnet compare ... | head`): the rest of the output
  // goes nowhere, but the work and the files it writes are finished, without a stack trace.
  const quietOnClosedPipe = (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
  };
  process.stdout.on('error', quietOnClosedPipe);
  process.stderr.on('error', quietOnClosedPipe);
  process.exitCode = await run(argv);
}

/**
 * The one place an escaped error becomes output and an exit code. Every I/O, config, model, weights
 * and NIfTI error extends InputError: one line, its exit code. A failed file-system call the user can
 * fix (EACCES, ENOSPC, ...) is one line naming the path. Anything else is a bug: full stack, exit 70.
 */
export function reportError(err: unknown): { text: string; exitCode: number } {
  if (err instanceof InputError) return { text: `uxnet: ${oneLine(err.message)}\n`, exitCode: err.exitCode };
  const os = describeOsError(err);
  if (os) return { text: `uxnet: ${os}\n`, exitCode: 1 };
  return { text: `uxnet: internal error: ${(err as Error)?.stack ?? String(err)}\n`, exitCode: 70 };
}

/** Messages may quote file content with newlines; the CLI promises one line. */
function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ');
}
