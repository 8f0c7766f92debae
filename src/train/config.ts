import { isAbsolute, resolve } from 'node:path';
import { BUILTIN_PRESETS } from '../data/presets.js';
import { parseWithSchema } from '../io/schema.js';
import { createNetwork, isNetworkName, NETWORK_NAMES, withChannels } from '../models/registry.js';
import { TrainConfigFileSchema, TrainConfigSchema, TRAIN_CONFIG_VERSION, type TrainConfig } from './config-schema.js';
import { InputError } from '../engine/errors.js';

export { TrainConfigSchema, TRAIN_CONFIG_VERSION, type TrainConfig };

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

export class TrainConfigError extends InputError {
  constructor(message: string) {
    super(message);
    this.name = 'TrainConfigError';
  }
}

/**
 * Merges defaults < config file < flags and validates the result with the schema; errors name the
 * field and what was expected (a bad field in the file itself names `fileName` too).
 */
export function resolveTrainConfig(file: Partial<TrainConfig>, flags: Partial<TrainConfig>, fileName?: string): TrainConfig {
  const toError = (m: string) => new TrainConfigError(m);
  if (fileName) parseWithSchema(TrainConfigFileSchema, file, fileName, toError);
  const defined = <T extends object>(o: T) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
  const c = { ...TRAIN_DEFAULTS, ...defined(file), ...defined(flags) } as TrainConfig;
  Object.assign(c, mergeNetwork(file, flags));
  const parsed = parseWithSchema(TrainConfigSchema, c, 'training config', toError);
  let spec: ReturnType<typeof trainNetworkSpec>;
  try {
    // Channel/class counts (and img_size) are filled in from the data later; check the rest now.
    spec = trainNetworkSpec(parsed, 1, 2, parsed.roiSize ?? [96, 96, 96]);
  } catch (e) {
    throw new TrainConfigError((e as Error).message);
  }
  // Which crop sizes fit is the network's to say (UX-Net: multiples of 16, SwinUNETR: of 32, ...).
  if (parsed.roiSize) {
    try {
      // A network with one fixed input size (UNETR) is checked against its crop when the run starts.
      const probe = createNetwork(spec, { meta: true });
      if (!probe.fixedInputSize) probe.checkInputShape([1, 1, ...parsed.roiSize]);
    } catch (e) {
      throw new TrainConfigError(`training config: roiSize ${parsed.roiSize.join('x')} does not fit the network: ${(e as Error).message}`);
    }
  }
  return parsed;
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
  if (name !== 'uxnet' && Object.keys(uxFlags).length)
    throw new TrainConfigError(
      `--feat-size, --hidden-size and --depths are UX-Net options; give ${name}'s constructor arguments with --network-arg NAME=VALUE (or networkArgs in the config)`,
    );
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
  const a = (isObject(c.network) ? c.network : (c.networkArgs ?? {})) as Record<string, unknown>;
  const v = a.outChans ?? a.out_chans ?? a.outChannels ?? a.out_channels;
  return typeof v === 'number' ? v : undefined;
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
