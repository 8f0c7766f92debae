/**
 * SwinUNETR and UNETR against the unmodified MONAI 0.9.0 classes (test/fixtures/baselines): state-dict
 * keys and order, every public forward tensor (intermediates, gathered biases, region ids and masks,
 * the second SwinUNETR input), one DiceCE + AdamW training step (loss terms, dLoss/dlogits, every
 * parameter gradient, UNETR's AdamW update), each with the fixtures' per-tensor tolerances, on every backend.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initTestBackends, testBackends } from '../helpers/backends.js';
import { FIXTURES, fixture, get, maxAbsDiff } from '../helpers/fixtures.js';
import { BASELINES, checkForward, checkGrad } from '../helpers/baselines.js';
import { memory, noGrad, setBackend, tensor, type Tensor } from '../../src/engine/index.js';
import { networkFromConfig, createNetwork, type SegmentationNetwork } from '../../src/models/index.js';
import { readWeightsFile } from '../../src/io/weights.js';
import type { RawTensorMap } from '../../src/io/safetensors.js';
import { DiceCELoss } from '../../src/train/dice-ce-loss.js';
import { AdamW } from '../../src/train/adamw.js';

await initTestBackends();

const B = BASELINES;

function input(file: string, name: string): Tensor {
  const t = get(B + file, name);
  return tensor(t.data, t.shape);
}

const NETS = [
  { net: 'unetr', config: 'unetr_config.json', weights: 'unetr_weights.pth', keys: 170, params: 398_079 },
  { net: 'swin_unetr', config: 'swin_unetr_config.json', weights: 'swin_unetr_weights.safetensors', keys: 159, params: 4_078_077 },
] as const;

const weightsCache = new Map<string, Promise<RawTensorMap>>();
const weightsOf = (file: string) => {
  let w = weightsCache.get(file);
  if (!w) weightsCache.set(file, (w = file.endsWith('.pth') ? readWeightsFile(join(FIXTURES, B, file)) : Promise.resolve(fixture(B + file))));
  return w;
};

for (const backend of testBackends()) {
  for (const { net, config, weights, keys, params } of NETS) {
    const FWD = `${net}_forward.safetensors`;
    const TRAIN = `${net}_train.safetensors`;
    // SwinUNETR on a CPU Vulkan driver (SwiftShader, as in CI) took over 20 minutes; since the
    // barrier-free softmax/matmul kernels it takes ~4 minutes (250 s on 2 loaded cores), still more
    // than CI's budget; on a real GPU, or with UXNET_TEST_SLOW=1, it runs like every other case.
    const slowSwinWebgpu = net === 'swin_unetr' && backend === 'webgpu' && process.env.UXNET_TEST_SLOW !== '1' && /swiftshader/i.test(process.env.VK_ICD_FILENAMES ?? '');
    describe(`${net} vs MONAI 0.9.0 [${backend}]`, { skip: slowSwinWebgpu ? 'SwinUNETR on SwiftShader takes ~4 min; set UXNET_TEST_SLOW=1 to run it' : false }, () => {
      let model: SegmentationNetwork;
      before(async () => {
        setBackend(backend);
        model = createNetwork(networkFromConfig(JSON.parse(readFileSync(join(FIXTURES, B, config), 'utf8'))));
        await model.loadStateDictAsync(await weightsOf(weights));
        model.eval();
      });
      after(() => model.dispose());

      it("state-dict keys, shapes and order equal PyTorch's (parameters, then buffers per module)", async () => {
        const ref = [...(await weightsOf(weights))].map(([k, t]) => [k, [...t.shape]]);
        const ours = model
          .namedStateShapes()
          .filter(([k]) => !k.endsWith('relative_position_index'))
          .map(([k, s]) => [k, [...s]]);
        assert.deepEqual(ours, ref);
        assert.equal(model.namedStateShapes().length, keys);
        assert.equal(model.numParameters(), params);
      });

      it('forward: every public intermediate within its fixture tolerance (exact ones bit for bit)', async () => {
        const names = [...fixture(B + FWD).keys()];
        const failures: string[] = [];
        const run = async (prefix: string) => {
          const acts = noGrad(() => model.forwardWithIntermediates(input(FWD, `${prefix}input`)));
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
        const x = input(FWD, 'input');
        const before = memory().storages;
        const logits = noGrad(() => model.forward(x));
        assert.equal(memory().storages, before + 1, 'only the logits may stay alive');
        assert.equal(checkForward(await logits.data(), FWD, 'logits'), null);
        logits.dispose();
        x.dispose();
      });

      describe('one training step (batch 2)', () => {
        let logits: Tensor;
        let loss: { loss: Tensor; dice: Tensor; ce: Tensor };
        before(() => {
          model.train();
          const x = input(TRAIN, 'input');
          const y = input(TRAIN, 'label');
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
          const y = input(TRAIN, 'label');
          const r = new DiceCELoss().forward(l, y);
          r.loss.backward();
          assert.equal(checkForward(await l.grad!.data(), TRAIN, 'grad.logits'), null);
          for (const t of [l, l.grad!, y, r.loss, r.dice, r.ce]) t.dispose();
        });

        it('every parameter gradient within its fixture tolerance', async () => {
          loss.loss.backward();
          const failures: string[] = [];
          let n = 0;
          for (const [k, p] of model.namedParameters()) {
            if (!p.grad) {
              failures.push(`${k}: no gradient`);
              continue;
            }
            const f = checkGrad(await p.grad.data(), TRAIN, `grad.${k}`);
            if (f) failures.push(f);
            n++;
          }
          assert.deepEqual(failures, []);
          assert.equal(n, [...fixture(B + TRAIN).keys()].filter((k) => k.startsWith('grad.') && k !== 'grad.logits').length);
        });

        it('AdamW: fed the reference gradients it reproduces the stored update; end to end within 2.5e-4', {
          skip: !fixture(B + TRAIN).has(`updated.${model0Key(net)}`) && "the fixture set omits this network's updated.* tensors",
        }, async () => {
          const sd = await weightsOf(weights);
          const ps = new Map<string, Tensor>();
          for (const [k, t] of sd) {
            const p = tensor(t.data, t.shape, { requiresGrad: true });
            p.grad = tensor(get(B + TRAIN, `grad.${k}`).data, t.shape);
            ps.set(k, p);
          }
          const opt = new AdamW(ps, { lr: 1e-4 });
          opt.step();
          for (const [k, p] of ps) {
            const ref = get(B + TRAIN, `updated.${k}`).data;
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
          for (const [k, p] of model.namedParameters()) maxd = Math.max(maxd, maxAbsDiff(await p.data(), get(B + TRAIN, `updated.${k}`).data));
          assert.ok(maxd <= 2.5e-4, `max |Δp| ${maxd}`);
          opt2.zeroGrad();
          opt2.dispose();
        });

        after(() => {
          for (const t of [logits, loss.loss, loss.dice, loss.ce]) t.dispose();
          model.eval();
        });
      });
    });
  }
}

function model0Key(net: string): string {
  return net === 'unetr' ? 'vit.norm.weight' : 'out.conv.conv.bias';
}
