import { readFile } from 'node:fs/promises';
import { TrainConfigError } from '../train/config.js';
import { readRecipeFile } from '../train/recipe-file.js';
import { UserError } from './errors.js';

/**
 * A JSON config file named on the command line (train/crossval recipes, forward/import-pth network
 * configs), parsed but not yet validated: an unreadable file or bad JSON is one UserError line.
 */
export async function readConfigFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new UserError(`cannot read config file '${path}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError(`config file '${path}' is not valid JSON: ${(e as Error).message}`);
  }
}

/** A training recipe named by --config, its `extends` chain followed; any problem is one UserError line. */
export async function readRecipeConfig(path: string): Promise<Record<string, unknown>> {
  try {
    return await readRecipeFile(path);
  } catch (e) {
    if (e instanceof TrainConfigError) throw new UserError(e.message);
    throw e;
  }
}
