import { join } from 'node:path';
import { resolveTrainConfig, type TrainConfig } from '../../src/train/config.js';

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
      preset: 'auto',
      cacheDir: join(root, 'cache'),
      network: { featSize: [4, 8, 16, 32], hiddenSize: 16, depths: [1, 1, 1, 1] },
      roiSize: [32, 32, 32],
      steps: 3,
      valEvery: 2,
      saveEvery: 1,
      workers: 1,
      lr: 1e-3,
      ...over,
    },
  );
}
