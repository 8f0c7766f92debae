/**
 * Small model folders of every comparator network, written the way `uxnet train` writes them
 * (model.json + weights.safetensors with the parameters and BatchNorm running statistics) but from a
 * seeded initialisation, so tests can run the whole predict path of each network in seconds.
 * The running statistics are moved away from their initial 0/1, so eval-mode BatchNorm (TransBTS)
 * changes the output: a path that used batch statistics, or skipped the buffers, would disagree.
 */
import '../../src/backends/reference/index.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createNetwork, networkToJSON, resolveNetwork, type NetworkName } from '../../src/models/registry.js';
import { serializeSafetensors } from '../../src/io/safetensors-format.js';
import { Rng } from '../../src/engine/rng.js';
import { ENSEMBLE_FORMAT } from '../../src/infer/ensemble-manifest.js';
import { MODEL_FORMAT, MODEL_VERSION } from '../../src/infer/model-manifest.js';

export interface TinyNetwork {
  network: Exclude<NetworkName, 'uxnet'>;
  /** The official constructor arguments (snake_case), as in a train config. */
  args: Record<string, unknown>;
  roiSize: [number, number, number];
  /** Resampling in the preprocessing chain (mm): coarse, so one or two windows cover a hippocampus MRI. */
  pixdim: [number, number, number];
}

/**
 * The smallest sizes each network allows: SwinUNETR needs 64 voxels along one axis (its 1×1×1
 * bottleneck would make instance norm undefined) and multiples of 32; UNETR, nnFormer and TransBTS
 * take exactly their img_size / crop_size / img_dim (which is then the sliding window).
 */
export const TINY_NETWORKS: Record<TinyNetwork['network'], TinyNetwork> = {
  swin_unetr: {
    network: 'swin_unetr',
    args: { img_size: [32, 64, 32], in_channels: 1, out_channels: 3, depths: [1, 1, 1, 1], num_heads: [1, 1, 1, 1], feature_size: 12 },
    roiSize: [32, 64, 32],
    pixdim: [2, 2, 2],
  },
  unetr: {
    network: 'unetr',
    args: { in_channels: 1, out_channels: 3, img_size: [32, 32, 32], feature_size: 4, hidden_size: 16, mlp_dim: 16, num_heads: 2 },
    roiSize: [32, 32, 32],
    pixdim: [2, 2, 2],
  },
  nnformer: {
    network: 'nnformer',
    args: { crop_size: [16, 32, 32], embedding_dim: 6, input_channels: 1, num_classes: 3, depths: [1, 1, 1, 1], num_heads: [1, 1, 1, 1], window_size: [2, 2, 2, 1] },
    roiSize: [16, 32, 32],
    pixdim: [2, 2, 2],
  },
  transbts: {
    // official_eval_dropout is left out: its default (false) is what predict and the app must use.
    network: 'transbts',
    args: { img_dim: 16, patch_dim: 8, num_channels: 1, num_classes: 3, embedding_dim: 256, num_heads: 2, num_layers: 4, hidden_dim: 32, unet_base_channels: 8 },
    roiSize: [16, 16, 16],
    pixdim: [3.5, 3.5, 3.5],
  },
};

const LABELS = { '0': 'background', '1': 'anterior', '2': 'posterior' };

/** Writes `dir`/model.json and `dir`/weights.safetensors for `net`, initialised from `seed`. */
export function writeTinyModelFolder(dir: string, net: TinyNetwork, seed: number): void {
  const spec = resolveNetwork(net.network, net.args);
  const model = createNetwork(spec, { seed }); // on the current backend (the reference one when none is chosen)
  const entries: [string, { shape: readonly number[]; data: Float32Array }][] = [];
  for (const [k, t] of model.namedParameters()) entries.push([k, { shape: t.shape, data: t.dataSync() }]);
  const rng = new Rng(seed + 1000);
  for (const [k, b] of model.namedStateBuffers()) {
    if (k.endsWith('running_mean')) for (let i = 0; i < b.data.length; i++) b.data[i] = 0.3 * rng.normal();
    else if (k.endsWith('running_var')) for (let i = 0; i < b.data.length; i++) b.data[i] = 0.5 + rng.uniform();
    entries.push([k, b]);
  }
  model.dispose();
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'weights.safetensors'), serializeSafetensors(entries, { format: 'pt' }));
  const manifest = {
    format: MODEL_FORMAT,
    version: MODEL_VERSION,
    name: `tiny-${net.network}`,
    description: `a seeded, untrained ${net.network} for tests`,
    ...networkToJSON(spec),
    preprocessing: { steps: [{ op: 'orientation', axcodes: 'RAS' }, { op: 'spacing', pixdim: net.pixdim }, { op: 'zScore' }] },
    inference: { roiSize: net.roiSize, overlap: 0.5, mode: 'gaussian', swBatchSize: 1, mirrorAxes: [0] },
    labels: LABELS,
  };
  writeFileSync(join(dir, 'model.json'), `${JSON.stringify(manifest, null, 2)}\n`);
}

/** An ensemble folder holding member model folders (copies written under it), as `uxnet ensemble` makes. */
export function writeTinyEnsemble(dir: string, members: { path: string; net: TinyNetwork; seed: number }[]): void {
  for (const m of members) writeTinyModelFolder(join(dir, m.path), m.net, m.seed);
  const manifest = { format: ENSEMBLE_FORMAT, name: 'tiny-ensemble', labels: LABELS, members: members.map((m) => ({ path: m.path })) };
  writeFileSync(join(dir, 'model.json'), `${JSON.stringify(manifest, null, 2)}\n`);
}
