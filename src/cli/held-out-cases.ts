/**
 * `--split FILE [--fold K]` of predict and evaluate: restrict a folder of cases to the held-out cases
 * of a split, so that a model (say a nested cross-validation's ensemble) is scored on exactly the cases
 * another run held out, without copying or linking files. Every held-out case must be there: a score
 * over part of them would read like a score over all of them.
 */
import { readHeldOutCases, type HeldOutCases } from '../train/split-file.js';
import { UserError } from './errors.js';

export interface HeldOutFlags {
  split?: string;
  fold?: number;
}

/** The --fold value: a fold index. */
export function parseFold(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n)) throw new UserError(`--fold must be a fold number (0, 1, ...), got '${v}'`);
  return n;
}

const show = (ids: string[]) => (ids.length > 10 ? `${ids.slice(0, 10).join(', ')}, … (${ids.length - 10} more)` : ids.join(', '));

/** A folder of cases a selection must be complete in: the case ids present, what they are, the folder. */
export interface CaseFolder {
  present: Iterable<string>;
  what: string;
  where: string;
}

/**
 * The held-out cases the flags name (null without --split), checked against each folder in turn
 * (the split is read once): a held-out case missing from one is an error naming the folder.
 */
export async function heldOutSelection(flags: HeldOutFlags, folders: CaseFolder[]): Promise<HeldOutCases | null> {
  if (flags.split === undefined) {
    if (flags.fold !== undefined) throw new UserError('--fold picks a fold of a split: give the split with --split FILE (a split file or a run folder)');
    return null;
  }
  const selection = await readHeldOutCases(flags.split, flags.fold);
  for (const { present, what, where } of folders) {
    const have = new Set(present);
    const missing = selection.cases.filter((id) => !have.has(id));
    if (missing.length) {
      throw new UserError(`${missing.length} of the ${selection.cases.length} held-out case(s) of ${selection.description} have no ${what} in '${where}': ${show(missing)}`);
    }
  }
  return selection;
}
