import type { Command } from 'commander';
import { compareRuns, CompareError, parseFoldList, writeComparison } from '../../train/compare.js';
import { UserError } from '../errors.js';

export async function runCompareCli(runs: string[], o: { output: string; folds?: string }, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  let md: string;
  try {
    const folds = o.folds === undefined ? undefined : parseFoldList(o.folds);
    md = await writeComparison(o.output, await compareRuns(runs, { folds }));
  } catch (e) {
    if (e instanceof CompareError) throw new UserError(e.message);
    throw e;
  }
  out.write(md);
  out.write(`wrote ${o.output}/compare.{md,csv,json} and compare-dice.{svg,png}\n`);
}

export function registerCompare(program: Command): void {
  program
    .command('compare')
    .description(
      "the paper's comparison table from `uxnet crossval` runs on the same dataset and folds (and `uxnet evaluate` results on the same cases): Dice and HD95 mean ± sd per class, parameters, MACs, training and inference time, peak memory, and paired Wilcoxon signed-rank p-values against the first run",
    )
    .argument(
      '<runs...>',
      'crossval run folders (each with summary.json and splits.json), or `uxnet evaluate` results (PREFIX.json, the -o PREFIX, or a prediction folder with metrics.json) scoring the same cases; the first is the reference of the tests',
    )
    .requiredOption('-o, --output <dir>', 'folder for compare.md, compare.csv, compare.json and compare-dice.{svg,png}')
    .option('--folds <list>', 'compare only these folds (e.g. 0 or 0,1), which every run must have finished: their held-out cases, training time and memory')
    .action(async (runs: string[], o: { output: string; folds?: string }) => {
      await runCompareCli(runs, o);
    });
}
