import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import '../../src/backends/index.js';
import { UXNet } from '../../src/models/uxnet.js';
import { writeSafetensorsFile } from '../../src/io/safetensors.js';
import { MODEL_FORMAT, type ModelManifest } from '../../src/infer/model-manifest.js';

/**
 * A model folder with a tiny UX-Net (untrained, seeded initialisation) so CLI and library tests can
 * run the whole predict path in well under a second per case. `fastPixdim` adds a spacing step and
 * offers `--fast`.
 */
export async function writeTinyModelFolder(dir: string, opts: { fastPixdim?: [number, number, number] } = {}): Promise<ModelManifest> {
  const network = { inChans: 1, outChans: 3, featSize: [4, 8, 16, 32], hiddenSize: 16, depths: [1, 1, 1, 1] };
  const model = new UXNet(network);
  await mkdir(dir, { recursive: true });
  const tensors: [string, { shape: readonly number[]; data: Float32Array }][] = [];
  for (const [k, t] of model.stateDict()) tensors.push([k, { shape: t.shape, data: Float32Array.from(await t.data()) }]);
  model.dispose();
  await writeSafetensorsFile(join(dir, 'weights.safetensors'), tensors);
  const manifest = {
    format: MODEL_FORMAT,
    name: 'tiny',
    network,
    preprocessing: {
      steps: [...(opts.fastPixdim ? [{ op: 'spacing', pixdim: [1, 1, 1] }] : []), { op: 'zScore' }],
      ...(opts.fastPixdim ? { fastPixdim: opts.fastPixdim } : {}),
    },
    inference: { roiSize: [32, 32, 32], overlap: 0.25, mode: 'constant', swBatchSize: 1, mirrorAxes: [0] },
    labels: { 0: 'background', 1: 'bright', 2: 'dark' },
  } as unknown as ModelManifest;
  await writeFile(join(dir, 'model.json'), JSON.stringify(manifest, null, 2));
  return manifest;
}
