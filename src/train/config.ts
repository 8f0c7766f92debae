import { parseWithSchema } from '../io/schema.js';
import { TrainConfigFileSchema, TrainConfigSchema, TRAIN_CONFIG_VERSION, type TrainConfig } from './config-schema.js';

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

export class TrainConfigError extends Error {
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
  c.network = { ...(file.network ?? {}), ...(flags.network ?? {}) };
  return parseWithSchema(TrainConfigSchema, c, 'training config', toError);
}
