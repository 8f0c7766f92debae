/** AdamW on the 3-step `adamw` op case and DiceCELoss on the `dice_ce_loss` op case (tiny_ops), on every backend. */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { initTestBackends, testBackends } from '../helpers/backends.js';
import { assertMatchesFixture, get } from '../helpers/fixtures.js';
import { setBackend, tensor } from '../../src/engine/index.js';
import { AdamW } from '../../src/train/adamw.js';
import { DiceCELoss } from '../../src/train/dice-ce-loss.js';

await initTestBackends();

const OPS = 'tiny_ops.safetensors';

function assertAdamClose(ours: ArrayLike<number>, ref: Float32Array, what: string): void {
  assert.equal(ours.length, ref.length);
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(ours[i]! - ref[i]!);
    assert.ok(d <= 1e-7 + 1e-6 * Math.abs(ref[i]!), `${what}[${i}]: ${ours[i]} vs ${ref[i]}`);
  }
}

for (const backend of testBackends()) {
  describe(`AdamW and DiceCELoss vs PyTorch/MONAI [${backend}]`, () => {
    before(() => setBackend(backend));

    it('adamw: 3 steps, including zero and ±1e-9 gradients (param, exp_avg, exp_avg_sq)', async () => {
      const p0 = get(OPS, 'adamw.param0');
      const p = tensor(p0.data, p0.shape, { requiresGrad: true });
      const opt = new AdamW([['p', p]], { lr: 1e-4 });
      for (let s = 1; s <= 3; s++) {
        p.grad?.dispose();
        p.grad = tensor(get(OPS, `adamw.grad${s}`).data, p0.shape);
        opt.step();
        assertAdamClose(await p.data(), get(OPS, `adamw.param${s}`).data, `param${s}`);
        const st = (await opt.stateDictAsync()).state.get('p')!;
        assert.equal(st.step, s);
        assertAdamClose(st.expAvg, get(OPS, `adamw.exp_avg${s}`).data, `exp_avg${s}`);
        assertAdamClose(st.expAvgSq, get(OPS, `adamw.exp_avg_sq${s}`).data, `exp_avg_sq${s}`);
      }
      opt.zeroGrad();
      assert.equal(p.grad, null);
    });

    it('adamw: stateDict/loadStateDict resumes exactly (step count included)', async () => {
      const p0 = get(OPS, 'adamw.param0');
      const straight = tensor(p0.data, p0.shape, { requiresGrad: true });
      const resumed = tensor(p0.data, p0.shape, { requiresGrad: true });
      const a = new AdamW([['w', straight]], { lr: 1e-4 });
      const b = new AdamW([['w', resumed]], { lr: 1e-4 });
      const grad = (s: number) => tensor(get(OPS, `adamw.grad${s}`).data, p0.shape);
      straight.grad = grad(1);
      a.step();
      straight.grad.dispose();
      resumed.grad = grad(1);
      b.step();
      resumed.grad.dispose();
      const saved = await b.stateDictAsync();
      b.dispose();
      const c = new AdamW([['w', resumed]], { lr: 0.5, weightDecay: 0 });
      c.loadStateDict(saved);
      assert.equal(c.lr, 1e-4);
      assert.equal(c.weightDecay, 0.01);
      assert.equal(c.stepCount, 1);
      for (const s of [2, 3]) {
        straight.grad = grad(s);
        a.step();
        straight.grad.dispose();
        resumed.grad = grad(s);
        c.step();
        resumed.grad.dispose();
      }
      assert.deepEqual(await resumed.data(), await straight.data());
      assert.throws(() => new AdamW([['other', resumed]]).loadStateDict(saved), /'w'/);
      const wrong = { ...saved, state: new Map([['w', { ...saved.state.get('w')!, shape: [3] }]]) };
      assert.throws(() => new AdamW([['w', resumed]]).loadStateDict(wrong), /shape/);
    });

    it('adamw: parameters without a gradient are skipped', async () => {
      const p = tensor([1, 2, 3], [3], { requiresGrad: true });
      const q = tensor([1, 2, 3], [3], { requiresGrad: true });
      const opt = new AdamW([p, q]);
      q.grad = tensor([1, -1, 0], [3]);
      opt.step();
      assert.deepEqual([...(await p.data())], [1, 2, 3]);
      assert.notDeepEqual([...(await q.data())], [1, 2, 3]);
      assert.deepEqual([...(await opt.stateDictAsync()).state.keys()], ['1']);
    });

    it('DiceCELoss(to_onehot_y, softmax): loss, both terms and dLoss/dlogits', async () => {
      const l = get(OPS, 'dice_ce_loss.logits');
      const logits = tensor(l.data, l.shape, { requiresGrad: true });
      const label = tensor(get(OPS, 'dice_ce_loss.label').data, get(OPS, 'dice_ce_loss.label').shape);
      const r = new DiceCELoss().forward(logits, label);
      assertMatchesFixture([(await r.loss.data())[0]!], OPS, 'dice_ce_loss.output');
      assertMatchesFixture([(await r.dice.data())[0]!], OPS, 'dice_ce_loss.loss_dice');
      assertMatchesFixture([(await r.ce.data())[0]!], OPS, 'dice_ce_loss.loss_ce');
      r.loss.backward();
      assertMatchesFixture(await logits.grad!.data(), OPS, 'dice_ce_loss.grad_logits');
    });

    it('DiceCELoss lambdas weight the terms; bad labels and options are refused', async () => {
      const l = get(OPS, 'dice_ce_loss.logits');
      const logits = tensor(l.data, l.shape);
      const label = tensor(get(OPS, 'dice_ce_loss.label').data, get(OPS, 'dice_ce_loss.label').shape);
      const r = new DiceCELoss({ lambdaDice: 0.25, lambdaCe: 2 }).forward(logits, label);
      assert.ok(Math.abs((await r.loss.data())[0]! - (0.25 * (await r.dice.data())[0]! + 2 * (await r.ce.data())[0]!)) < 1e-6);
      assert.throws(() => new DiceCELoss().forward(logits, logits), /label \[2, 4, 6, 5, 4\] must be \[N, 1, \.\.\.spatial\]/);
      assert.throws(() => new DiceCELoss({ softmax: false }), /softmax=true/);
      assert.throws(() => new DiceCELoss({ lambdaCe: -1 }), /lambdaCe/);
    });
  });
}
