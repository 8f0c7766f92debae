import { listBackends } from '../../src/engine/registry.js';
import '../../src/backends/index.js';

/**
 * The backends the parity suite runs on: every registered backend, or the comma-separated list in
 * UXNET_TEST_BACKENDS (e.g. `UXNET_TEST_BACKENDS=native npm test`). One suite, written once.
 */
export function testBackends(): string[] {
  const wanted = wantedBackends();
  // Without this, a file would silently run on the CPU backends only.
  if (!initialised && (!wanted || wanted.includes('webgpu')))
    throw new Error('testBackends(): the test file must `await initTestBackends()` first (webgpu initialises asynchronously)');
  const available = listBackends();
  if (!wanted) return available;
  for (const w of wanted)
    if (!available.includes(w))
      throw new Error(`UXNET_TEST_BACKENDS names '${w}', which is not available (available: ${available.join(', ')})${w === 'webgpu' ? webgpuHint() : ''}`);
  return wanted;
}

function wantedBackends(): string[] | undefined {
  return process.env.UXNET_TEST_BACKENDS?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

let webgpuReason: string | null = null;
let initialised = false;

function webgpuHint(): string {
  return webgpuReason ? `: ${webgpuReason}` : ' (the test file must `await initTestBackends()` first)';
}

/**
 * Opens the backends whose initialisation is asynchronous (webgpu) so that testBackends() includes
 * them; test files call it with a top-level await. Without an adapter the webgpu runs are skipped
 * with one message (or, when UXNET_TEST_BACKENDS names webgpu, testBackends() fails with the reason).
 */
export async function initTestBackends(): Promise<void> {
  initialised = true;
  const wanted = wantedBackends();
  if (wanted && !wanted.includes('webgpu')) return;
  const { initWebGPU, webgpuUnavailableReason } = await import('../../src/backends/webgpu/index.js');
  if (await initWebGPU({ quiet: true })) return;
  webgpuReason = webgpuUnavailableReason();
  if (!wanted) console.log(`# webgpu: tests skipped, ${webgpuReason}`);
}

/**
 * The `skip` option of a backend-specific test file: false when `backend` is there; the reason
 * when it is not and nobody asked for it; and an error when UXNET_TEST_BACKENDS names it, so CI
 * (which declares what must run) fails on a broken addon build or a lost adapter instead of skipping.
 */
export function skipUnlessAvailable(backend: string, available: boolean, reason: string): string | false {
  if (available) return false;
  if (wantedBackends()?.includes(backend)) throw new Error(`UXNET_TEST_BACKENDS names '${backend}', which is not available: ${reason}`);
  return reason;
}
