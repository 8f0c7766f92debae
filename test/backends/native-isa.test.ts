/**
 * Re-runs the native kernel tests with the lower micro-kernel sets forced (UXNET_ISA=avx2, generic), so
 * the AVX2 and portable paths are checked on an AVX-512 machine too, and with small conv blocks.
 * Skipped when the addon is absent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { nativeAddon, nativeLoadError } from '../../src/backends/native/index.js';
import { skipUnlessAvailable } from '../helpers/backends.js';
import { assertSameOnThreads } from '../helpers/native-threads.js';

const skip = skipUnlessAvailable('native', !!nativeAddon, `native addon not available: ${nativeLoadError}`);
const file = join(dirname(fileURLToPath(import.meta.url)), 'native.test.js');

// UXNET_CONV_POSITIONS=24 shrinks the dense conv's blocks of output rows to a few rows, so that blocks end
// part-way through a volume and the next block's prefetch runs in the small test shapes too.
// UXNET_CONV_FEW_POSITIONS=0 sends the small-output convs, which otherwise take im2col + GEMM, through the
// direct kernels.
const variants: Record<string, string>[] = [{ UXNET_ISA: 'avx2' }, { UXNET_ISA: 'generic' }, { UXNET_CONV_POSITIONS: '24' }, { UXNET_CONV_FEW_POSITIONS: '0' }];
for (const vars of variants) {
  const label = Object.entries(vars)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  test(`native kernels with ${label}`, { skip }, () => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...vars };
    delete env.NODE_TEST_CONTEXT; // run as a top-level test process, not as a child of this runner
    const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', file], { encoding: 'utf8', env });
    const fail = /^# fail (\d+)/m.exec(r.stdout);
    assert.equal(
      r.status,
      0,
      `${label}: ${r.stdout
        .split('\n')
        .filter((l) => /not ok|Error|err /.test(l))
        .slice(0, 8)
        .join('\n')}`,
    );
    assert.equal(fail?.[1], '0');
  });
}

test('native addon reports its ISA and thread count (UXNET_THREADS)', { skip }, () => {
  const r = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import(${JSON.stringify(join(dirname(fileURLToPath(import.meta.url)), '../../src/backends/native/index.js'))}).then((m) => console.log(JSON.stringify(m.nativeInfo())))`,
    ],
    {
      encoding: 'utf8',
      env: { ...process.env, UXNET_THREADS: '3', UXNET_ISA: 'generic' },
    },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout.trim()), { isa: 'generic', threads: 3 });
});

test('UXNET_PROFILE=1 prints a per-kernel table at exit (conv geometry, calls, GFLOP/s)', { skip }, () => {
  const mod = JSON.stringify(join(dirname(fileURLToPath(import.meta.url)), '../../src/backends/native/index.js'));
  const script = `import(${mod}).then((m) => {
    const k = m.makeNativeKernels(m.nativeAddon);
    const up = (shape) => ({ shape, data: m.nativeAddon.upload(new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.5)) });
    const x = up([1, 4, 6, 6, 6]), w = up([8, 4, 3, 3, 3]);
    let y = k.conv3d(x, w, null, { stride: [1, 1, 1], padding: [1, 1, 1], groups: 1 });
    y = k.conv3d(x, w, null, { stride: [1, 1, 1], padding: [1, 1, 1], groups: 1 });
    const g = k.gelu(y);
    m.nativeAddon.readSync(g.data, 8);
  })`;
  const run = (env: NodeJS.ProcessEnv) => spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env });
  const on = run({ ...process.env, UXNET_PROFILE: '1' });
  assert.equal(on.status, 0, on.stderr);
  assert.match(on.stderr, /uxnet native profile \(UXNET_PROFILE\): 3 kernel calls/);
  assert.match(on.stderr, /^\s+[\d.]+\s+[\d.]+%\s+2\s+\d+\s+conv3d 4->8 k3x3x3 s1 p1 @6x6x6$/m);
  assert.match(on.stderr, /^\s+[\d.]+\s+[\d.]+%\s+1\s+-\s+gelu$/m);
  const off = run({ ...process.env, UXNET_PROFILE: '' });
  assert.equal(off.status, 0, off.stderr);
  assert.doesNotMatch(off.stderr, /uxnet native profile/);
});

test('the GEMM dot path and the one-vector conv tile give bit-identical results on 1, 2 and 3 threads, close to the reference', { skip }, () => {
  // A·Bᵀ with 54 rows against 300 (large B) and 150 rows against 45 (large A), K tails of 3 floats; a
  // 16->16 k3 conv. The dot path promises a summation order fixed by the shapes alone, not the threads.
  assertSameOnThreads(
    `
    for (const [M, N, K] of [[54, 300, 1027], [150, 45, 99]]) {
      const [ar, an] = pair([1, M, K]), [br, bn] = pair([1, N, K]), [cr, cn] = pair([N]);
      check(rk.matmul(ar, br, cr, { transA: false, transB: true }), k.matmul(an, bn, cn, { transA: false, transB: true }));
    }
    const [xr, xn] = pair([1, 16, 3, 5, 37]), [wr, wn] = pair([16, 16, 3, 3, 3]);
    const attrs = { stride: [1, 1, 1], padding: [1, 1, 1], groups: 1 };
    check(rk.conv3d(xr, wr, null, attrs), k.conv3d(xn, wn, null, attrs));
`,
    7,
    1e-5,
  );
});
