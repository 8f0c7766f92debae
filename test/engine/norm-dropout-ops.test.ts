/**
 * The ops nnFormer and TransBTS add: groupNorm, batchNormTrain / batchNormEval (and the BatchNorm3d layer's
 * running statistics), dropout / dropoutChannels / dropPath with given masks, the transposed conv with
 * bias and an anisotropic kernel/stride. Values against direct double-precision formulas written out
 * here, gradients against central differences, on every backend.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { initTestBackends, testBackends } from '../helpers/backends.js';
import { noGrad, setBackend, tensor, type Tensor } from '../../src/engine/index.js';
import * as ops from '../../src/engine/ops/index.js';
import { BatchNorm3d, ConvTranspose3d, GroupNorm } from '../../src/nn/index.js';
import { Rng } from '../../src/engine/rng.js';

await initTestBackends();

function randArray(n: number, r: Rng, lo = -1, hi = 1): Float32Array {
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r.random());
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) assert.ok(Math.abs(actual[i]! - expected[i]!) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
}

/** Normalises the values of `idx` (biased variance, eps inside the root) in double precision. */
function normGroup(x: Float32Array, idx: number[], eps: number, out: Float64Array): void {
  let m = 0;
  for (const i of idx) m += x[i]!;
  m /= idx.length;
  let v = 0;
  for (const i of idx) v += (x[i]! - m) ** 2;
  v /= idx.length;
  for (const i of idx) out[i] = (x[i]! - m) / Math.sqrt(v + eps);
}

/** x [N, C, P] flat: GroupNorm with G groups, affine. */
function groupNormRef(x: Float32Array, n: number, c: number, p: number, g: number, w: Float32Array, b: Float32Array, eps = 1e-5): Float64Array {
  const out = new Float64Array(x.length);
  const cg = c / g;
  for (let s = 0; s < n; s++) {
    for (let k = 0; k < g; k++) {
      const idx: number[] = [];
      for (let ch = k * cg; ch < (k + 1) * cg; ch++) for (let q = 0; q < p; q++) idx.push((s * c + ch) * p + q);
      normGroup(x, idx, eps, out);
    }
  }
  for (let s = 0; s < n; s++)
    for (let ch = 0; ch < c; ch++)
      for (let q = 0; q < p; q++) {
        const i = (s * c + ch) * p + q;
        out[i] = out[i]! * w[ch]! + b[ch]!;
      }
  return out;
}

/** Batch statistics per channel over N and positions: output, mean, unbiased variance. */
function batchNormRef(x: Float32Array, n: number, c: number, p: number, w: Float32Array, b: Float32Array, eps = 1e-5) {
  const out = new Float64Array(x.length);
  const mean = new Float64Array(c);
  const varU = new Float64Array(c);
  for (let ch = 0; ch < c; ch++) {
    const idx: number[] = [];
    for (let s = 0; s < n; s++) for (let q = 0; q < p; q++) idx.push((s * c + ch) * p + q);
    normGroup(x, idx, eps, out);
    let m = 0;
    for (const i of idx) m += x[i]!;
    m /= idx.length;
    let v = 0;
    for (const i of idx) v += (x[i]! - m) ** 2;
    mean[ch] = m;
    varU[ch] = v / (idx.length - 1);
    for (const i of idx) out[i] = out[i]! * w[ch]! + b[ch]!;
  }
  return { out, mean, varU };
}

interface GradCase {
  name: string;
  shapes: number[][];
  run: (xs: Tensor[]) => Tensor;
}

const EVAL_MEAN = Float32Array.from([0.3, -0.2, 0.1]);
const EVAL_VAR = Float32Array.from([0.5, 1.5, 0.9]);
const gradCases: GradCase[] = [
  { name: 'groupNorm (2 groups of 2 channels) with affine', shapes: [[2, 4, 2, 3, 2], [4], [4]], run: (x) => ops.groupNorm(x[0]!, 2, x[1]!, x[2]!) },
  { name: 'groupNorm (one channel per group)', shapes: [[1, 3, 3, 2, 2], [3], [3]], run: (x) => ops.groupNorm(x[0]!, 3, x[1]!, x[2]!) },
  { name: 'batchNormTrain (batch 2)', shapes: [[2, 3, 2, 2, 3], [3], [3]], run: (x) => ops.batchNormTrain(x[0]!, x[1]!, x[2]!).y },
  { name: 'batchNormEval', shapes: [[2, 3, 2, 2, 1], [3], [3]], run: (x) => ops.batchNormEval(x[0]!, EVAL_MEAN, EVAL_VAR, x[1]!, x[2]!) },
  { name: 'dropoutChannels with a given mask', shapes: [[2, 3, 2, 1, 2]], run: (x) => ops.dropoutChannels(x[0]!, Float32Array.from([1, 0, 1, 1, 1, 0]), 0.2) },
  { name: 'dropPath with a given mask', shapes: [[2, 5, 3]], run: (x) => ops.dropPath(x[0]!, Float32Array.from([0, 1]), 0.2) },
  {
    name: 'convTranspose3d anisotropic k (2,4,4) s (2,4,4)',
    shapes: [
      [1, 3, 2, 2, 1],
      [3, 2, 2, 4, 4],
    ],
    run: (x) => ops.convTranspose3d(x[0]!, x[1]!, { stride: [2, 4, 4] }),
  },
];

