/**
 * The parity suite every baseline network runs against its reference fixtures (test/fixtures/baselines):
 * state-dict keys/shapes/order, every public forward tensor, forward()'s memory, and one DiceCE + AdamW
 * training step (loss terms, dLoss/dlogits, every parameter gradient, the AdamW update). One copy, so the
 * networks are held to the same checks.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { memory, noGrad, setBackend, tensor, type Tensor } from '../../src/engine/index.js';
import { createNetwork, networkFromConfig, type SegmentationNetwork } from '../../src/models/index.js';
import { flushBatchNormStats } from '../../src/nn/index.js';
import { AdamW } from '../../src/train/adamw.js';
import { DiceCELoss } from '../../src/train/dice-ce-loss.js';
import { BASELINES, baselineInput, baselineWeights, checkForward, checkGrad } from './baselines.js';
import { fixture, get, maxAbsDiff } from './fixtures.js';

export interface BaselineParityCase {
  /** The describe title. */
  title: string;
  /** Why the whole suite is skipped here, or false. */
  skip: string | false;
  backend: string;
  /** Fixture prefix: `${net}_forward.safetensors`, `${net}_train.safetensors`. */
  net: string;
  /** The reference model.json-style config the network is built from. */
  config: unknown;
  /** The reference state dict's file in the baselines folder. */
  weights: string;
  /** State-dict entries and parameter count the network must have. */
  keys: number;
  params: number;
  /** Our state-dict keys the reference file does not hold (MONAI's SwinUNETR does not save relative_position_index). */
  notInReference?: (key: string) => boolean;
  /** Called on the model before the training step (e.g. to switch off dropout the fixtures did not draw). */
  beforeTrainingStep?: (model: SegmentationNetwork) => void;
  /** Parameters the reference forward never uses: they must get no gradient (the fixtures hold none). */
  unusedParams?: readonly string[];
  /** Why the AdamW test is skipped (the fixture set omits the updated.* tensors), or false. */
  skipAdamW: string | false;
  /** More tests of this network, registered after the forward ones and before the training step. */
  extra?: () => void;
}

