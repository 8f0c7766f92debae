import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseWithSchema } from '../io/schema.js';
import { PresetSchema, type Preset } from './preset-schema.js';
import { InputError } from '../engine/errors.js';

export type { Preset };
export type { RandomStepSpec } from './step-schema.js';

/** presets/ at the package root (this file is dist/src/data/presets.js once built). */
export const PRESET_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'presets');

export const BUILTIN_PRESETS = ['flare', 'amos', 'feta', 'auto'] as const;

/** Validates a preset (or a plan.json used as one); errors name `where`, the field and what was expected. */
export function parsePreset(json: unknown, where: string): Preset {
  return parseWithSchema(PresetSchema, json, where);
}

/** A built-in preset by name, or a preset JSON file by path. */
export function loadPreset(nameOrPath: string): Preset {
  const builtin = (BUILTIN_PRESETS as readonly string[]).includes(nameOrPath);
  const path = builtin ? join(PRESET_DIR, `${nameOrPath}.json`) : nameOrPath;
  if (!existsSync(path)) {
    throw new InputError(`unknown preset '${nameOrPath}': use one of ${BUILTIN_PRESETS.join(', ')} or the path of a preset JSON file`);
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new InputError(`preset file '${path}' is not valid JSON: ${(e as Error).message}`);
  }
  return parsePreset(json, path);
}
