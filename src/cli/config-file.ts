import { readFile } from 'node:fs/promises';
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
