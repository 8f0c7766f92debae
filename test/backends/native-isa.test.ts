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

const skip = nativeAddon ? false : `native addon not available: ${nativeLoadError}`;
const file = join(dirname(fileURLToPath(import.meta.url)), 'native.test.js');

// UXNET_CONV_POSITIONS=24 shrinks the dense conv's blocks of output rows to a few rows, so that blocks end
// part-way through a volume and the next block's prefetch runs in the small test shapes too.
const variants: Record<string, string>[] = [{ UXNET_ISA: 'avx2' }, { UXNET_ISA: 'generic' }, { UXNET_CONV_POSITIONS: '24' }];
for (const vars of variants) {
  const label = Object.entries(vars).map(([k, v]) => `${k}=${v}`).join(' ');
  test(`native kernels with ${label}`, { skip }, () => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...vars };
    delete env.NODE_TEST_CONTEXT; // run as a top-level test process, not as a child of this runner
    const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', file], { encoding: 'utf8', env });
    const fail = /^# fail (\d+)/m.exec(r.stdout);
    assert.equal(r.status, 0, `${label}: ${r.stdout.split('\n').filter((l) => /not ok|Error|err /.test(l)).slice(0, 8).join('\n')}`);
    assert.equal(fail?.[1], '0');
  });
}

test('native addon reports its ISA and thread count (UXNET_THREADS)', { skip }, () => {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `import(${JSON.stringify(join(dirname(fileURLToPath(import.meta.url)), '../../src/backends/native/index.js'))}).then((m) => console.log(JSON.stringify(m.nativeInfo())))`], {
    encoding: 'utf8',
    env: { ...process.env, UXNET_THREADS: '3', UXNET_ISA: 'generic' },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout.trim()), { isa: 'generic', threads: 3 });
});
