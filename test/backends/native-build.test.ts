import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const has = (cmd: string) => {
  const r = spawnSync(cmd, ['--version'], { stdio: 'ignore' });
  return !r.error && r.status === 0;
};
const toolchain = process.platform !== 'win32' && has('make') && (has('python3') || has('python'));

/** native/build.cjs run in a scratch copy of the package, so the real build/ is never touched. */
describe('native/build.cjs: quiet without a toolchain, loud when the compiler fails', () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'uxnet-build-'));
    cpSync(join(repo, 'native'), join(root, 'native'), { recursive: true });
    cpSync(join(repo, 'binding.gyp'), join(root, 'binding.gyp'));
    symlinkSync(join(repo, 'node_modules'), join(root, 'node_modules'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  const build = (env: Record<string, string | undefined>) => {
    const clean = { ...process.env, UXNET_SKIP_NATIVE: undefined, CXX: undefined, ...env };
    return spawnSync(process.execPath, [join(root, 'native', 'build.cjs')], { cwd: root, env: clean, encoding: 'utf8' });
  };

  it('no compiler on PATH: warns and exits 0, so installation succeeds', () => {
    const empty = join(root, 'empty-bin');
    mkdirSync(empty, { recursive: true });
    const r = build({ PATH: empty });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /the native CPU backend was not built \(no C\+\+ compiler was found \(c\+\+, g\+\+, clang\+\+\)\)/);
    assert.match(r.stderr, /installation continues/);
  });

  it('a compiler that fails: an ERROR naming the failure and exit status 1', { skip: toolchain ? false : 'make or python3 missing here' }, () => {
    const cxx = join(root, 'broken-c++');
    writeFileSync(cxx, '#!/bin/sh\nif [ "$1" = --version ]; then echo broken 1.0; exit 0; fi\necho "broken-c++: internal compiler error" >&2\nexit 1\n');
    chmodSync(cxx, 0o755);
    const r = build({ CXX: cxx, CC: cxx });
    assert.equal(r.status, 1, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
    assert.match(r.stderr, /broken-c\+\+: internal compiler error/);
    assert.match(r.stderr, /uxnet3d: ERROR: building the native CPU backend failed \(node-gyp exited with status \d+/);
    assert.match(r.stderr, /UXNET_SKIP_NATIVE=1 npm install/);
  });

  it('UXNET_SKIP_NATIVE=1 skips the build', () => {
    const r = build({ UXNET_SKIP_NATIVE: '1' });
    assert.equal(r.status, 0);
    assert.match(r.stderr, /UXNET_SKIP_NATIVE=1, not building the native backend/);
  });
});
