import { isAbsolute, resolve } from 'node:path';
import { normalizeUXNetConfig, type UXNetConfigInput } from '../models/config.js';
import { BUILTIN_PRESETS } from '../data/presets.js';
import { validateSchedule, type ScheduleConfig } from './schedule.js';

/**
 * Everything a training run needs, as one JSON object (a file given with --config; any field can be
 * overridden by a flag). Defaults are the official 3D UX-Net recipe where it has one.
 */
export interface TrainConfig {
  dataset: string;
  /** Name of the trained model (default: the dataset folder's name). */
  name?: string;
  /** Built-in preset name (flare, amos, feta, auto) or a preset / plan.json path. */
  preset: string;
  outDir: string;
  /** UXNet constructor options; inChans/outChans default to the dataset's channels and classes. */
  network: UXNetConfigInput;
  /** Training crop and sliding-window ROI; default: the preset's roiSize. */
  roiSize?: [number, number, number];
  /** Random crops per volume per step (official: 2, i.e. batch 2). */
  cropsPerVolume: number;
  steps: number;
  lr: number;
  weightDecay: number;
  schedule: ScheduleConfig;
  valEvery: number;
  saveEvery: number;
  valOverlap: number;
  valMode: 'gaussian' | 'constant';
  seed: number;
  workers: number;
  /** Weights to start from (fine-tuning): matching tensors load, a differently sized out block is reinitialised. */
  init?: string;
  /** JSON file {"train": [ids], "val": [ids]}; default: the dataset's own val split, else a seeded 20% hold-out. */
  split?: string;
  cacheDir?: string;
  backend?: string;
  /**
   * Export target of the trained model folder (default OUTDIR/model). A folder outside the run that
   * already exists is never replaced unless the run is started with `force` (`--force`).
   */
  modelDir?: string;
  /** Weight precision of the exported model folder: F16 halves its size (checkpoints stay F32). */
  modelDtype?: 'F32' | 'F16';
}

export const TRAIN_DEFAULTS: Omit<TrainConfig, 'dataset' | 'outDir'> = {
  preset: 'auto',
  network: {},
  cropsPerVolume: 2,
  steps: 40000,
  lr: 1e-4,
  weightDecay: 0.01,
  schedule: { type: 'constant' },
  valEvery: 500,
  saveEvery: 100,
  valOverlap: 0.25,
  valMode: 'constant',
  seed: 0,
  workers: 2,
};

export class TrainConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainConfigError';
  }
}

const posInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0;

/** Merges defaults < config file < flags and validates every field with a message naming it. */
export function resolveTrainConfig(file: Partial<TrainConfig>, flags: Partial<TrainConfig>): TrainConfig {
  const defined = <T extends object>(o: T) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
  const c = { ...TRAIN_DEFAULTS, ...defined(file), ...defined(flags) } as TrainConfig;
  c.network = { ...(file.network ?? {}), ...(flags.network ?? {}) };
  const bad = (ok: boolean, msg: string) => { if (!ok) throw new TrainConfigError(msg); };
  bad(typeof c.dataset === 'string' && c.dataset.length > 0, 'dataset is required (--dataset DIR)');
  bad(typeof c.outDir === 'string' && c.outDir.length > 0, 'output folder is required (-o DIR)');
  bad(posInt(c.steps), `steps must be a positive integer, got ${c.steps}`);
  bad(posInt(c.cropsPerVolume), `cropsPerVolume must be a positive integer, got ${c.cropsPerVolume}`);
  bad(Number.isFinite(c.lr) && c.lr > 0, `lr must be positive, got ${c.lr}`);
  bad(Number.isFinite(c.weightDecay) && c.weightDecay >= 0, `weightDecay must be >= 0, got ${c.weightDecay}`);
  bad(posInt(c.valEvery), `valEvery must be a positive integer, got ${c.valEvery}`);
  bad(posInt(c.saveEvery), `saveEvery must be a positive integer, got ${c.saveEvery}`);
  bad(c.valOverlap >= 0 && c.valOverlap < 1, `valOverlap must be in [0, 1), got ${c.valOverlap}`);
  bad(c.modelDtype === undefined || c.modelDtype === 'F32' || c.modelDtype === 'F16', `modelDtype must be F32 or F16, got ${c.modelDtype}`);
  bad(c.valMode === 'gaussian' || c.valMode === 'constant', `valMode must be gaussian or constant, got ${c.valMode}`);
  bad(Number.isInteger(c.seed) && c.seed >= 0, `seed must be a non-negative integer, got ${c.seed}`);
  bad(Number.isInteger(c.workers) && c.workers >= 1, `workers must be a positive integer, got ${c.workers}`);
  if (c.roiSize !== undefined) bad(Array.isArray(c.roiSize) && c.roiSize.length === 3 && c.roiSize.every((d) => posInt(d) && d % 16 === 0), `roiSize must be three positive multiples of 16, got ${JSON.stringify(c.roiSize)}`);
  try {
    validateSchedule(c.schedule);
    // Channel/class counts are filled in from the data later; check the rest now.
    normalizeUXNetConfig({ inChans: 1, outChans: 2, ...c.network });
  } catch (e) {
    throw new TrainConfigError((e as Error).message);
  }
  return c;
}

const PATH_FIELDS = ['dataset', 'outDir', 'split', 'init', 'cacheDir', 'modelDir'] as const;

/**
 * The config with every relative path resolved against `base`. A run stores its config.json this way
 * (absolute), and relative paths in a stored config.json are read relative to its run folder, so
 * `uxnet train -o RUN --resume` works from any working directory.
 */
export function resolveConfigPaths<T extends Partial<TrainConfig>>(c: T, base: string): T {
  const out: Partial<TrainConfig> = { ...c };
  for (const k of PATH_FIELDS) {
    const v = out[k];
    if (typeof v === 'string' && v.length > 0 && !isAbsolute(v)) out[k] = resolve(base, v);
  }
  // A preset is a built-in name or a file path.
  if (typeof out.preset === 'string' && !(BUILTIN_PRESETS as readonly string[]).includes(out.preset) && !isAbsolute(out.preset)) out.preset = resolve(base, out.preset);
  return out as T;
}
