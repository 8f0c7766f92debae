/**
 * SwinUNETR and UNETR against the unmodified MONAI 0.9.0 classes (test/fixtures/baselines): state-dict
 * keys and order, every public forward tensor (intermediates, gathered biases, region ids and masks,
 * the second SwinUNETR input), one DiceCE + AdamW training step (loss terms, dLoss/dlogits, every
 * parameter gradient, UNETR's AdamW update), each with the fixtures' per-tensor tolerances, on every backend.
 * The checks themselves are test/helpers/baseline-parity.ts, shared with nnFormer and TransBTS.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initTestBackends, testBackends } from '../helpers/backends.js';
import { FIXTURES, fixture } from '../helpers/fixtures.js';
import { BASELINES } from '../helpers/baselines.js';
import { describeBaselineParity } from '../helpers/baseline-parity.js';

await initTestBackends();

const NETS = [
  { net: 'unetr', weights: 'unetr_weights.pth', keys: 170, params: 398_079, firstKey: 'vit.norm.weight' },
  { net: 'swin_unetr', weights: 'swin_unetr_weights.safetensors', keys: 159, params: 4_078_077, firstKey: 'out.conv.conv.bias' },
] as const;

for (const backend of testBackends()) {
  for (const { net, weights, keys, params, firstKey } of NETS) {
    describeBaselineParity({
      title: `${net} vs MONAI 0.9.0 [${backend}]`,
      skip: false,
      backend,
      net,
      config: JSON.parse(readFileSync(join(FIXTURES, BASELINES, `${net}_config.json`), 'utf8')),
      weights,
      keys,
      params,
      // MONAI 0.9.0's SwinUNETR does not save its relative_position_index buffers.
      notInReference: (k) => k.endsWith('relative_position_index'),
      skipAdamW: !fixture(`${BASELINES}${net}_train.safetensors`).has(`updated.${firstKey}`) && "the fixture set omits this network's updated.* tensors",
    });
  }
}
