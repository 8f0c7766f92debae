import '../backends/index.js';
import { getBackendName, listBackends, setBackend } from '../engine/registry.js';
import { UserError } from './errors.js';

/** Selects `--backend` (or keeps the default: native when its addon loaded) and returns its name. */
export function selectBackend(name: string | undefined): string {
  if (name !== undefined) {
    if (!listBackends().includes(name)) throw new UserError(`unknown backend '${name}' (available here: ${listBackends().join(', ')})`);
    setBackend(name);
  }
  return getBackendName();
}
