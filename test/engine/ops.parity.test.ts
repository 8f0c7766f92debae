/**
 * Every single-op fixture produced by PyTorch 1.13 / the official code (tiny_ops.safetensors):
 * forward output and the gradient of every input and weight, on every backend.
 */
import { describe, it, before } from 'node:test';
import { initTestBackends, testBackends } from '../helpers/backends.js';
import { assertMatchesFixture, get } from '../helpers/fixtures.js';
import { setBackend, tensor, type Tensor } from '../../src/engine/index.js';
import * as ops from '../../src/engine/ops/index.js';

await initTestBackends();

const FILE = 'tiny_ops.safetensors';

function input(name: string, requiresGrad = true): Tensor {
  const t = get(FILE, name);
  return tensor(t.data, t.shape, { requiresGrad });
}

interface Case {
  name: string;
  inputs: string[];
  /** Inputs that are data, not differentiated (labels). */
  constants?: string[];
  run: (xs: Tensor[]) => Tensor;
}

const conv = (opts: ops.Conv3dOptions) => (xs: Tensor[]) => ops.conv3d(xs[0]!, xs[1]!, xs[2] ?? null, opts);

const cases: Case[] = [
  { name: 'conv3d_k3p1', inputs: ['input', 'weight'], run: conv({ padding: 1 }) },
  { name: 'conv3d_k1_bias', inputs: ['input', 'weight', 'bias'], run: conv({}) },
  { name: 'conv3d_depthwise_k7p3', inputs: ['input', 'weight', 'bias'], run: conv({ padding: 3, groups: 6 }) },
  { name: 'conv3d_grouped1x1_expand', inputs: ['input', 'weight', 'bias'], run: conv({ groups: 6 }) },
  { name: 'conv3d_grouped1x1_reduce', inputs: ['input', 'weight', 'bias'], run: conv({ groups: 6 }) },
  { name: 'conv3d_k7s2p3', inputs: ['input', 'weight', 'bias'], run: conv({ stride: 2, padding: 3 }) },
  { name: 'conv3d_k2s2', inputs: ['input', 'weight', 'bias'], run: conv({ stride: 2 }) },
  { name: 'conv_transpose3d_k2s2', inputs: ['input', 'weight'], run: (xs) => ops.convTranspose3d(xs[0]!, xs[1]!, { stride: 2 }) },
  { name: 'instance_norm', inputs: ['input'], run: (xs) => ops.instanceNorm(xs[0]!) },
  { name: 'instance_norm_offset', inputs: ['input'], run: (xs) => ops.instanceNorm(xs[0]!) },
  { name: 'instance_norm_small_var', inputs: ['input'], run: (xs) => ops.instanceNorm(xs[0]!) },
  { name: 'layernorm_channels_first', inputs: ['input', 'weight', 'bias'], run: (xs) => ops.layerNorm(xs[0]!, xs[1]!, xs[2]!) },
  { name: 'layernorm_channels_first_small_var', inputs: ['input', 'weight', 'bias'], run: (xs) => ops.layerNorm(xs[0]!, xs[1]!, xs[2]!) },
  { name: 'layernorm_channels_last', inputs: ['input', 'weight', 'bias'], run: (xs) => ops.layerNorm(xs[0]!, xs[1]!, xs[2]!, { channelsLast: true }) },
  { name: 'layernorm_channels_last_small_var', inputs: ['input', 'weight', 'bias'], run: (xs) => ops.layerNorm(xs[0]!, xs[1]!, xs[2]!, { channelsLast: true }) },
  { name: 'gelu', inputs: ['input'], run: (xs) => ops.gelu(xs[0]!) },
  { name: 'leaky_relu', inputs: ['input'], run: (xs) => ops.leakyRelu(xs[0]!, 0.01) },
  { name: 'softmax_dim1', inputs: ['input'], run: (xs) => ops.softmax(xs[0]!) },
  {
    name: 'dice_ce_loss',
    inputs: ['logits'],
    constants: ['label'],
    // DiceCELoss(to_onehot_y=True, softmax=True) = DiceLoss(softmax(logits)) + CE(logits), composed from ops.
    run: (xs) => ops.add(ops.diceLoss(ops.softmax(xs[0]!), xs[1]!), ops.crossEntropy(xs[0]!, xs[1]!)),
  },
];

for (const backend of testBackends()) {
  describe(`op fixtures vs PyTorch [${backend}]`, () => {
    before(() => setBackend(backend));
    for (const c of cases) {
      it(c.name, async () => {
        const xs = c.inputs.map((n) => input(`${c.name}.${n}`));
        const consts = (c.constants ?? []).map((n) => input(`${c.name}.${n}`, false));
        const y = c.run([...xs, ...consts]);
        assertMatchesFixture(await y.data(), FILE, `${c.name}.output`);
        const go = get(FILE, `${c.name}.grad_output`);
        y.backward(tensor(go.data, go.shape));
        for (const [i, n] of c.inputs.entries()) {
          const g = xs[i]!.grad;
          if (!g) throw new Error(`${c.name}: no gradient reached '${n}'`);
          assertMatchesFixture(await g.data(), FILE, `${c.name}.grad_${n}`);
        }
        for (const t of [...xs, ...consts, y]) {
          t.grad?.dispose();
          t.dispose();
        }
      });
    }
  });
}

for (const backend of testBackends()) {
  describe(`DiceCE loss terms vs MONAI [${backend}]`, () => {
    before(() => setBackend(backend));
    it('dice and cross-entropy terms separately', async () => {
      const logits = input('dice_ce_loss.logits', false);
      const label = input('dice_ce_loss.label', false);
      const dice = ops.diceLoss(ops.softmax(logits), label, { smoothNr: 1e-5, smoothDr: 1e-5 });
      const ce = ops.crossEntropy(logits, label);
      assertMatchesFixture(await dice.data(), FILE, 'dice_ce_loss.loss_dice');
      assertMatchesFixture(await ce.data(), FILE, 'dice_ce_loss.loss_ce');
    });
  });
}
