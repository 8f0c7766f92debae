import type { Command } from 'commander';
import { resolveTrainConfig, TrainConfigError, type TrainConfig } from '../../train/config.js';
import { TrainRunError } from '../../train/run.js';
import { runCrossval, type CrossvalResult } from '../../train/crossval.js';
import { ModelFolderError } from '../../infer/model-folder.js';
import { NiftiError } from '../../io/nifti/index.js';
import { VolumeError } from '../../data/load.js';
import { selectBackend } from '../backend.js';
import { UserError } from '../errors.js';
import { readRecipeConfig } from '../config-file.js';
import { SIGNAL_EXIT, stopOnSignals, terminalHandlers } from '../train-terminal.js';

export interface CrossvalFlags {
  dataset?: string;
  config?: string;
  output?: string;
  folds?: number;
  fold?: number;
  split?: string;
  steps?: number;
  seed?: number;
  workers?: number;
  tta?: boolean;
  remakeWeights?: boolean;
  init?: string;
  backend?: string;
  featSize?: number[];
  hiddenSize?: number;
  depths?: number[];
}

const ints = (name: string) => (v: string) => {
  const a = v.split(',').map(Number);
  if (!a.length || !a.every(Number.isInteger)) throw new UserError(`${name} must be comma-separated integers, got '${v}'`);
  return a;
};
const int = (name: string, min: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UserError(`${name} must be an integer >= ${min}, got '${v}'`);
  return n;
};

/** The recipe `uxnet crossval` and `uxnet queue crossval` run: the config file with the flags over it. */
export async function crossvalConfigFromFlags(f: CrossvalFlags): Promise<TrainConfig> {
  const file = f.config ? ((await readRecipeConfig(f.config)) as Partial<TrainConfig>) : {};
  try {
    // The recipe's own split and model folder belong to single runs; crossval sets them per fold.
    const network: Record<string, unknown> = {};
    if (f.featSize) network.featSize = f.featSize;
    if (f.hiddenSize) network.hiddenSize = f.hiddenSize;
    if (f.depths) network.depths = f.depths;
    return resolveTrainConfig(
      { ...file, split: undefined, modelDir: undefined },
      { dataset: f.dataset, outDir: f.output, steps: f.steps, seed: f.seed, workers: f.workers, backend: f.backend, init: f.init, network },
    );
  } catch (e) {
    if (e instanceof TrainConfigError) throw new UserError(e.message);
    throw e;
  }
}

/** The errors of a crossval's data, split and models that are the user's to fix: one line each. */
export function crossvalUserError(e: unknown): unknown {
  if (e instanceof NiftiError || e instanceof VolumeError || e instanceof TrainRunError || e instanceof ModelFolderError) return new UserError(e.message);
  return e;
}

export async function runCrossvalCli(f: CrossvalFlags, log?: (s: string) => void): Promise<CrossvalResult> {
  const cfg = await crossvalConfigFromFlags(f);
  await selectBackend(cfg.backend);
  // Ctrl-C / kill while a fold trains: finish the step, save its checkpoint, exit 130 / 143; at any
  // other time nothing is lost by quitting at once. Either way the same command continues.
  const again = 'run the same uxnet crossval command again to continue';
  const handlers = terminalHandlers();
  const stop = stopOnSignals({
    beforeExit: () => handlers.stop(),
    idleMessage: () => `stopped; finished folds and saved checkpoints are kept: ${again}`,
  });
  try {
    const r = await runCrossval({
      config: cfg,
      folds: f.folds,
      fold: f.fold,
      splitFile: f.split,
      tta: f.tta,
      remakeWeights: f.remakeWeights,
      log,
      handlers: stop.track(log ? { ...handlers, onLog: log } : handlers),
      signal: stop.signal,
    });
    if (r.stopped)
      throw new UserError(
        `${stop.received() || 'stop'}: stopped in fold ${r.stopped.fold} at step ${r.stopped.step} of ${r.stopped.steps}; ${again}`,
        SIGNAL_EXIT[stop.received()] ?? 1,
      );
    return r;
  } catch (e) {
    throw crossvalUserError(e);
  } finally {
    handlers.stop();
    stop.dispose();
  }
}

/** The options of `uxnet crossval`, shared with `uxnet queue crossval`. */
export function addCrossvalOptions(c: Command): Command {
  return c
    .option('--dataset <dir>', "dataset folder (overrides the recipe's)")
    .option('--config <file>', 'training recipe (the JSON of `uxnet train --config`); its split and modelDir are replaced per fold')
    .option('-o, --output <dir>', "crossval run folder (overrides the recipe's outDir)")
    .option('--folds <k>', 'number of folds of a new seeded split (default 5)', int('--folds', 2))
    .option('--fold <k>', 'run only fold k (0-based), e.g. one fold per machine; the summary covers the finished folds', int('--fold', 0))
    .option('--split <file>', 'use these folds: {"folds": [{"train": [ids], "val": [ids]}, ...]} or {"folds": [[held-out ids], ...]}')
    .option('--steps <n>', 'optimiser steps per fold (overrides the recipe)', int('--steps', 1))
    .option('--seed <n>', 'seed of the split, initialisation and sampling (overrides the recipe)', int('--seed', 0))
    .option('--workers <n>', 'data loader worker threads', int('--workers', 1))
    .option('--feat-size <a,b,c,d>', 'UX-Net stage widths (overrides the recipe)', ints('--feat-size'))
    .option('--hidden-size <n>', 'UX-Net bottleneck width (overrides the recipe)', int('--hidden-size', 1))
    .option('--depths <a,b,c,d>', 'ux_blocks per stage (overrides the recipe)', ints('--depths'))
    .option(
      '--init <weights>',
      'start each fold from these weights (fine-tuning): a .safetensors/.pth file or a model folder; {fold} is replaced by the fold number, e.g. RUN/fold_{fold}/model',
    )
    .option('--tta', 'mirroring test-time augmentation when predicting the held-out cases')
    .option(
      '--remake-weights',
      'train again the finished folds whose model has no weights (a run kept without them, e.g. in git), to re-make them and the ensemble; their recorded results are kept',
    )
    .option('--backend <name>', 'compute backend (default: native when built)');
}

export function registerCrossval(program: Command): void {
  addCrossvalOptions(
    program
      .command('crossval')
      .description(
        "k-fold cross-validation: trains every fold as its own run (RUN/fold_k), predicts and scores its held-out cases, writes RUN/summary.{json,csv,md}, box plots and the fold ensemble RUN/ensemble; re-run the same command to continue after an interruption (Ctrl-C saves the training fold's checkpoint first)",
      ),
  ).action(async (f: CrossvalFlags) => {
    await runCrossvalCli(f);
  });
}