export function describeBaselineParity(c: BaselineParityCase): void {
  const FWD = `${c.net}_forward.safetensors`;
  const TRAIN = `${c.net}_train.safetensors`;
  describe(c.title, { skip: c.skip }, () => {
    let model: SegmentationNetwork;
    before(async () => {
      setBackend(c.backend);
      model = createNetwork(networkFromConfig(c.config));
      await model.loadStateDictAsync(await baselineWeights(c.weights));
      model.eval();
    });
    after(() => model.dispose());

    it("state-dict keys, shapes and order equal PyTorch's (parameters, then buffers per module)", async () => {
      const ref = [...(await baselineWeights(c.weights))].map(([k, t]) => [k, [...t.shape]]);
      const ours = model
        .namedStateShapes()
        .filter(([k]) => !c.notInReference?.(k))
        .map(([k, s]) => [k, [...s]]);
      assert.deepEqual(ours, ref);
      assert.equal(model.namedStateShapes().length, c.keys);
      assert.equal(model.numParameters(), c.params);
    });

    it('forward: every public intermediate within its fixture tolerance (exact ones bit for bit)', async () => {
      // `second.*`: the same network on a second input (SwinUNETR); `stochastic.*`: a separate test's.
      const names = [...fixture(BASELINES + FWD).keys()].filter((n) => !n.startsWith('stochastic.'));
      const failures: string[] = [];
      const run = async (prefix: string) => {
        const acts = noGrad(() => model.forwardWithIntermediates(baselineInput(FWD, `${prefix}input`)));
        for (const name of names.filter((n) => (prefix ? n.startsWith(prefix) : !n.startsWith('second.')))) {
          const ours = acts.get(name.slice(prefix.length));
          if (!ours) {
            failures.push(`${name}: not produced`);
            continue;
          }
          const f = checkForward(await ours.data(), FWD, name);
          if (f) failures.push(f);
        }
        for (const t of acts.values()) t.dispose();
      };
      await run('');
      if (names.some((n) => n.startsWith('second.'))) await run('second.');
      assert.deepEqual(failures, []);
    });

    it('forward() frees every intermediate and equals the fixture logits', async () => {
      const x = baselineInput(FWD, 'input');
      const before = memory().storages;
      const logits = noGrad(() => model.forward(x));
      assert.equal(memory().storages, before + 1, 'only the logits may stay alive');
      assert.equal(checkForward(await logits.data(), FWD, 'logits'), null);
      logits.dispose();
      x.dispose();
    });

    c.extra?.();

    describe('one training step (batch 2)', () => {
      let logits: Tensor;
      let loss: { loss: Tensor; dice: Tensor; ce: Tensor };
      before(() => {
        model.train();
        c.beforeTrainingStep?.(model);
        const x = baselineInput(TRAIN, 'input');
        const y = baselineInput(TRAIN, 'label');
        logits = model.forward(x);
        loss = new DiceCELoss().forward(logits, y);
        x.dispose();
        y.dispose();
      });

      it('logits, loss, loss_dice, loss_ce', async () => {
        const failures = [
          checkForward(await logits.data(), TRAIN, 'logits'),
          checkForward([(await loss.loss.data())[0]!], TRAIN, 'loss'),
          checkForward([(await loss.dice.data())[0]!], TRAIN, 'loss_dice'),
          checkForward([(await loss.ce.data())[0]!], TRAIN, 'loss_ce'),
        ].filter(Boolean);
        assert.deepEqual(failures, []);
      });

      it('dLoss/dlogits', async () => {
        const l = tensor(await logits.data(), logits.shape, { requiresGrad: true });
        const y = baselineInput(TRAIN, 'label');
        const r = new DiceCELoss().forward(l, y);
        r.loss.backward();
        assert.equal(checkForward(await l.grad!.data(), TRAIN, 'grad.logits'), null);
        for (const t of [l, l.grad!, y, r.loss, r.dice, r.ce]) t.dispose();
      });

      const unused = c.unusedParams ?? [];
      it(`every parameter gradient within its fixture tolerance${c.unusedParams ? '; the unused parameters get none' : ''}`, async () => {
        loss.loss.backward();
        const failures: string[] = [];
        let n = 0;
        for (const [k, p] of model.namedParameters()) {
          if (unused.includes(k)) {
            if (p.grad) failures.push(`${k}: unused in the forward, yet has a gradient`);
            continue;
          }
          if (!p.grad) {
            failures.push(`${k}: no gradient`);
            continue;
          }
          const f = checkGrad(await p.grad.data(), TRAIN, `grad.${k}`);
          if (f) failures.push(f);
          n++;
        }
        assert.deepEqual(failures, []);
        assert.equal(n, [...fixture(BASELINES + TRAIN).keys()].filter((k) => k.startsWith('grad.') && k !== 'grad.logits').length);
      });

      it('AdamW: fed the reference gradients it reproduces the stored update; end to end within 2.5e-4', { skip: c.skipAdamW }, async () => {
        const ps = new Map<string, Tensor>();
        for (const [k, t] of await baselineWeights(c.weights)) {
          if (k.endsWith('relative_position_index')) continue; // a buffer, not a parameter
          const p = tensor(t.data, t.shape, { requiresGrad: true });
          p.grad = tensor(get(BASELINES + TRAIN, `grad.${k}`).data, t.shape);
          ps.set(k, p);
        }
        const opt = new AdamW(ps, { lr: 1e-4 });
        opt.step();
        for (const [k, p] of ps) {
          const ref = get(BASELINES + TRAIN, `updated.${k}`).data;
          const ours = await p.data();
          for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(ours[i]! - ref[i]!) <= 1e-7 + 1e-6 * Math.abs(ref[i]!), `${k}[${i}]: ${ours[i]} vs ${ref[i]}`);
        }
        opt.dispose();
        for (const p of ps.values()) {
          p.grad?.dispose();
          p.dispose();
        }
        // end to end: our gradients (from the previous test) and our AdamW
        const opt2 = new AdamW(model.namedParameters(), { lr: 1e-4 });
        opt2.step();
        let maxd = 0;
        for (const [k, p] of model.namedParameters()) maxd = Math.max(maxd, maxAbsDiff(await p.data(), get(BASELINES + TRAIN, `updated.${k}`).data));
        assert.ok(maxd <= 2.5e-4, `max |Δp| ${maxd}`);
        opt2.zeroGrad();
        opt2.dispose();
      });

      after(async () => {
        for (const t of [logits, loss.loss, loss.dice, loss.ce]) t.dispose();
        await flushBatchNormStats(model);
        model.eval();
      });
    });
  });
}
