/**
 * Whole-model parity with the official UXNET + MONAI 0.9.0 (tiny config): state-dict keys and
 * order, every named forward activation, the non-cubic forward, and memory hygiene, on every backend.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { initTestBackends, testBackends } from '../helpers/backends.js';
import { assertCloseRel, assertMatchesFixture, fixture, get } from '../helpers/fixtures.js';
import { memory, noGrad, setBackend, tensor } from '../../src/engine/index.js';
import { UXNet, UXNET_ACTIVATIONS } from '../../src/models/index.js';

await initTestBackends();

export const TINY = {
  in_chans: 1,
  out_chans: 3,
  depths: [2, 2, 2, 2],
  feat_size: [8, 16, 32, 64],
  hidden_size: 128,
  drop_path_rate: 0,
  layer_scale_init_value: 1e-6,
  spatial_dims: 3,
};
const WEIGHTS = 'tiny_weights.safetensors';
const FWD = 'tiny_forward.safetensors';
const NONCUBIC = 'tiny_forward_noncubic.safetensors';

for (const backend of testBackends()) {
  describe(`UXNet tiny vs official PyTorch [${backend}]`, () => {
    let model: UXNet;
    before(() => {
      setBackend(backend);
      model = new UXNet(TINY);
      model.loadStateDict(fixture(WEIGHTS));
      model.eval();
    });

    it('has exactly the official state-dict keys, shapes and order', async () => {
      const ours = model.namedParameters().map(([k, t]) => [k, [...t.shape]]);
      const ref = [...fixture(WEIGHTS)].map(([k, t]) => [k, t.shape]);
      assert.equal(ours.length, 131);
      assert.deepEqual(ours, ref);
      assert.equal(model.numParameters(), 1_547_291);
    });

    it('forward: every named intermediate within 2e-5·max|ref| (and rule 1)', async () => {
      const acts = noGrad(() => model.forwardWithIntermediates(tensor(get(FWD, 'input').data, get(FWD, 'input').shape)));
      const names = [...fixture(FWD).keys()];
      assert.deepEqual([...acts.keys()].sort(), [...names].sort(), 'the same activation names as the fixture');
      for (const n of UXNET_ACTIVATIONS) assert.ok(acts.has(n), n);
      for (const name of names) {
        const ours = await acts.get(name)!.data();
        assertCloseRel(ours, get(FWD, name).data, 2e-5, name);
        if (name !== 'input') assertMatchesFixture(ours, FWD, name);
      }
      for (const t of acts.values()) t.dispose();
    });

    it('forward() equals the logits of forwardWithIntermediates and frees every intermediate', async () => {
      const x = tensor(get(FWD, 'input').data, get(FWD, 'input').shape);
      const before = memory().storages;
      const logits = noGrad(() => model.forward(x));
      assert.equal(memory().storages, before + 1, 'only the logits may stay alive');
      assertMatchesFixture(await logits.data(), FWD, 'logits');
      logits.dispose();
      x.dispose();
    });

    it('non-cubic input [1,1,16,32,48]', async () => {
      const x = tensor(get(NONCUBIC, 'input').data, get(NONCUBIC, 'input').shape);
      const acts = noGrad(() => model.forwardWithIntermediates(x));
      for (const name of ['outs3', 'enc_hidden', 'logits']) {
        assertCloseRel(await acts.get(name)!.data(), get(NONCUBIC, name).data, 2e-5, name);
        assertMatchesFixture(await acts.get(name)!.data(), NONCUBIC, name);
      }
      assert.deepEqual(acts.get('logits')!.shape, [1, 3, 16, 32, 48]);
      for (const t of acts.values()) t.dispose();
    });

    it('rejects invalid inputs before any compute, with clear messages', async () => {
      const before = memory().storages;
      const bad = (shape: number[]) => tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
      const cases: [number[], RegExp][] = [
        [[1, 1, 32, 32, 40], /multiple of 16/],
        [[1, 1, 16, 16, 16], /1×1×1 bottleneck/],
        [[1, 2, 32, 32, 32], /2 channel\(s\) but the model expects inChans = 1/],
        [[1, 32, 32, 32], /5-D/],
      ];
      for (const [shape, re] of cases) {
        const x = bad(shape);
        assert.throws(() => model.forward(x), re);
        assert.throws(() => model.forwardWithIntermediates(x), re);
        x.dispose();
      }
      assert.equal(memory().storages, before);
    });
  });
}
