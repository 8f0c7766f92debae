/**
 * nnFormer and TransBTS as configs: official snake_case and camelCase arguments, the fixtures'
 * `<model>_config.json` (TransBTS's module_patches included), the flat form, channel filling for
 * training, model.json round trip, argument errors that name the argument, and the BatchNorm running
 * statistics a saved TransBTS carries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES } from '../helpers/fixtures.js';
import '../../src/backends/index.js';
import { createNetwork, networkFromConfig, networkToJSON, resolveNetwork, withChannels, NetworkConfigError } from '../../src/models/index.js';
import { TransBTS } from '../../src/models/transbts.js';
import { NnFormer } from '../../src/models/nnformer.js';
import { UXNetInputError } from '../../src/models/uxnet.js';

const fixtureConfig = (net: string) => JSON.parse(readFileSync(join(FIXTURES, 'baselines', `${net}_config.json`), 'utf8')) as Record<string, unknown>;

test("the fixtures' configs: constructor_args (+ TransBTS module_patches) give the fixture networks", () => {
  const bts = networkFromConfig(fixtureConfig('transbts'));
  assert.equal(bts.network, 'transbts');
  assert.equal(bts.args.unetBaseChannels, 8);
  assert.equal(bts.args.embeddingDim, 256);
  assert.equal(bts.args.officialEvalDropout, false);
  const nnf = networkFromConfig(fixtureConfig('nnformer'));
  assert.deepEqual(nnf.args.cropSize, [32, 64, 96]);
  assert.deepEqual(nnf.args.windowSize, [4, 4, 8, 4]);
  assert.equal(nnf.args.dropPathRate, 0.2);
});

test('snake_case, camelCase and the flat form are the same network; model.json round trip', () => {
  const snake = resolveNetwork('transbts', { img_dim: 24, num_classes: 8, embedding_dim: 256, hidden_dim: 64, unet_base_channels: 8 });
  const camel = resolveNetwork('transbts', { imgDim: 24, numClasses: 8, embeddingDim: 256, hiddenDim: 64, unetBaseChannels: 8 });
  const flat = networkFromConfig({ network: 'transbts', img_dim: 24, num_classes: 8, embedding_dim: 256, hidden_dim: 64, unet_base_channels: 8 });
  assert.deepEqual(camel, snake);
  assert.deepEqual(flat, snake);
  const json = networkToJSON(snake);
  assert.equal(json.network, 'transbts');
  assert.equal((json.networkArgs as Record<string, unknown>).unet_base_channels, 8);
  assert.deepEqual(resolveNetwork(json.network, json.networkArgs), snake);
  const nnf = resolveNetwork('nnformer', { crop_size: [32, 64, 64], embedding_dim: 12, num_heads: [1, 2, 4, 8], num_classes: 2 });
  assert.deepEqual(networkFromConfig({ network: 'nnformer', ...networkToJSON(nnf).networkArgs }), nnf);
});

test("train fills in the channel counts under each network's own names", () => {
  assert.equal(withChannels('nnformer', {}, 2, 4).args.inputChannels, 2);
  assert.equal(withChannels('nnformer', {}, 2, 4).args.numClasses, 4);
  assert.equal(withChannels('transbts', {}, 1, 5).args.numClasses, 5);
  assert.equal(withChannels('transbts', { num_classes: 7 }, 1, 5).args.numClasses, 7);
});

test('argument errors name the argument', () => {
  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['transbts', { num_classes: 3, unet_base_channels: 12 }, /unet_base_channels must be a multiple of 8/],
    ['transbts', { num_classes: 3, unet_base_channels: 8 }, /embedding_dim must be 32 × unet_base_channels \(256\)/],
    ['transbts', { num_classes: 3, num_layers: 3 }, /num_layers must be at least 4/],
    ['transbts', { num_classes: 3, img_dim: 20 }, /img_dim \(20\) must be a multiple of patch_dim/],
    ['transbts', {}, /needs the argument 'num_classes'/],
    ['transbts', { num_classes: 3, dataset: 'flare' }, /unknown TransBTS argument 'dataset'/],
    ['nnformer', { crop_size: [32, 64, 80] }, /crop_size .* dimension 2 must be a multiple of patch_size\[2\]·8 = 32/],
    ['nnformer', { num_heads: [5, 12, 24, 48] }, /num_heads\[0\] \(5\) must divide the stage width 192/],
    ['nnformer', { deep_supervision: true }, /deep_supervision must be false/],
  ];
  for (const [net, args, re] of bad)
    assert.throws(
      () => resolveNetwork(net, args),
      (e: Error) => e instanceof NetworkConfigError && re.test(e.message),
      `${net} ${JSON.stringify(args)}`,
    );
});

test('input sizes are checked before any compute', () => {
  const bts = createNetwork(resolveNetwork('transbts', { img_dim: 16, num_classes: 2, embedding_dim: 256, hidden_dim: 8, unet_base_channels: 8 }), { meta: true });
  assert.deepEqual(bts.fixedInputSize, [16, 16, 16]);
  assert.throws(
    () => bts.checkInputShape([1, 1, 16, 16, 32]),
    (e: Error) => e instanceof UXNetInputError && /exactly img_dim³ = 16×16×16/.test(e.message),
  );
  assert.throws(() => bts.checkInputShape([1, 2, 16, 16, 16]), /2 channel\(s\) but the model expects in_channels = 1/);
  const nnf = createNetwork(resolveNetwork('nnformer', { crop_size: [32, 64, 64], embedding_dim: 12, num_heads: [1, 2, 4, 8] }), { meta: true }) as NnFormer;
  assert.throws(() => nnf.checkInputShape([1, 1, 32, 64, 96]), /exactly crop_size = 32×64×64/);
});

test('a TransBTS state carries its BatchNorm running statistics (saved beside the parameters, loaded back)', () => {
  const m = new TransBTS({ img_dim: 16, num_classes: 2, embedding_dim: 256, hidden_dim: 8, unet_base_channels: 8 });
  const state = m.namedStateBuffers();
  assert.deepEqual(state.map(([k]) => k).slice(0, 3), ['bn.running_mean', 'bn.running_var', 'bn.num_batches_tracked']);
  assert.equal(state.length, 33);
  const sd = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  for (const [k, p] of m.namedParameters()) sd.set(k, { shape: p.shape, data: p.dataSync() });
  for (const [k, v] of state) sd.set(k, { shape: v.shape, data: v.data.map((_, i) => (k.endsWith('num_batches_tracked') ? 9 : 0.5 + i)) });
  const m2 = new TransBTS({ img_dim: 16, num_classes: 2, embedding_dim: 256, hidden_dim: 8, unet_base_channels: 8 }, { seed: 1 });
  m2.loadStateDict(sd);
  assert.deepEqual([...m2.bn.runningStats().mean.slice(0, 3)], [0.5, 1.5, 2.5]);
  assert.equal(m2.bn.runningStats().numBatchesTracked, 9);
  m.dispose();
  m2.dispose();
});
