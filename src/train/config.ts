import type { UXNetConfigInput } from '../models/config.js';
import { isNetworkName, NETWORK_NAMES, withChannels } from '../models/registry.js';
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
  /**
   * The network: "uxnet" | "swin_unetr" | "unetr" with its constructor arguments in `networkArgs`, or
   * (the older form) an object of UX-Net options. Channel and class counts default to the dataset's;
   * SwinUNETR's and UNETR's img_size defaults to roiSize.
   */
  network: UXNetConfigInput | string;
  /** Constructor arguments of a named network (official snake_case or camelCase). */
  networkArgs?: Record<string, unknown>;
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
  /** Where the trained model folder goes (default OUTDIR/model). */
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
  Object.assign(c, mergeNetwork(file, flags));
  try {
    validateSchedule(c.schedule);
    // Channel/class counts (and img_size) are filled in from the data later; check the rest now.
    trainNetworkSpec(c, 1, 2, c.roiSize ?? [96, 96, 96]);
  } catch (e) {
    throw new TrainConfigError((e as Error).message);
  }
  return c;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const asObject = (v: unknown): Record<string, unknown> => (isObject(v) ? v : {});

/**
 * The network fields of config file < flags. Flags may name a network (`network` string) and give
 * arguments (`networkArgs`); an object `network` in the flags holds the UX-Net-only flags
 * (--feat-size, --hidden-size, --depths). A file's networkArgs apply only to the network it names.
 */
function mergeNetwork(file: Partial<TrainConfig>, flags: Partial<TrainConfig>): Pick<TrainConfig, 'network' | 'networkArgs'> {
  const uxFlags = asObject(flags.network);
  const name = typeof flags.network === 'string' ? flags.network : typeof file.network === 'string' ? file.network : undefined;
  if (name !== undefined && !isNetworkName(name)) throw new TrainConfigError(`network must be one of ${NETWORK_NAMES.join(', ')}, got ${JSON.stringify(name)}`);
  if (name === undefined) {
    // The older form: one object of UX-Net options.
    const network = { ...asObject(file.network), ...(file.networkArgs ?? {}), ...uxFlags, ...(flags.networkArgs ?? {}) };
    return { network, networkArgs: undefined };
  }
  if (name !== 'uxnet' && Object.keys(uxFlags).length) throw new TrainConfigError(`--feat-size, --hidden-size and --depths are UX-Net options; give ${name}'s constructor arguments with --network-arg NAME=VALUE (or networkArgs in the config)`);
  const fromFile = file.network === name || file.network === undefined ? { ...asObject(file.network), ...(file.networkArgs ?? {}) } : {};
  return { network: name, networkArgs: { ...fromFile, ...(name === 'uxnet' ? uxFlags : {}), ...(flags.networkArgs ?? {}) } };
}

/**
 * The network a run trains: the config's with the dataset's channel count, class count (unless the
 * config sets them) and, for SwinUNETR and UNETR, img_size = the training crop unless given.
 */
export function trainNetworkSpec(c: Pick<TrainConfig, 'network' | 'networkArgs'>, inChannels: number, outChannels: number | undefined, roi: readonly number[]) {
  let args = c.networkArgs;
  if (c.network === 'swin_unetr' || c.network === 'unetr') {
    const a = args ?? {};
    if (a.img_size === undefined && a.imgSize === undefined) args = { ...a, img_size: [...roi] };
  }
  // nnFormer's crop_size and TransBTS's img_dim (a cube) also default to the training crop.
  if (c.network === 'nnformer') {
    const a = args ?? {};
    if (a.crop_size === undefined && a.cropSize === undefined) args = { ...a, crop_size: [...roi] };
  }
  if (c.network === 'transbts') {
    const a = args ?? {};
    if (a.img_dim === undefined && a.imgDim === undefined && roi.every((d) => d === roi[0])) args = { ...a, img_dim: roi[0] };
  }
  return withChannels(c.network, args, inChannels, outChannels);
}

/** The class count a config sets explicitly, if any. */
export function configuredClasses(c: Pick<TrainConfig, 'network' | 'networkArgs'>): number | undefined {
  const a = (isObject(c.network) ? c.network : c.networkArgs ?? {}) as Record<string, unknown>;
  const v = a.outChans ?? a.out_chans ?? a.outChannels ?? a.out_channels;
  return typeof v === 'number' ? v : undefined;
}
