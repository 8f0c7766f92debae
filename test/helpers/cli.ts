import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { FIXTURES } from './fixtures.js';

/** The repository root (tests run from dist/test/...). */
export const ROOT = join(FIXTURES, '..', '..');

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built `uxnet` CLI as a real process, as a user would. */
export function uxnet(args: string[], opts: { timeoutMs?: number; env?: Record<string, string> } = {}): CliResult {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'uxnet.js'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 120_000,
    env: { ...process.env, ...opts.env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A user error: non-zero exit, one line on stderr, no stack trace. */
export function assertUserError(r: { status: number | null; stderr: string }, re: RegExp): void {
  assert.notEqual(r.status, 0);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one line, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^uxnet: /);
  assert.doesNotMatch(r.stderr, /\n\s+at |internal error/);
  assert.match(lines[0]!, re);
}
