/**
 * Deep supervision: nnU-Net's level weights, the label downsampling, UX-Net's decoder taps (the network's
 * own output unchanged) and the weighted loss, checked against a by-hand sum whose 1x1x1 heads are applied
 * in plain arithmetic, and its gradient against a finite difference.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { tensor } from '../../src/engine/creation.js';
import { Rng } from '../../src/engine/rng.js';
import { noGrad } from '../../src/engine/scope.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { UXNet } from '../../src/models/uxnet.js';
import { DiceCELoss } from '../../src/train/dice-ce-loss.js';
import { DeepSupervisionHeads, deepSupervisionWeights, downsampleLabel } from '../../src/train/deep-supervision.js';
import '../../src/backends/index.js';

describe('deep supervision', () => {
  it("weights are nnU-Net's 1/2^level, normalised", () => {
    assert.deepEqual(deepSupervisionWeights(0), [1]);
    assert.deepEqual(deepSupervisionWeights(1), [2 / 3, 1 / 3]);
    assert.deepEqual(deepSupervisionWeights(2), [4 / 7, 2 / 7, 1 / 7]);
    assert.throws(() => deepSupervisionWeights(-1), /non-negative integer/);
  });

  it('downsamples a label by taking the centre voxel of each block', () => {
    // Voxel (z, y, x) of a 4x4x4 label holds 16z + 4y + x; two batch items, the second offset by 100.
    const label = new Float32Array(128).map((_, i) => (i < 64 ? i : 100 + (i - 64)));
    const half = downsampleLabel(label, [2, 4, 4, 4], 2);
    assert.deepEqual(half.shape, [2, 2, 2, 2]);
    // Output (z, y, x) takes input (2z+1, 2y+1, 2x+1).
    assert.deepEqual([...half.data], [21, 23, 29, 31, 53, 55, 61, 63, 121, 123, 129, 131, 153, 155, 161, 163]);
    const quarter = downsampleLabel(label, [2, 4, 4, 4], 4);
    assert.deepEqual([...quarter.data], [42, 142]);
    assert.throws(() => downsampleLabel(label, [2, 4, 4, 4], 3), /not divisible by 3/);
  });

  const net = () => new UXNet({ inChans: 1, outChans: 3, featSize: [4, 8, 16, 32], hiddenSize: 16, depths: [1, 1, 1, 1] }, { seed: 5 });
  const input = () => tensor(new Rng(9, 'mulberry32').uniformArray(32 * 32 * 32, -1, 1), [1, 1, 32, 32, 32]);

  it("UX-Net's forwardDecoder gives forward's logits and the decoder's dec1..dec3", async () => {
    const m = net();
    m.eval();
    const x = input();
    const plain = await m.forward(x).data();
    const { logits, decoder } = m.forwardDecoder(x);
    assert.deepEqual(await logits.data(), plain);
    assert.deepEqual(
      decoder.map((t) => t.shape),
      [
        [1, 8, 16, 16, 16],
        [1, 16, 8, 8, 8],
        [1, 32, 4, 4, 4],
      ],
    );
    assert.deepEqual(m.decoderChannels, [8, 16, 32]);
    const acts = m.forwardWithIntermediates(x);
    for (const [i, name] of ['dec1', 'dec2', 'dec3'].entries()) assert.deepEqual(await decoder[i]!.data(), await acts.get(name)!.data(), name);
    m.dispose();
  });

  /** A 1x1x1 conv in plain arithmetic: out[c, v] = bias[c] + Σ_i weight[c, i] · x[i, v] (batch 1). */
  const conv1 = (x: Float32Array, ch: number, w: Float32Array, b: Float32Array, classes: number) => {
    const n = x.length / ch;
    const out = new Float32Array(classes * n);
    for (let c = 0; c < classes; c++)
      for (let v = 0; v < n; v++) {
        let s = b[c]!;
        for (let i = 0; i < ch; i++) s += w[c * ch + i]! * x[i * n + v]!;
        out[c * n + v] = s;
      }
    return out;
  };

  it('the loss is the weighted DiceCE of the output and of each head against the downsampled label', async () => {
    const m = net();
    const heads = new DeepSupervisionHeads([8, 16], 3, { seed: 0 });
    const x = input();
    const lab = new Float32Array(32 * 32 * 32).map((_, i) => (i % 32 < 10 ? 0 : i % 32 < 20 ? 1 : 2));
    const y = tensor(lab, [1, 1, 32, 32, 32]);
    const lossFn = new DiceCELoss();
    const { logits, decoder } = m.forwardDecoder(x);
    const r = heads.loss(lossFn, logits, decoder, y, lab, [1, 32, 32, 32]);
    const one = async (l: Tensor, yy: Tensor) => (await lossFn.forward(l, yy).loss.data())[0]!;
    let want = (4 / 7) * (await one(logits, y));
    for (const [k, ch] of [8, 16].entries()) {
      const f = 2 ** (k + 1);
      const s = 32 / f;
      const [w, b] = heads.heads[k]!.parameters();
      const out = conv1(await decoder[k]!.data(), ch, await w!.data(), await b!.data(), 3);
      const yd = downsampleLabel(lab, [1, 32, 32, 32], f).data;
      want += [2 / 7, 1 / 7][k]! * (await one(tensor(out, [1, 3, s, s, s]), tensor(yd, [1, 1, s, s, s])));
    }
    const got = (await r.loss.data())[0]!;
    assert.ok(Math.abs(got - want) < 1e-5 * Math.abs(want), `loss ${got} vs by hand ${want}`);
    assert.deepEqual(await r.main.loss.data(), await lossFn.forward(logits, y).loss.data());
    m.dispose();
    heads.dispose();
  });

  it("the gradient reaches the heads and matches a finite difference of the loss in a head's bias", async () => {
    const m = net();
    const heads = new DeepSupervisionHeads([8], 3, { seed: 1 });
    const x = input();
    const lab = new Float32Array(32 * 32 * 32).map((_, i) => ((i >> 5) % 32 < 12 ? 0 : i >> 10 < 16 ? 1 : 2));
    const y = tensor(lab, [1, 1, 32, 32, 32]);
    const lossFn = new DiceCELoss();
    const total = () => {
      const { logits, decoder } = m.forwardDecoder(x);
      return heads.loss(lossFn, logits, decoder, y, lab, [1, 32, 32, 32]).loss;
    };
    total().backward();
    const bias = heads.heads[0]!.bias!;
    const g = await bias.grad!.data();
    assert.ok(
      g.some((v) => v !== 0),
      'the head is trained',
    );
    const base = await bias.data();
    const at = async (d: number) => {
      const b = new Float32Array(base);
      b[1]! += d;
      heads.loadStateDict(new Map([['0.bias', { shape: [3], data: b }]]), { strict: false });
      return (await noGrad(() => total()).data())[0]!;
    };
    const h = 1e-2;
    const fd = ((await at(h)) - (await at(-h))) / (2 * h);
    assert.ok(Math.abs(g[1]!) > 0.01 && Math.abs(fd - g[1]!) < 1e-4 + 0.005 * Math.abs(g[1]!), `finite difference ${fd} vs backward ${g[1]}`);
    m.dispose();
    heads.dispose();
  });
});
