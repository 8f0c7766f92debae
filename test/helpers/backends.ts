import { listBackends } from '../../src/engine/registry.js';
import '../../src/backends/index.js';

/**
 * The backends the parity suite runs on: every registered backend, or the comma-separated list in
 * UXNET_TEST_BACKENDS (e.g. `UXNET_TEST_BACKENDS=native npm test`). One suite, written once.
 */
export function testBackends(): string[] {
  const available = listBackends();
  const wanted = process.env.UXNET_TEST_BACKENDS?.split(',').map((s) => s.trim()).filter(Boolean);
  if (!wanted) return available;
  for (const w of wanted) if (!available.includes(w)) throw new Error(`UXNET_TEST_BACKENDS names '${w}', which is not available (available: ${available.join(', ')})`);
  return wanted;
}
