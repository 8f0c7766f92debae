import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { resolveConfigPaths, resolveTrainConfig, TrainConfigError, type TrainConfig } from '../../train/config.js';
import { runTraining, TrainRunError } from '../../train/run.js';
import { selectBackend } from '../backend.js';
import { UserError } from '../errors.js';
import { readConfigFile, readRecipeConfig } from '../config-file.js';
import { SIGNAL_EXIT, stopOnSignals, terminalHandlers } from '../train-terminal.js';
import { preprocessUserError } from './preprocess.js';

export interface TrainFlags {
  config?: string;
  dataset?: string;
  preset?: string;
  output?: string;
  steps?: number;
  lr?: number;
  weightDecay?: number;
  crops?: number;
  volumes?: number;
  deepSupervision?: number;
  roi?: [number, number, number];
  featSize?: number[];
  hiddenSize?: number;
  depths?: number[];
  network?: string;
  networkArg?: Record<string, unknown>;
  schedule?: 'constant' | 'poly' | 'cosine';
  warmup?: number;
  valEvery?: number;
  saveEvery?: number;
  valOverlap?: number;
  valMode?: 'gaussian' | 'constant';
  seed?: number;
  workers?: number;
  init?: string;
  split?: string;
  cache?: string;
  backend?: string;
  resume?: boolean;
  exportModel?: string;
  force?: boolean;
}

const int = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new UserError(`${name} must be an integer, got '${v}'`);
  return n;
};
const num = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UserError(`${name} must be a number, got '${v}'`);
  return n;
};
const ints = (name: string) => (v: string) => {
  const a = v.split(',').map(Number);
  if (!a.length || !a.every(Number.isInteger)) throw new UserError(`${name} must be comma-separated integers, got '${v}'`);
  return a;
};

/** --network-arg NAME=VALUE (repeatable): VALUE is JSON when it parses (numbers, lists, booleans), else a string. */
const networkArg = (v: string, acc: Record<string, unknown> = {}) => {
  const eq = v.indexOf('=');
  if (eq <= 0) throw new UserError(`--network-arg '${v}': expected NAME=VALUE, e.g. feature_size=48 or depths=[2,2,2,2]`);
  const raw = v.slice(eq + 1);
  let value: unknown = raw;
  try {
    value = JSON.parse(raw);
  } catch {
    // a bare word such as instance
  }
  return { ...acc, [v.slice(0, eq)]: value };
};

async function storedRunConfig(runDir: string): Promise<Partial<TrainConfig>> {
  const path = join(runDir, 'config.json');
  if (!existsSync(path)) throw new UserError(`--resume: ${path} does not exist (is ${runDir} a training run folder?)`);
  // Relative paths in a run's config.json are relative to the run folder, not to the working directory.
  return resolveConfigPaths((await readConfigFile(path)) as Partial<TrainConfig>, resolve(runDir));
}

/** Resolves `uxnet train`'s flags (and --config file) into a validated configuration. */
export async function trainConfigFromFlags(f: TrainFlags): Promise<TrainConfig> {
  // `--resume -o RUN` alone continues from the run's own config.json; flags still override its fields.
  const file = f.config ? ((await readRecipeConfig(f.config)) as Partial<TrainConfig>) : f.resume && f.output ? await storedRunConfig(f.output) : {};
  const network: Record<string, unknown> = {};
  if (f.featSize) network.featSize = f.featSize;
  if (f.hiddenSize) network.hiddenSize = f.hiddenSize;
  if (f.depths) network.depths = f.depths;
  if (f.network !== undefined && Object.keys(network).length) {
    if (f.network !== 'uxnet')
      throw new UserError(`--feat-size, --hidden-size and --depths are UX-Net options; give ${f.network}'s constructor arguments with --network-arg NAME=VALUE`);
    f.networkArg = { ...network, ...f.networkArg };
  }
  let cfg: TrainConfig;
  try {
    cfg = resolveTrainConfig(
      file,
      {
        dataset: f.dataset,
        preset: f.preset,
        outDir: f.output,
        steps: f.steps,
        lr: f.lr,
        weightDecay: f.weightDecay,
        cropsPerVolume: f.crops,
        volumesPerStep: f.volumes,
        deepSupervision: f.deepSupervision,
        roiSize: f.roi,
        network: f.network ?? network,
        networkArgs: f.networkArg,
        valEvery: f.valEvery,
        saveEvery: f.saveEvery,
        valOverlap: f.valOverlap,
        valMode: f.valMode,
        seed: f.seed,
        workers: f.workers,
        init: f.init,
        split: f.split,
        cacheDir: f.cache,
        backend: f.backend,
        modelDir: f.exportModel,
        schedule:
          f.schedule || f.warmup !== undefined
            ? { ...(file.schedule ?? { type: 'constant' }), ...(f.schedule ? { type: f.schedule } : {}), ...(f.warmup !== undefined ? { warmupSteps: f.warmup } : {}) }
            : undefined,
      },
      f.config,
    );
  } catch (e) {
    if (e instanceof TrainConfigError) throw new UserError(e.message);
    throw e;
  }
  return cfg;
}

