/**
 * `uxnet crossval-predict RUN [RUN2 ...] -o OUT [--tta] [--folds 0,1]`: finished crossval folds'
 * held-out cases predicted again (with TTA, or as an ensemble of the same fold of several runs) and
 * scored in `uxnet evaluate`'s format; the work is in src/train/crossval-predict.ts.
 */
import type { Command } from 'commander';
import { crossvalPredict, type CrossvalPredictResult } from '../../train/crossval-predict.js';
import { parseFoldList, CompareError } from '../../train/compare.js';
import { selectBackend } from '../backend.js';
import { UserError } from '../errors.js';
import { createProgress } from '../progress.js';
import { crossvalUserError } from './crossval.js';

export interface CrossvalPredictFlags {
  output: string;
  folds?: string;
  tta?: boolean;
  force?: boolean;
  backend?: string;
  plain?: boolean;
}

export async function runCrossvalPredictCli(runs: string[], f: CrossvalPredictFlags, out: NodeJS.WritableStream = process.stdout): Promise<CrossvalPredictResult> {
  let folds: number[] | undefined;
  try {
    folds = f.folds === undefined ? undefined : parseFoldList(f.folds);
  } catch (e) {
    throw e instanceof CompareError ? new UserError(e.message) : e;
  }
  const backend = await selectBackend(f.backend);
  let bar: ReturnType<typeof createProgress> | null = null;
  let barFold = -1;
  const ac = new AbortController();
  let received: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    received = sig;
    ac.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    out.write(`${runs.length > 1 ? `the average of ${runs.length} runs' fold models` : "the run's fold models"}${f.tta ? ' with mirroring TTA' : ''} on backend '${backend}'\n`);
    const r = await crossvalPredict({
      runs,
      outDir: f.output,
      folds,
      tta: f.tta,
      force: f.force,
      signal: ac.signal,
      log: (s) => {
        bar?.stop();
        bar = null;
        out.write(s + '\n');
      },
      onCase: (fold, id, done, total) => {
        if (fold !== barFold || !bar) {
          bar?.stop();
          bar = createProgress({ label: `fold ${fold}`, total, fields: ['case'], plain: f.plain });
          barFold = fold;
        }
        bar.update(done, { case: id });
      },
    });
    if (!r.metricsPath)
      throw new UserError(
        `${received ?? 'stop'}: stopped before every fold was predicted, so no metrics were written; run the same command with --force to start again`,
        received === 'SIGTERM' ? 143 : 130,
      );
    out.write(
      `wrote ${f.output}/metrics.{json,csv} and ${f.output}/predictions/ (${r.cases} cases); \`uxnet compare ${runs[0]} ${f.output} --folds ${r.folds.join(',')} -o OUT\` sets them beside the run\n`,
    );
    return r;
  } catch (e) {
    throw crossvalUserError(e);
  } finally {
    (bar as ReturnType<typeof createProgress> | null)?.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export function registerCrossvalPredict(program: Command): void {
  program
    .command('crossval-predict')
    .description(
      "predict finished crossval folds' held-out cases again, each with its own fold's model (or the average of the same fold of several runs: a cross-validated ensemble), optionally with mirroring TTA, and score them as `uxnet evaluate` does (OUT/metrics.{json,csv}, OUT/predictions/)",
    )
    .argument('<runs...>', 'crossval run folders on the same dataset and split; with several, fold k of each is averaged')
    .requiredOption('-o, --output <dir>', 'folder for predictions/ and metrics.{json,csv}')
    .option('--folds <list>', 'only these folds (e.g. 0 or 0,1), which every run must have finished (default: those all have)')
    .option('--tta', "mirroring test-time augmentation (the flips each fold's model was trained with)")
    .option('--force', "replace OUT's earlier predictions and metrics")
    .option('--backend <name>', 'compute backend (default: native when built)')
    .action(async (runs: string[], f: CrossvalPredictFlags) => {
      await runCrossvalPredictCli(runs, f);
    });
}
