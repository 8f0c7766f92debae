import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { parseWithSchema } from '../io/schema.js';
import { TrainRunError } from './errors.js';

/** Version of the split file format; files without a version field are version 1. */
export const SPLIT_VERSION = 1;

/** A fixed train/validation partition by case id: {"train": [ids], "val": [ids]}. */
export const SplitFileSchema = z.object({
  version: z.literal(SPLIT_VERSION).optional(),
  train: z.array(z.string().min(1)),
  val: z.array(z.string().min(1)),
});
export type SplitFile = z.output<typeof SplitFileSchema>;

export function parseSplitFile(json: unknown, where: string, makeError?: (message: string) => Error): SplitFile {
  return parseWithSchema(SplitFileSchema, json, where, makeError);
}

/** One fold of a cross-validation: the cases it trains on and the cases it holds out. */
export interface FoldSplit {
  train: string[];
  val: string[];
}

/** A JSON file's content, or a one-line error naming the file and what is wrong with it. */
export async function readJsonFile(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new TrainRunError(`cannot read ${what} '${path}': ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a folder' : (code ?? (e as Error).message)}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TrainRunError(`${what} '${path}' is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * The folds of a cross-validation split file: {"folds": [{"train": [ids], "val": [ids]}, ...]} or
 * {"folds": [[validation ids of fold 0], ...]}, where a fold trains on every other fold's cases.
 * Checks the shape and that no case is held out twice or both trained and held out in one fold;
 * whether the ids are cases of a dataset is the caller's to check.
 */
export function parseCrossvalSplit(raw: unknown, where: string): FoldSplit[] {
  const folds = (raw as { folds?: unknown })?.folds;
  const bad = () => new TrainRunError(`${where}: a split file is {"folds": [{"train": [ids], "val": [ids]}, ...]} or {"folds": [[validation ids of fold 0], ...]}`);
  if (!Array.isArray(folds) || folds.length < 2) throw bad();
  const isIds = (a: unknown): a is string[] => Array.isArray(a) && a.every((s) => typeof s === 'string');
  const listed = folds.map((f) => {
    if (isIds(f)) return { val: [...f], train: null };
    const o = f as { train?: unknown; val?: unknown };
    if (!o || !isIds(o.train) || !isIds(o.val)) throw bad();
    return { train: [...o.train], val: [...o.val] };
  });
  const out: FoldSplit[] = listed.map((f, k) => ({ val: f.val, train: f.train ?? listed.flatMap((g, j) => (j === k ? [] : g.val)) }));
  const seenVal = new Map<string, number>();
  out.forEach((f, k) => {
    for (const id of f.val) {
      if (seenVal.has(id)) throw new TrainRunError(`${where}: case '${id}' is held out in fold ${seenVal.get(id)} and fold ${k}`);
      seenVal.set(id, k);
    }
  });
  // After the check above, which names the real mistake when the list form lists a case twice.
  out.forEach((f, k) => {
    const tr = new Set(f.train);
    const both = f.val.find((id) => tr.has(id));
    if (both) throw new TrainRunError(`${where}: fold ${k} trains and validates on case '${both}'`);
  });
  return out;
}

/** The held-out cases a split names, and how to say which they are. */
export interface HeldOutCases {
  cases: string[];
  /** e.g. "fold 2 of 5 in 'folds.json'", for messages. */
  description: string;
}

/**
 * The held-out (validation) cases of a split, so that a model can be scored on exactly them:
 * fold `fold` of a cross-validation split file or of a crossval run folder (its splits.json), or
 * the "val" cases of a single train/validation split file or of a training run folder (its split.json).
 */
export async function readHeldOutCases(path: string, fold?: number): Promise<HeldOutCases> {
  let file = path;
  if (existsSync(path) && statSync(path).isDirectory()) {
    file = ['splits.json', 'split.json'].map((f) => join(path, f)).find((f) => existsSync(f)) ?? '';
    if (!file) throw new TrainRunError(`'${path}' is a folder without splits.json (a crossval run) or split.json (a training run); give a split file or a run folder`);
  }
  const raw = await readJsonFile(file, 'split file');
  if (raw !== null && typeof raw === 'object' && 'folds' in raw) {
    const folds = parseCrossvalSplit(raw, file);
    if (fold === undefined)
      throw new TrainRunError(`'${file}' is a cross-validation split of ${folds.length} folds: say which fold's held-out cases with --fold (0-${folds.length - 1})`);
    if (!Number.isInteger(fold) || fold < 0 || fold >= folds.length) throw new TrainRunError(`--fold ${fold}: '${file}' has folds 0-${folds.length - 1}`);
    return { cases: folds[fold]!.val, description: `fold ${fold} of ${folds.length} in '${file}'` };
  }
  const split = parseSplitFile(raw, file, (m) => new TrainRunError(m));
  if (fold !== undefined) throw new TrainRunError(`--fold ${fold}: '${file}' is a single train/validation split, not a cross-validation; leave out --fold`);
  return { cases: split.val, description: `the validation cases of '${file}'` };
}
