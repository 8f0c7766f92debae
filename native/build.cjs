#!/usr/bin/env node
// Install step for the native backend: builds build/Release/uxnet_native.node with node-gyp, using the
// Node headers already installed next to the node binary (nothing is downloaded). Never fails the
// installation: if the compiler, headers or node-gyp are missing, it prints why and exits 0, and the
// engine falls back to the reference backend at run time.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

function warn(msg) {
  process.stderr.write(`\nuxnet3d: the native CPU backend was not built (${msg}).\n` +
    'uxnet3d: installation continues; the slower reference backend will be used.\n' +
    'uxnet3d: to build it later: install a C++17 compiler, python3 and make, then run `npm rebuild uxnet3d` (or `node native/build.cjs`).\n\n');
  process.exit(0);
}

if (process.env.UXNET_SKIP_NATIVE === '1') {
  process.stderr.write('uxnet3d: UXNET_SKIP_NATIVE=1, not building the native backend.\n');
  process.exit(0);
}

function findNodeGyp() {
  const cands = [];
  if (process.env.npm_config_node_gyp) cands.push(process.env.npm_config_node_gyp);
  try { cands.push(require.resolve('node-gyp/bin/node-gyp.js')); } catch { /* not a local dependency */ }
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

try { require.resolve('node-addon-api'); } catch { warn('the node-addon-api package is missing'); }
const gyp = findNodeGyp();
if (!gyp) warn('node-gyp was not found');
const nodedir = findNodeDir();
if (!nodedir) warn(`no local Node.js ${process.version} headers (include/node) were found and downloading them is disabled`);

const jobs = String(Math.max(1, require('node:os').availableParallelism?.() ?? 1));
const r = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`, '--jobs', jobs], { cwd: root, stdio: 'inherit', env: { ...process.env } });
if (r.error) warn(r.error.message);
if (r.status !== 0) warn(`node-gyp exited with status ${r.status}; see the compiler output above`);
process.stderr.write('uxnet3d: native CPU backend built.\n');
