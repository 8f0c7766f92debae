#!/usr/bin/env node
// Install step for the native backend: builds build/Release/uxnet_native.node with node-gyp, using the
// Node headers already installed next to the node binary (nothing is downloaded). When the toolchain
// is missing (no C++ compiler, make, python3, node-gyp or Node headers) it prints why and exits 0, and
// the engine falls back to the reference backend at run time. When the toolchain is there but the build
// fails, that is a bug to see, not to hide: it says so loudly and exits 1 (UXNET_SKIP_NATIVE=1 installs
// without the addon).
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

function warn(msg) {
  process.stderr.write(
    `\nuxnet3d: the native CPU backend was not built (${msg}).\n` +
      'uxnet3d: installation continues; the slower reference backend will be used.\n' +
      'uxnet3d: to build it later: install a C++17 compiler, python3 and make, then run `npm rebuild uxnet3d` (or `node native/build.cjs`).\n\n',
  );
  process.exit(0);
}

if (process.env.UXNET_SKIP_NATIVE === '1') {
  process.stderr.write('uxnet3d: UXNET_SKIP_NATIVE=1, not building the native backend.\n');
  process.exit(0);
}

function findNodeGyp() {
  const cands = [];
  if (process.env.npm_config_node_gyp) cands.push(process.env.npm_config_node_gyp);
  try {
    cands.push(require.resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    /* not a local dependency */
  }
  if (process.env.npm_execpath) cands.push(path.join(path.dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  cands.push(path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  cands.push(path.join(path.dirname(process.execPath), 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return cands.find((p) => p && fs.existsSync(p));
}

function findNodeDir() {
  const cands = [];
  if (process.env.npm_config_nodedir) cands.push(process.env.npm_config_nodedir);
  cands.push(path.resolve(path.dirname(process.execPath), '..'));
  cands.push('/usr', '/usr/local');
  const ver = process.version.slice(1);
  const home = process.env.HOME || process.env.USERPROFILE || '';
  if (home) cands.push(path.join(home, '.cache', 'node-gyp', ver), path.join(home, '.node-gyp', ver));
  return cands.find((d) => fs.existsSync(path.join(d, 'include', 'node', 'node_api.h')) && fs.existsSync(path.join(d, 'include', 'node', 'common.gypi')));
}

function runs(cmd) {
  const r = spawnSync(cmd, ['--version'], { stdio: 'ignore' });
  return !r.error && r.status === 0;
}

/** Why the C++ toolchain node-gyp drives is incomplete, or null when it is all there. */
function missingToolchain() {
  // node-gyp locates Visual Studio itself on Windows; its failure there cannot be told apart from a
  // compiler error, so Windows keeps the quiet fallback.
  if (process.platform === 'win32') return null;
  const cxx = process.env.CXX ? [process.env.CXX.trim().split(/\s+/)[0]] : ['c++', 'g++', 'clang++'];
  if (!cxx.some(runs)) return `no C++ compiler was found (${cxx.join(', ')})`;
  if (!runs('make')) return 'make was not found';
  const py = process.env.npm_config_python || process.env.PYTHON;
  if (!(py ? [py] : ['python3', 'python']).some(runs)) return 'python3 was not found';
  return null;
}

function fail(msg) {
  process.stderr.write(
    `\nuxnet3d: ERROR: building the native CPU backend failed (${msg}).\n` +
      'uxnet3d: a C++ compiler, make and python3 are installed, so this is a real build failure, not a missing toolchain.\n' +
      'uxnet3d: to install without the native backend anyway: UXNET_SKIP_NATIVE=1 npm install (the reference backend is then used).\n\n',
  );
  process.exit(1);
}

const missing = missingToolchain();
if (missing) warn(missing);
try {
  require.resolve('node-addon-api');
} catch {
  warn('the node-addon-api package is missing');
}
const gyp = findNodeGyp();
if (!gyp) warn('node-gyp was not found');
const nodedir = findNodeDir();
if (!nodedir) warn(`no local Node.js ${process.version} headers (include/node) were found and downloading them is disabled`);

const jobs = String(Math.max(1, require('node:os').availableParallelism?.() ?? 1));
const r = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`, '--jobs', jobs], { cwd: root, stdio: 'inherit', env: { ...process.env } });
const failed = process.platform === 'win32' ? warn : fail;
if (r.error) failed(r.error.message);
if (r.status !== 0) failed(`node-gyp exited with status ${r.status}; see the compiler output above`);
process.stderr.write('uxnet3d: native CPU backend built.\n');