for (const backend of testBackends()) {
  describe(`nnFormer/TransBTS ops: values [${backend}]`, () => {
    before(() => setBackend(backend));

    it('groupNorm equals the per-group formula with the per-channel affine', async () => {
      const r = new Rng(3, 'mulberry32');
      const x = randArray(2 * 8 * 12, r, -2, 3);
      const w = randArray(8, r, 0.5, 1.5);
      const b = randArray(8, r);
      const y = noGrad(() => ops.groupNorm(tensor(x, [2, 8, 3, 2, 2]), 4, tensor(w, [8]), tensor(b, [8])));
      assertClose(await y.data(), groupNormRef(x, 2, 8, 12, 4, w, b), 2e-5, 'groupNorm');
    });

    it('batchNormTrain: output, batch mean and unbiased variance over N and positions', async () => {
      const r = new Rng(5, 'mulberry32');
      const x = randArray(2 * 3 * 8, r, -1, 4);
      const w = randArray(3, r, 0.5, 1.5);
      const b = randArray(3, r);
      const res = noGrad(() => ops.batchNormTrain(tensor(x, [2, 3, 2, 2, 2]), tensor(w, [3]), tensor(b, [3])));
      const ref = batchNormRef(x, 2, 3, 8, w, b);
      assertClose(await res.y.data(), ref.out, 2e-5, 'y');
      assertClose(await res.mean.data(), ref.mean, 2e-6, 'mean');
      assertClose(await res.varUnbiased.data(), ref.varU, 2e-5, 'var');
    });

    it('batchNormEval: (x − running_mean)/√(running_var + eps)·γ + β, hand-computed', async () => {
      // Channel 0 (mean 0.5, √(var + eps) = 2, γ 2, β 1): (1.5 − 0.5)/2·2 + 1 = 2 and (−1 − 0.5)/2·2 + 1 = −0.5.
      // Channel 1 (mean 1, √(var + eps) = 0.5, γ −1, β 0.5): (3 − 1)/0.5·(−1) + 0.5 = −3.5 and (0 − 1)/0.5·(−1) + 0.5 = 2.5.
      const y = noGrad(() =>
        ops.batchNormEval(
          tensor([1.5, -1, 3, 0], [1, 2, 2, 1, 1]),
          Float32Array.from([0.5, 1]),
          Float32Array.from([4 - 1e-5, 0.25 - 1e-5]),
          tensor([2, -1], [2]),
          tensor([1, 0.5], [2]),
        ),
      );
      assertClose(await y.data(), [2, -0.5, -3.5, 2.5], 1e-5, 'y');
    });

    it('BatchNorm3d layer: training forward folds the batch into the running statistics (momentum 0.1, unbiased variance), eval uses them', async () => {
      const bn = new BatchNorm3d(2);
      // Channel 0 holds 1, 2, 3, 4 (mean 2.5, unbiased var 5/3); channel 1 holds 0, 0, 2, 2 (mean 1, unbiased var 4/3).
      const x = tensor([1, 2, 0, 0, 3, 4, 2, 2], [2, 2, 2, 1, 1]);
      bn.train();
      const y = noGrad(() => bn.forward(x));
      await (await import('../../src/nn/index.js')).flushBatchNormStats(bn);
      const s = bn.runningStats();
      assertClose(s.mean, [0.25, 0.1], 1e-7, 'running_mean');
      assertClose(s.var, [0.9 + 0.1 * (5 / 3), 0.9 + 0.1 * (4 / 3)], 1e-7, 'running_var');
      assert.equal(s.numBatchesTracked, 1);
      // Training output: channel 0 normalised with the batch mean 2.5 and biased variance 1.25.
      assertClose((await y.data()).slice(0, 2), [(1 - 2.5) / Math.sqrt(1.25 + 1e-5), (2 - 2.5) / Math.sqrt(1.25 + 1e-5)], 1e-6, 'train y');
      bn.eval();
      const z = noGrad(() => bn.forward(tensor([0.25, 1.25, 0.1, 0.1], [1, 2, 2, 1, 1])));
      assertClose(await z.data(), [0, 1 / Math.sqrt(s.var[0]! + 1e-5), 0, 0], 1e-6, 'eval y');
      // A state dict's running statistics are loaded (not compared, as constant buffers are).
      bn.loadStateDict({
        weight: { shape: [2], data: Float32Array.from([1, 1]) },
        bias: { shape: [2], data: Float32Array.from([0, 0]) },
        running_mean: { shape: [2], data: Float32Array.from([7, 8]) },
        running_var: { shape: [2], data: Float32Array.from([2, 3]) },
        num_batches_tracked: { shape: [], data: Float32Array.from([41]) },
      });
      assert.deepEqual([...bn.runningStats().mean], [7, 8]);
      assert.equal(bn.runningStats().numBatchesTracked, 41);
      for (const t of [x, y, z]) t.dispose();
      bn.dispose();
    });

    it('GroupNorm layer keys and default affine; dropoutChannels scales kept channels by exactly 1.25', async () => {
      const gn = new GroupNorm(8, 16);
      assert.deepEqual(gn.namedStateShapes(), [
        ['weight', [16]],
        ['bias', [16]],
      ]);
      gn.dispose();
      const y = noGrad(() => ops.dropoutChannels(tensor([1, 2, 3, -4, 5, 6], [1, 3, 2, 1, 1]), Float32Array.from([1, 0, 1]), 0.2));
      assert.deepEqual([...(await y.data())], [1.25, 2.5, 0, -0, 6.25, 7.5]);
    });

    it('ConvTranspose3d with bias adds it per output channel; kernel = stride (2,4,4) places every input voxel in its own block', async () => {
      const ct = new ConvTranspose3d(1, 2, [2, 4, 4], { stride: [2, 4, 4], bias: true });
      assert.deepEqual(ct.namedStateShapes(), [
        ['weight', [1, 2, 2, 4, 4]],
        ['bias', [2]],
      ]);
      const w = new Float32Array(64).map((_, i) => i);
      ct.weight.assign(w);
      ct.bias!.assign(Float32Array.from([0.5, -1]));
      const y = noGrad(() => ct.forward(tensor([2, 3], [1, 1, 1, 1, 2])));
      assert.deepEqual(y.shape, [1, 2, 2, 4, 8]);
      const v = await y.data();
      // y[0, co, d, h, 4·j + k] = x[j]·w[0, co, d, h, k] + b[co]
      for (let co = 0; co < 2; co++)
        for (let d = 0; d < 2; d++)
          for (let h = 0; h < 4; h++)
            for (let j = 0; j < 2; j++)
              for (let k = 0; k < 4; k++) {
                assert.equal(v[((co * 2 + d) * 4 + h) * 8 + 4 * j + k], [2, 3][j]! * w[((co * 2 + d) * 4 + h) * 4 + k]! + [0.5, -1][co]!);
              }
      ct.dispose();
    });
  });

  describe(`nnFormer/TransBTS ops: finite-difference gradients [${backend}]`, () => {
    before(() => setBackend(backend));
    for (const c of gradCases) {
      it(c.name, async () => {
        const r = new Rng(c.name.length * 7919 + 17, 'mulberry32');
        const data = c.shapes.map((s) =>
          randArray(
            s.reduce((a, b) => a * b, 1),
            r,
          ),
        );
        const xs = data.map((d, i) => tensor(d, c.shapes[i]!, { requiresGrad: true }));
        const y = c.run(xs);
        const weights = randArray(y.size, r);
        y.backward(tensor(weights, y.shape));
        const f = async (vals: Float32Array[]): Promise<number> => {
          const v = await noGrad(() => c.run(vals.map((d, i) => tensor(d, c.shapes[i]!)))).data();
          let acc = 0;
          for (let i = 0; i < v.length; i++) acc += v[i]! * weights[i]!;
          return acc;
        };
        const h = 1e-2;
        for (let i = 0; i < xs.length; i++) {
          const analytic = await xs[i]!.grad!.data();
          const scaleRef = Math.max(1e-3, ...Array.from(analytic, Math.abs));
          const n = data[i]!.length;
          const probes = new Set<number>([0, n - 1]);
          while (probes.size < Math.min(n, 12)) probes.add(Math.floor(r.random() * n));
          for (const k of probes) {
            const plus = data.map((d) => d.slice());
            const minus = data.map((d) => d.slice());
            plus[i]![k] = data[i]![k]! + h;
            minus[i]![k] = data[i]![k]! - h;
            const numeric = ((await f(plus)) - (await f(minus))) / (2 * h);
            assert.ok(Math.abs(numeric - analytic[k]!) <= 1e-2 * scaleRef + 1e-3 * Math.abs(numeric), `input ${i} element ${k}: analytic ${analytic[k]} vs numeric ${numeric}`);
          }
        }
      });
    }
  });
}
