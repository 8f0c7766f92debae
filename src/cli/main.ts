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
    .showHelpAfterError()
    .exitOverride();
  for (const register of commands) register(program);
  return program;
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
    // The one place user-facing errors become a line and an exit code: every I/O, config, model,
    // weights and NIfTI error extends InputError; failed file-system calls carry a path and a code.
    if (err instanceof InputError) {
      process.stderr.write(`uxnet: ${oneLine(err.message)}\n`);
      return err.exitCode;
    }
    const os = describeOsError(err);
    if (os) {
      process.stderr.write(`uxnet: ${os}\n`);
      return 1;
    }
    process.stderr.write(`uxnet: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    return 70;
  } finally {
    // A GPU device (--backend webgpu) keeps the event loop alive until it is destroyed.
    await releaseBackend().catch(() => {});
  }
}

export async function main(argv: string[]): Promise<void> {
  process.exitCode = await run(argv);
}

/** Messages may quote file content with newlines; the CLI promises one line. */
function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ');
}
