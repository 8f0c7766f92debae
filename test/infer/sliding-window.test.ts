/**
 * End-to-end MONAI 0.9.0 sliding_window_inference with the tiny UX-Net (tiny_sliding_window
 * fixture: roi 32³, sw_batch_size 2, overlap 0.5; gaussian, constant, and the padded case).
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { initTestBackends, testBackends } from '../helpers/backends.js';
import { assertMatchesFixture, fixture, get } from '../helpers/fixtures.js';
import { setBackend } from '../../src/engine/index.js';
import { UXNet } from '../../src/models/index.js';
import { slidingWindowInference, modelPredictor } from '../../src/infer/sliding-window.js';

await initTestBackends();

const TINY = { in_chans: 1, out_chans: 3, depths: [2, 2, 2, 2], feat_size: [8, 16, 32, 64], hidden_size: 128, drop_path_rate: 0, layer_scale_init_value: 1e-6, spatial_dims: 3 };
const SW = 'tiny_sliding_window.safetensors';

// One backend is enough here: the model itself is checked on every backend by the parity suite.
const backend = testBackends()[testBackends().length > 1 && testBackends().includes('native') ? testBackends().indexOf('native') : 0]!;

describe(`sliding_window_inference vs MONAI 0.9.0 [${backend}]`, () => {
  let model: UXNet;
  before(() => {
    setBackend(backend);
    model = new UXNet(TINY);
    model.loadStateDict(fixture('tiny_weights.safetensors'));
    model.eval();
  });

  type Shape5 = [number, number, number, number, number];
  type SwOut = Awaited<ReturnType<typeof slidingWindowInference>>;
  /** The model as a predictor that checks every batch is sw_batch_size 2 and full, and counts calls. */
  const counted = (inner: (b: Float32Array, s: Shape5) => Float32Array | Promise<Float32Array>) => {
    const state = { calls: 0 };
    const predictor = async (b: Float32Array, s: Shape5) => {
      assert.deepEqual(s, [2, 1, 32, 32, 32]); // sw_batch_size 2, every batch full here
      state.calls++;
      return inner(b, s);
    };
    return { state, predictor };
  };

  // sw_gaussian and sw_constant share the input and the windows, so the model runs once per window
  // batch and sw_constant replays the recorded logits (keeps this suite ~3x faster on the reference
  // backend); the replay also checks the windows come in the same order. The recording is a memo that
  // whichever test runs first fills, so each test passes alone and in any order.
  let gaussian: Promise<{ out: SwOut; calls: number; recorded: { batch: Float32Array; logits: Float32Array }[] }> | null = null;
  const runGaussian = () =>
    (gaussian ??= (async () => {
      const run = modelPredictor(model);
      const recorded: { batch: Float32Array; logits: Float32Array }[] = [];
      const { state, predictor } = counted(async (b, s) => {
        const logits = await run(b, s);
        recorded.push({ batch: b.slice(), logits });
        return logits;
      });
      const out = await slidingWindowInference(get(SW, 'sw_gaussian.input'), [32, 32, 32], predictor, { overlap: 0.5, mode: 'gaussian', swBatchSize: 2 });
      return { out, calls: state.calls, recorded };
    })());

  const check = (name: string, out: SwOut, calls: number, expectedCalls: number) => {
    assert.deepEqual(out.shape, get(SW, `${name}.output`).shape);
    assert.equal(calls, expectedCalls);
    assertMatchesFixture(out.data, SW, `${name}.output`);
  };

  it('sw_gaussian: output within the fixture tolerance', async () => {
    const { out, calls } = await runGaussian();
    check('sw_gaussian', out, calls, 4);
  });

  it('sw_constant: output within the fixture tolerance', async () => {
    const { recorded } = await runGaussian();
    let i = 0;
    const { state, predictor } = counted(async (b) => {
      const r = recorded[i++]!;
      assert.deepEqual(b, r.batch, `batch ${i - 1} holds the same windows`);
      return r.logits;
    });
    const out = await slidingWindowInference(get(SW, 'sw_gaussian.input'), [32, 32, 32], predictor, { overlap: 0.5, mode: 'constant', swBatchSize: 2 });
    check('sw_constant', out, state.calls, 4);
  });

  it('sw_pad_gaussian: output within the fixture tolerance', async () => {
    const { state, predictor } = counted(modelPredictor(model));
    const out = await slidingWindowInference(get(SW, 'sw_pad_gaussian.input'), [32, 32, 32], predictor, { overlap: 0.5, mode: 'gaussian', swBatchSize: 2 });
    check('sw_pad_gaussian', out, state.calls, 2);
  });
});
