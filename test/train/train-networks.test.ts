/**
 * Training, the model folder, prediction and fine-tuning with SwinUNETR and UNETR (tiny configurations,
 * synthetic data): the network named in the config reaches the model folder, predict rebuilds it from
 * model.json, --init crosses class counts, and UNETR trains and infers on its own img_size.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSyntheticDataset } from '../helpers/synthetic-dataset.js';
import { resolveTrainConfig, TrainConfigError, type TrainConfig } from '../../src/train/config.js';
import { runTraining, initFromWeights, TrainRunError } from '../../src/train/run.js';
import { loadModelFolder } from '../../src/infer/model-folder.js';
import { predictVolume } from '../../src/infer/predict.js';
import { loadImage } from '../../src/data/load.js';
import { createNetwork, resolveNetwork, SwinUNETR, UNETR } from '../../src/models/index.js';
import { readSafetensorsFile, writeSafetensorsFile } from '../../src/io/safetensors.js';
import '../../src/backends/index.js';

let dir: string;
const quiet = () => {};
const SWIN_ARGS = { feature_size: 12, depths: [1, 1, 1, 1] };
const UNETR_ARGS = { feature_size: 4, hidden_size: 32, mlp_dim: 64, num_heads: 4 };

function config(out: string, over: Partial<TrainConfig>): TrainConfig {
  return resolveTrainConfig(
    {},
    {
      dataset: join(dir, 'data'),
      outDir: out,
      preset: 'auto',
      cacheDir: join(dir, 'cache'),
      steps: 2,
      valEvery: 2,
      saveEvery: 1,
      workers: 1,
      lr: 1e-3,
      ...over,
    },
  );
}

describe('uxnet train with SwinUNETR and UNETR', () => {
  before(async () => {
    process.env.UXNET_QUIET = '1';
    dir = await mkdtemp(join(tmpdir(), 'uxnet-train-nets-'));
    await writeSyntheticDataset(join(dir, 'data'), 4);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('SwinUNETR: trains, writes "network": "swin_unetr" with its arguments, and the folder predicts', async () => {
    const out = join(dir, 'swin');
    const r = await runTraining(config(out, { network: 'swin_unetr', networkArgs: SWIN_ARGS, roiSize: [32, 32, 64] }), { log: quiet });
    const manifest = JSON.parse(await readFile(join(out, 'model', 'model.json'), 'utf8'));
    assert.equal(manifest.network, 'swin_unetr');
    // channels and classes from the data, img_size from the crop
    assert.deepEqual({ ...manifest.networkArgs }, { ...manifest.networkArgs, img_size: [32, 32, 64], in_channels: 1, out_channels: 3, feature_size: 12, depths: [1, 1, 1, 1] });
    assert.deepEqual(manifest.inference.roiSize, [32, 32, 64]);
    const lines = (await readFile(join(out, 'metrics.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(lines.length, 2);
    assert.ok(lines.every((l) => Number.isFinite(l.loss) && Math.abs(l.loss - (l.loss_dice + l.loss_ce)) < 1e-5));
    assert.equal(r.steps, 2);
    const loaded = await loadModelFolder(join(out, 'model'));
    assert.ok(loaded.model instanceof SwinUNETR);
    const image = await loadImage(join(dir, 'data', 'imagesTr', 'case_000.nii.gz'));
    const pred = await predictVolume(loaded, image);
    assert.deepEqual(pred.labels.shape, image.shape);
    assert.ok(
      pred.labels.data.every((v) => v >= 0 && v <= 2),
      'labels are class ids 0..2',
    );
    loaded.model.dispose();
  });

  it('fine-tuning a SwinUNETR across class counts reinitialises only the out block', async () => {
    const m5 = createNetwork(resolveNetwork('swin_unetr', { ...SWIN_ARGS, img_size: [32, 32, 64], in_channels: 1, out_channels: 5 }), { seed: 1 });
    const r = await initFromWeights(m5, join(dir, 'swin', 'model', 'weights.safetensors'));
    assert.deepEqual(r.reinitialised.sort(), ['out.conv.conv.bias', 'out.conv.conv.weight']);
    assert.equal(r.loaded.length, m5.namedParameters().length - 2);
    assert.equal(r.skipped.length, 0);
    // A MONAI checkpoint carries the int64 index buffers too: they are recomputed, not reported as skipped.
    const withBuffers = join(dir, 'swin-with-buffers.safetensors');
    const { tensors } = await readSafetensorsFile(join(dir, 'swin', 'model', 'weights.safetensors'));
    await writeSafetensorsFile(withBuffers, [
      ...tensors,
      ...m5.namedBuffers().map(([k, b]) => [k, { shape: b.shape, data: b.values }] as [string, { shape: readonly number[]; data: Float32Array }]),
    ]);
    const r2 = await initFromWeights(m5, withBuffers);
    assert.deepEqual(r2.skipped, []);
    assert.equal(r2.loaded.length, r.loaded.length);
    m5.dispose();
  });

  it('UNETR: img_size defaults to the crop, and the model folder infers with it as its window', async () => {
    const out = join(dir, 'unetr');
    await runTraining(config(out, { network: 'unetr', networkArgs: UNETR_ARGS, roiSize: [32, 32, 32] }), { log: quiet });
    const loaded = await loadModelFolder(join(out, 'model'));
    assert.ok(loaded.model instanceof UNETR);
    assert.deepEqual((loaded.model as UNETR).fixedInputSize, [32, 32, 32]);
    assert.deepEqual(loaded.manifest.inference.roiSize, [32, 32, 32]);
    const image = await loadImage(join(dir, 'data', 'imagesTr', 'case_001.nii.gz'));
    const pred = await predictVolume(loaded, image, { tta: false });
    assert.deepEqual(pred.labels.shape, image.shape);
    loaded.model.dispose();
  });

  it('refuses a crop the network cannot take, and UX-Net-only flags for another network', async () => {
    await assert.rejects(
      runTraining(config(join(dir, 'bad1'), { network: 'unetr', networkArgs: { ...UNETR_ARGS, img_size: [32, 32, 32] }, roiSize: [32, 32, 48] }), { log: quiet }),
      (e: Error) => e instanceof TrainRunError && /roiSize 32x32x48 differs from the network's img_size 32x32x32/.test(e.message),
    );
    await assert.rejects(
      runTraining(config(join(dir, 'bad-ds'), { network: 'unetr', networkArgs: UNETR_ARGS, roiSize: [32, 32, 32], deepSupervision: 1 }), { log: quiet }),
      (e: Error) => e instanceof TrainRunError && /^deepSupervision: UNETR .*does not expose its decoder levels; only uxnet trains with deep supervision$/.test(e.message),
    );
    assert.throws(
      () => config(join(dir, 'bad2'), { network: 'swin_unetr', networkArgs: SWIN_ARGS, roiSize: [32, 32, 48] }),
      (e: Error) => e instanceof TrainConfigError && /img_size \[32,32,48\]: every dimension must be divisible by 32/.test(e.message),
    );
    assert.throws(
      () => resolveTrainConfig({ network: 'swin_unetr' }, { dataset: 'd', outDir: 'o', network: { featSize: [8, 16, 32, 64] } }),
      (e: Error) => e instanceof TrainConfigError && /UX-Net options/.test(e.message),
    );
    assert.throws(
      () => resolveTrainConfig({}, { dataset: 'd', outDir: 'o', network: 'swin_unetr', networkArgs: { feature_size: 10 } }),
      (e: Error) => e instanceof TrainConfigError && /feature_size must be divisible by 12/.test(e.message),
    );
  });
});