export async function runTrainCli(f: TrainFlags): Promise<void> {
  const cfg = await trainConfigFromFlags(f);
  await selectBackend(cfg.backend);
  // Ctrl-C / kill: finish the step in progress, save the checkpoint and exit 130 / 143 saying so.
  const handlers = terminalHandlers();
  const stop = stopOnSignals({
    beforeExit: () => handlers.stop(),
    idleMessage: (_sig, trained) =>
      trained
        ? `stopped while exporting the model; the checkpoint holds every step: finish with uxnet train -o ${cfg.outDir} --resume`
        : 'stopped before training started; nothing to resume',
  });
  try {
    const r = await runTraining(cfg, { resume: f.resume, force: f.force, handlers: stop.track(handlers), signal: stop.signal });
    if (r.stopped) {
      const resumable = existsSync(join(r.outDir, 'checkpoint_last.safetensors'));
      throw new UserError(
        `${stop.received() || 'stop'}: stopped after step ${r.completed} of ${r.steps}; ${resumable ? `continue with: uxnet train -o ${r.outDir} --resume` : 'nothing to resume'}`,
        SIGNAL_EXIT[stop.received()] ?? 1,
      );
    }
  } catch (e) {
    if (e instanceof TrainRunError) throw new UserError(e.message);
    throw preprocessUserError(e);
  } finally {
    handlers.stop();
    stop.dispose();
  }
}

export function registerTrain(program: Command): void {
  addTrainOptions(
    program
      .command('train')
      .description(
        'train 3D UX-Net or a comparator (SwinUNETR, UNETR, nnFormer, TransBTS) on a dataset folder (DiceCE + AdamW, sliding-window validation, best/last checkpoints, curves)',
      ),
  )
    .option('--resume', 'continue the run in --output from its last checkpoint and its config.json, exactly as if never interrupted (Ctrl-C saves a checkpoint first)')
    .action(async (f: TrainFlags) => {
      await runTrainCli(f);
    });
}

/** `uxnet train`'s flags, shared with `uxnet queue train`. */
export function addTrainOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'JSON training config; every field can be overridden by the flags below')
    .option('--dataset <dir>', 'dataset folder (dataset.json, or imagesTr/labelsTr[/imagesVal/labelsVal])')
    .option('--preset <name>', 'flare, amos, feta, auto (nnU-Net-style planning), or a preset/plan JSON file (default auto)')
    .option('-o, --output <dir>', 'run folder: checkpoints, metrics.jsonl, curves.svg, model/')
    .option('--steps <n>', 'optimiser steps (default 40000)', int('--steps'))
    .option('--lr <f>', 'AdamW learning rate (default 1e-4, the official value)', num('--lr'))
    .option('--weight-decay <f>', 'AdamW decoupled weight decay (default 0.01)', num('--weight-decay'))
    .option('--crops <n>', 'random crops per volume per step (default 2, official)', int('--crops'))
    .option('--volumes <n>', 'volumes per step, each giving --crops crops: the batch is volumes x crops (default 1, official)', int('--volumes'))
    .option(
      '--deep-supervision <levels>',
      "nnU-Net's deep supervision on this many decoder levels below full resolution (training-only heads; uxnet only; default 0, official)",
      int('--deep-supervision'),
    )
    .option('--roi <d,h,w>', "crop and sliding-window size, multiples of 16 (default: the preset's)", ints('--roi'))
    .option('--network <name>', "uxnet (default), swin_unetr or unetr (MONAI 0.9.0, exact), nnformer or transbts (the official repository's copies, exact)")
    .option(
      '--network-arg <name=value>',
      'a constructor argument of the network, official snake_case name, repeatable (e.g. --network-arg feature_size=48); in/out channels come from the data, img_size from --roi',
      networkArg,
    )
    .option('--feat-size <a,b,c,d>', 'stage widths (default 48,96,192,384)', ints('--feat-size'))
    .option('--hidden-size <n>', 'bottleneck width (default 768)', int('--hidden-size'))
    .option('--depths <a,b,c,d>', 'ux_blocks per stage (default 2,2,2,2)', ints('--depths'))
    .option('--schedule <type>', 'learning-rate schedule: constant (official), poly or cosine')
    .option('--warmup <n>', 'linear warm-up steps', int('--warmup'))
    .option('--val-every <n>', 'validate (and save) every n steps (default 500)', int('--val-every'))
    .option('--save-every <n>', 'save the last checkpoint every n steps (default 100)', int('--save-every'))
    .option('--val-overlap <f>', 'validation sliding-window overlap (default 0.25, official)', num('--val-overlap'))
    .option('--val-mode <mode>', 'validation blending: constant (official) or gaussian')
    .option('--seed <n>', 'seed of initialisation and sampling (default 0)', int('--seed'))
    .option('--workers <n>', 'data loader worker threads (default 2)', int('--workers'))
    .option('--init <weights>', 'start from these weights (.safetensors or .pth, or a model folder): fine-tuning; a different class count reinitialises the out block')
    .option('--split <file>', 'JSON {"train": [ids], "val": [ids]} (default: the dataset\'s val split, else a seeded 20% hold-out)')
    .option('--cache <dir>', 'preprocessed-case cache (default: OUTPUT/cache)')
    .option('--backend <name>', 'compute backend (default: native when built)')
    .option('--export-model <dir>', "also the model folder's destination (default: OUTPUT/model); an existing folder needs --force")
    .option('--force', 'replace an existing --export-model folder (only once the new model is complete)');
}
