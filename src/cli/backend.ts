import '../backends/index.js';
import { getBackendName, listBackends, setBackend } from '../engine/registry.js';
import { UserError } from './errors.js';

/** Backends that register only after an asynchronous initialisation (not listed until then). */
const ASYNC_BACKENDS = ['webgpu'];

function available(): string {
  return [...new Set([...listBackends(), ...ASYNC_BACKENDS])].join(', ');
}

/**
 * Selects `--backend` (or keeps the default: native when its addon loaded) and returns its name.
 * `webgpu` opens the GPU device first (adapter's maximum limits); without an adapter this is a
 * one-line UserError saying why and how to get one (e.g. SwiftShader through VK_ICD_FILENAMES).
 */
export async function selectBackend(name: string | undefined): Promise<string> {
  if (name === 'webgpu' && !listBackends().includes('webgpu')) {
    const { initWebGPU, webgpuUnavailableReason } = await import('../backends/webgpu/index.js');
    if (!(await initWebGPU({ quiet: true }))) throw new UserError(`--backend webgpu: ${webgpuUnavailableReason() ?? 'initialisation failed'}`);
  }
  if (name !== undefined) {
    if (!listBackends().includes(name)) throw new UserError(`unknown backend '${name}' (available here: ${available()})`);
    setBackend(name);
  }
  return getBackendName();
}

/**
 * Releases the GPU device if one was opened (waits for queued work first), so the process can exit
 * on its own. A no-op on the CPU backends; safe to call more than once.
 */
export async function releaseBackend(): Promise<void> {
  if (!listBackends().includes('webgpu')) return;
  const { closeWebGPU } = await import('../backends/webgpu/index.js');
  await closeWebGPU();
}
