import { readFile } from 'node:fs/promises';
import { dirname, relative, resolve } from 'node:path';
import { TrainConfigError } from './config.js';

/** The recipe field that names the recipe a file starts from. */
export const EXTENDS = 'extends';

/**
 * Reads a training recipe (a `uxnet train` / `uxnet crossval` config file), following `"extends":
 * "base.json"`: the file starts from that recipe (a path relative to the file itself, as in
 * tsconfig), and each of its own top-level fields replaces the base's whole, objects included, so
 * a variant states just what it changes and nothing is merged by surprise. Bases may extend further;
 * a cycle, an unreadable base or one that is not a JSON object is one TrainConfigError naming the chain.
 * The result has no `extends` field: it is the recipe the run records.
 */
export async function readRecipeFile(path: string): Promise<Record<string, unknown>> {
  const chain: string[] = [];
  const layers: Record<string, unknown>[] = [];
  let next = resolve(path);
  let shown = path;
  for (;;) {
    const via = chain.length ? ` (extended by '${display(chain[chain.length - 1]!)}')` : '';
    if (chain.includes(next)) throw new TrainConfigError(`config file '${display(chain[0]!)}' extends itself: ${[...chain, next].map(display).join(' -> ')}`);
    let text: string;
    try {
      text = await readFile(next, 'utf8');
    } catch (e) {
      throw new TrainConfigError(`cannot read config file '${shown}'${via}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw new TrainConfigError(`config file '${shown}'${via} is not valid JSON: ${(e as Error).message}`);
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new TrainConfigError(`config file '${shown}'${via} must hold a JSON object`);
    const { [EXTENDS]: base, ...own } = doc as Record<string, unknown>;
    chain.push(next);
    layers.push(own);
    if (base === undefined) break;
    if (typeof base !== 'string' || !base) throw new TrainConfigError(`config file '${shown}': "${EXTENDS}" must be the path of another recipe, got ${JSON.stringify(base)}`);
    next = resolve(dirname(next), base);
    shown = display(next);
  }
  // The base first, each extending file's fields over it.
  return Object.assign({}, ...layers.reverse()) as Record<string, unknown>;
}

/** Paths in messages as the user would type them from here. */
function display(p: string): string {
  const r = relative(process.cwd(), p);
  return r && !r.startsWith('..') ? r : p;
}
