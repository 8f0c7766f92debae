import { join } from 'node:path';
import { resolveTrainConfig, type TrainConfig } from '../../src/train/config.js';

/** The tests' tiny UX-Net (228,719 parameters with 3 classes): trains a step in well under a second. */
export const TINY_UXNET = { featSize: [4, 8, 16, 32], hiddenSize: 16, depths: [1, 1, 1, 1] };

/** A recipe file's content (`--config`) training TINY_UXNET on 32³ crops with one worker; `over` sets the rest. */
export function tinyRecipe(over: Partial<TrainConfig> = {}): Partial<TrainConfig> {
  return { preset: 'auto', network: TINY_UXNET, roiSize: [32, 32, 32], workers: 1, ...over };
}

/**
 * The training-library tests' run: a tiny UX-Net for 3 steps on the synthetic dataset in `root/data`
 * (writeSyntheticDataset), preprocessed once into `root/cache`, validating every 2 steps and
 * checkpointing every step, written to `out`. `over` changes any setting.
 */
export function tinyTrainConfig(root: string, out: string, over: Partial<TrainConfig> = {}): TrainConfig {
  return resolveTrainConfig(
    {},
    {
      dataset: join(root, 'data'),
      outDir: out,
      cacheDir: join(root, 'cache'),
      ...tinyRecipe({ steps: 3, valEvery: 2, saveEvery: 1, lr: 1e-3 }),
      ...over,
    },
  );
}
