/**
 * nnFormer and TransBTS against the unmodified code vendored in the official 3D UX-Net repository
 * (test/fixtures/baselines): state-dict keys, shapes and order (int64 buffers included), parameter counts
 * (the fixtures' and the official full-size ones), every public forward tensor, TransBTS's official
 * always-on dropout3d reproduced from the recorded mask, and one DiceCE + AdamW training step (loss terms,
 * dLoss/dlogits, every parameter gradient, the parameters that get none, nnFormer's AdamW update), each
 * with the fixtures' per-tensor tolerances, on every backend. The common checks are
 * test/helpers/baseline-parity.ts, shared with SwinUNETR and UNETR.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initTestBackends, testBackends } from '../helpers/backends.js';
import { FIXTURES, get } from '../helpers/fixtures.js';
import { BASELINES as B, baselineInput as input, baselineWeights, checkForward } from '../helpers/baselines.js';
import { describeBaselineParity } from '../helpers/baseline-parity.js';
import { noGrad } from '../../src/engine/index.js';
import { networkFromConfig, createNetwork, countNetworkParameters, resolveNetwork, type SegmentationNetwork } from '../../src/models/index.js';
import type { NnFormer } from '../../src/models/nnformer.js';
import type { TransBTS } from '../../src/models/transbts.js';

await initTestBackends();

const config = (net: string) => JSON.parse(readFileSync(join(FIXTURES, B, `${net}_config.json`), 'utf8')) as Record<string, unknown>;

const NETS = [
  {
    net: 'transbts',
    weights: 'transbts_weights.safetensors',
    keys: 226,
    params: 3_634_944,
    noGrad: ['linear_encoding.weight', 'linear_encoding.bias', 'pre_head_ln.weight', 'pre_head_ln.bias'],
  },
  { net: 'nnformer', weights: 'nnformer_weights.pth', keys: 246, params: 601_153, noGrad: [] as string[] },
] as const;

/** Switches off dropout, dropout3d and DropPath, as the fixtures' training steps do. */
function deterministic(m: SegmentationNetwork): void {
  (m as unknown as NnFormer | TransBTS).stochastic.enabled = false;
}

describe('official full-size parameter counts, counted without allocating', () => {
  it('nnFormer(input_channels=1, num_classes=C) and TransBTS(dataset) as in baselines_param_counts.json', () => {
    assert.equal(countNetworkParameters(resolveNetwork('nnformer', { input_channels: 1, num_classes: 5 })), 149_265_629);
    assert.equal(countNetworkParameters(resolveNetwork('nnformer', { inputChannels: 1, numClasses: 8 })), 149_284_064);
    // The official factory gives 4 classes for 'flare'; with the class count from the config, 5 is possible.
    assert.equal(countNetworkParameters(resolveNetwork('transbts', { num_classes: 4 })), 31_577_268);
    assert.equal(countNetworkParameters(resolveNetwork('transbts', { num_classes: 5 })), 31_577_285);
    assert.equal(countNetworkParameters(resolveNetwork('transbts', { numClasses: 8 })), 31_577_336);
  });
});

for (const backend of testBackends()) {
  for (const { net, weights, keys, params, noGrad: unusedParams } of NETS) {
    const FWD = `${net}_forward.safetensors`;
    describeBaselineParity({
      title: `${net} vs the official 3D UX-Net code [${backend}]`,
      skip: false,
      backend,
      net,
      config: config(net),
      weights,
      keys,
      params,
      beforeTrainingStep: deterministic,
      unusedParams,
      skipAdamW: net !== 'nnformer' && "the fixture set omits TransBTS's updated.* tensors",
      extra: () => {
        if (net !== 'transbts') return;
        it('official_eval_dropout: the always-on F.dropout3d(p=0.2) with the recorded mask reproduces the official stochastic eval forward', async () => {
          const m = createNetwork(
            networkFromConfig({ ...config(net), constructor_args: { ...(config(net).constructor_args as object), official_eval_dropout: true } }),
          ) as TransBTS;
          await m.loadStateDictAsync(await baselineWeights(weights));
          m.eval();
          m.stochastic.nextMasks.push(get(B + FWD, 'stochastic.dropout3d_mask').data);
          const acts = noGrad(() => m.forwardWithIntermediates(input(FWD, 'input')));
          const failures = [
            checkForward(await acts.get('Unet.InitConv')!.data(), FWD, 'Unet.InitConv', 'stochastic.Unet.InitConv'),
            checkForward(await acts.get('logits')!.data(), FWD, 'logits', 'stochastic.logits'),
          ].filter(Boolean);
          assert.deepEqual(failures, []);
          assert.equal(m.stochastic.nextMasks.length, 0, 'the given mask was used');
          for (const t of acts.values()) t.dispose();
          m.dispose();
        });
      },
    });
  }
}
