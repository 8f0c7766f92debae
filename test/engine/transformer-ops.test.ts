/**
 * The transformer ops (linear, matmul, permute, roll, pad, slice, concat, gatherRows, broadcasting
 * add/sub/mul, softmaxLast, meanDim, layerNorm without affine, relu): hand-computed values and
 * gradients on every backend, then random larger cases (tile edges, big reductions) checked against
 * the reference backend's results.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { initTestBackends, testBackends } from '../helpers/backends.js';
import { memory, setBackend, tensor, tidy, type Tensor } from '../../src/engine/index.js';
import * as ops from '../../src/engine/ops/index.js';
import { Rng } from '../../src/engine/rng.js';
import { referenceMemory } from '../../src/backends/reference/index.js';

await initTestBackends();

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-5, what = ''): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} vs ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    assert.ok(Math.abs(actual[i]! - e) <= tol * Math.max(1, Math.abs(e)), `${what}[${i}]: ${actual[i]} vs expected ${e}`);
  }
}

const t = (data: number[], shape: number[], requiresGrad = false): Tensor => tensor(data, shape, { requiresGrad });
const arange = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

async function gradOf(x: Tensor): Promise<Float32Array> {
  assert.ok(x.grad, 'no gradient reached the input');
  return x.grad.data();
}

for (const backend of testBackends()) {
  describe(`transformer ops, hand-computed [${backend}]`, () => {
    before(() => setBackend(backend));

    it('matmul 2x3·3x2, its transB form and its gradients', async () => {
      const a = t([1, 2, 3, 4, 5, 6], [2, 3], true);
      const b = t([7, 8, 9, 10, 11, 12], [3, 2], true);
      const y = ops.matmul(a, b);
      assert.deepEqual(y.shape, [2, 2]);
      assertClose(await y.data(), [58, 64, 139, 154], 1e-6, 'a·b');
      y.backward(t([1, 0, 0, 2], [2, 2]));
      // da = dy·bᵀ, db = aᵀ·dy
      assertClose(await gradOf(a), [7, 9, 11, 16, 20, 24], 1e-6, 'da');
      assertClose(await gradOf(b), [1, 8, 2, 10, 3, 12], 1e-6, 'db');
      const bt = t([7, 9, 11, 8, 10, 12], [2, 3], true);
      const y2 = ops.matmul(a.detach(), bt, { transB: true });
      assertClose(await y2.data(), [58, 64, 139, 154], 1e-6, 'a·btᵀ');
      y2.backward(t([1, 0, 0, 2], [2, 2]));
      assertClose(await gradOf(bt), [1, 2, 3, 8, 10, 12], 1e-6, 'dbt');
    });

    it('batched matmul with a shared rank-2 b sums its gradient over the batch', async () => {
      const a = t([1, 2, 3, 4, 5, 6, -1, -2, -3, -4, -5, -6], [2, 2, 3]);
      const b = t([7, 8, 9, 10, 11, 12], [3, 2], true);
      const y = ops.matmul(a, b);
      assert.deepEqual(y.shape, [2, 2, 2]);
      assertClose(await y.data(), [58, 64, 139, 154, -58, -64, -139, -154], 1e-6, 'y');
      y.backward(t([1, 1, 1, 1, 1, 1, 1, 1], [2, 2, 2]));
      // the two batch entries cancel
      assertClose(await gradOf(b), [0, 0, 0, 0, 0, 0], 1e-6, 'db');
    });

    it('linear = x·wᵀ + b with PyTorch weight layout, and its three gradients', async () => {
      const x = t([1, 2, 3, 4, 5, 6], [2, 3], true);
      const w = t([7, 9, 11, 8, 10, 12], [2, 3], true);
      const b = t([0.5, -1], [2], true);
      const y = ops.linear(x, w, b);
      assertClose(await y.data(), [58.5, 63, 139.5, 153], 1e-6, 'y');
      y.backward(t([1, 2, 3, 4], [2, 2]));
      assertClose(await gradOf(x), [23, 29, 35, 53, 67, 81], 1e-6, 'dx');
      assertClose(await gradOf(w), [13, 17, 21, 18, 24, 30], 1e-6, 'dw');
      assertClose(await gradOf(b), [4, 6], 1e-6, 'db');
    });

    it('permute materialises the transposed order; its gradient permutes back', async () => {
      const x = t(arange(24), [2, 3, 4], true);
      const y = ops.permute(x, [2, 0, -2]);
      assert.deepEqual(y.shape, [4, 2, 3]);
      const v = await y.data();
      // y[w, n, c] = x[n, c, w] = 12n + 4c + w
      assert.equal(v[(3 * 2 + 1) * 3 + 2], 12 + 8 + 3);
      assert.equal(v[(1 * 2 + 0) * 3 + 1], 4 + 1);
      y.backward(
        tensor(
          arange(24).map((i) => i * 10),
          [4, 2, 3],
        ),
      );
      const g = await gradOf(x);
      // dx[n, c, w] = dy[w, n, c]
      assert.equal(g[12 + 8 + 3], ((3 * 2 + 1) * 3 + 2) * 10);
    });

    it('roll follows torch.roll (positive, negative, several dims) and rolls gradients back', async () => {
      const x = t(arange(6), [2, 3], true);
      assertClose(await ops.roll(x, [1], [1]).data(), [2, 0, 1, 5, 3, 4], 0, 'roll +1 dim 1');
      assertClose(await ops.roll(x, [-1], [-1]).data(), [1, 2, 0, 4, 5, 3], 0, 'roll -1 dim -1');
      assertClose(await ops.roll(x, [1, 4], [0, 1]).data(), [5, 3, 4, 2, 0, 1], 0, 'roll (1, 4) dims (0, 1)');
      const y = ops.roll(x, [1], [1]);
      y.backward(t([10, 20, 30, 40, 50, 60], [2, 3]));
      assertClose(await gradOf(x), [20, 30, 10, 50, 60, 40], 0, 'dx');
    });

    it('pad puts zeros before and after each dim; its gradient crops', async () => {
      const x = t([1, 2], [1, 2], true);
      const y = ops.pad(x, [
        [1, 0],
        [0, 2],
      ]);
      assert.deepEqual(y.shape, [2, 4]);
      assertClose(await y.data(), [0, 0, 0, 0, 1, 2, 0, 0], 0, 'y');
      y.backward(tensor(arange(8), [2, 4]));
      assertClose(await gradOf(x), [4, 5], 0, 'dx');
    });

    it('strided slice x[:, 0::2, 1::2] and x[-1:], gradient scatters into zeros', async () => {
      const x = t(arange(24), [2, 3, 4], true);
      const y = ops.slice(x, [0, 0, 1], [2, Infinity, 4], [1, 2, 2]);
      assert.deepEqual(y.shape, [2, 2, 2]);
      assertClose(await y.data(), [1, 3, 9, 11, 13, 15, 21, 23], 0, 'y');
      const last = ops.slice(x, [-1], [Infinity]);
      assert.deepEqual(last.shape, [1, 3, 4]);
      assertClose(
        await last.data(),
        arange(12).map((i) => i + 12),
        0,
        'x[-1:]',
      );
      y.backward(tensor([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2]));
      const expected = new Array<number>(24).fill(0);
      [1, 3, 9, 11, 13, 15, 21, 23].forEach((p, i) => {
        expected[p] = i + 1;
      });
      assertClose(await gradOf(x), expected, 0, 'dx');
    });

    it('concat along the last dim and its split gradient', async () => {
      const a = t([1, 2], [2, 1], true);
      const b = t([3, 4, 5, 6], [2, 2], true);
      const y = ops.concat([a, b], -1);
      assertClose(await y.data(), [1, 3, 4, 2, 5, 6], 0, 'y');
      y.backward(t([10, 20, 30, 40, 50, 60], [2, 3]));
      assertClose(await gradOf(a), [10, 40], 0, 'da');
      assertClose(await gradOf(b), [20, 30, 50, 60], 0, 'db');
    });

    it('gatherRows with duplicate indices: gradients of repeated rows accumulate', async () => {
      const table = t([1, 2, 3, 4, 5, 6], [3, 2], true);
      const y = ops.gatherRows(table, Int32Array.from([2, 0, 2]), [3, 1, 2]);
      assert.deepEqual(y.shape, [3, 1, 2]);
      assertClose(await y.data(), [5, 6, 1, 2, 5, 6], 0, 'y');
      y.backward(t([1, 1, 10, 10, 100, 100], [3, 1, 2]));
      assertClose(await gradOf(table), [10, 10, 0, 0, 101, 101], 0, 'dtable');
      assert.throws(() => ops.gatherRows(table, Int32Array.from([3])), /index\[0\] = 3 is not a row/);
    });

    it('broadcasting add, sub and mul reduce their gradients over broadcast dims', async () => {
      const a = t([1, 2, 3, 4, 5, 6], [2, 3], true);
      const b = t([10, 20, 30], [3], true);
      const s = ops.add(a, b);
      assertClose(await s.data(), [11, 22, 33, 14, 25, 36], 0, 'a+b');
      s.backward(t([1, 2, 3, 4, 5, 6], [2, 3]));
      assertClose(await gradOf(b), [5, 7, 9], 0, 'd(a+b)/db');
      const c = t([1, 2], [2, 1], true);
      const d = t([3, 4, 5], [1, 3], true);
      const m = ops.mul(c, d);
      assert.deepEqual(m.shape, [2, 3]);
      assertClose(await m.data(), [3, 4, 5, 6, 8, 10], 0, 'c·d');
      m.backward(t([1, 1, 1, 1, 1, 1], [2, 3]));
      assertClose(await gradOf(c), [12, 12], 0, 'dc');
      assertClose(await gradOf(d), [3, 3, 3], 0, 'dd');
      const e = t([1, 2], [2, 1], true);
      const f = t([3, 4, 5], [3], true);
      const df = ops.sub(e, f);
      assertClose(await df.data(), [-2, -3, -4, -1, -2, -3], 0, 'e-f');
      df.backward(t([1, 2, 3, 4, 5, 6], [2, 3]));
      assertClose(await gradOf(e), [6, 15], 0, 'de');
      assertClose(await gradOf(f), [-5, -7, -9], 0, 'df');
      assert.throws(() => ops.add(a, t([1, 2], [2])), /do not broadcast/);
    });

    it('forward and backward through every new op leave no storage behind', async () => {
      // Backend-level counts also catch raw kernel outputs an op forgot to wrap (never freed).
      const live = async (): Promise<number | null> => {
        if (backend === 'reference') return referenceMemory().count;
        if (backend === 'webgpu') return (await import('../../src/backends/webgpu/index.js')).webgpuMemory().count;
        return null;
      };
      const base = memory().storages;
      const baseLive = await live();
      const x = tensor(
        Float32Array.from({ length: 24 }, (_, i) => Math.sin(i)),
        [2, 3, 4],
        { requiresGrad: true },
      );
      const w = tensor(
        Float32Array.from({ length: 20 }, (_, i) => Math.cos(i)),
        [5, 4],
        { requiresGrad: true },
      );
      const b = tensor([0.1, 0.2, 0.3, 0.4, 0.5], [5], { requiresGrad: true });
      const table = tensor(
        Float32Array.from({ length: 15 }, (_, i) => i / 10),
        [3, 5],
        { requiresGrad: true },
      );
      const loss = tidy(() => {
        const h = ops.linear(x, w, b); // [2, 3, 5]
        const g = ops.gatherRows(table, Int32Array.from([2, 0, 2]), [3, 5]);
        const a = ops.softmaxLast(ops.add(h, g));
        const m = ops.mul(ops.sub(a, ops.meanDim(a, 1, true)), ops.layerNorm(h, null, null, { eps: 1e-5, channelsLast: true }));
        const p = ops.pad(ops.roll(ops.permute(m, [2, 0, 1]), [1], [2]), [
          [0, 1],
          [1, 0],
          [0, 0],
        ]);
        const even = ops.slice(p, [0], [Infinity], [2]);
        const odd = ops.slice(p, [1], [Infinity], [2]);
        const c = ops.concat([even, ops.relu(ops.matmul(even, odd, { transB: true }))], -1);
        return ops.sum(c);
      });
      loss.backward();
      for (const t of [x, w, b, table]) {
        assert.ok(t.grad, 'every input gets a gradient');
        t.grad.dispose();
        t.dispose();
      }
      loss.dispose();
      assert.equal(memory().storages, base);
      assert.equal(await live(), baseLive);
    });

    it('softmaxLast, meanDim, relu and layerNorm without affine', async () => {
      const x = t([0, Math.log(3), 1, 1], [2, 2]);
      assertClose(await ops.softmaxLast(x).data(), [0.25, 0.75, 0.5, 0.5], 1e-6, 'softmaxLast');
      const m = t(arange(6), [2, 3], true);
      assertClose(await ops.meanDim(m, 1).data(), [1, 4], 1e-6, 'meanDim(1)');
      const m0 = ops.meanDim(m, 0, true);
      assert.deepEqual(m0.shape, [1, 3]);
      assertClose(await m0.data(), [1.5, 2.5, 3.5], 1e-6, 'meanDim(0, keep)');
      m0.backward(t([2, 4, 6], [1, 3]));
      assertClose(await gradOf(m), [1, 2, 3, 1, 2, 3], 1e-6, 'dmeanDim');
      assertClose(await ops.relu(t([-1, 0, 2], [3])).data(), [0, 0, 2], 0, 'relu');
      const ln = ops.layerNorm(t([1, 3, 2, 2], [2, 2]), null, null, { eps: 1e-5, channelsLast: true });
      const r = 1 / Math.sqrt(1 + 1e-5);
      assertClose(await ln.data(), [-r, r, 0, 0], 1e-6, 'layerNorm no affine');
    });
  });
}

// Larger random cases: every backend against the reference backend's values (tile edges of GPU
// GEMMs, reductions long enough to take the multi-thread paths).
function rand(n: number, seed: number): Float32Array {
  const g = new Rng(seed, 'mulberry32');
  return Float32Array.from({ length: n }, () => g.random() * 2 - 1);
}

interface ParityCase {
  name: string;
  shapes: number[][];
  run: (xs: Tensor[]) => Tensor;
}

const relIdx = Int32Array.from({ length: 343 }, (_, i) => (i * 37) % 125);
const parityCases: ParityCase[] = [
  // crosses every blocking boundary of the native GEMM (K slices of 256, 96-row and 256-column blocks)
  { name: 'linear 300x520 -> 270 with bias', shapes: [[300, 520], [270, 520], [270]], run: (x) => ops.linear(x[0]!, x[1]!, x[2]!) },
  { name: 'linear 300x45 -> 29 with bias', shapes: [[3, 100, 45], [29, 45], [29]], run: (x) => ops.linear(x[0]!, x[1]!, x[2]!) },
  {
    name: 'batched matmul transB (attention q·kᵀ)',
    shapes: [
      [2, 3, 37, 16],
      [2, 3, 41, 16],
    ],
    run: (x) => ops.matmul(x[0]!, x[1]!, { transB: true }),
  },
  {
    name: 'batched matmul transB 2x70x20 · (2x66x20)ᵀ (large GPU tiles, per-batch b)',
    shapes: [
      [2, 70, 20],
      [2, 66, 20],
    ],
    run: (x) => ops.matmul(x[0]!, x[1]!, { transB: true }),
  },
  {
    name: 'batched matmul (attention·v)',
    shapes: [
      [2, 3, 37, 41],
      [2, 3, 41, 17],
    ],
    run: (x) => ops.matmul(x[0]!, x[1]!),
  },
  {
    name: 'batched matmul (attention·v, head dim 6: skinny GPU kernel, dv through transA)',
    shapes: [
      [2, 3, 37, 41],
      [2, 3, 41, 6],
    ],
    run: (x) => ops.matmul(x[0]!, x[1]!),
  },
  { name: 'linear 300x45 -> 7 with bias (skinny GPU kernel, shared b)', shapes: [[3, 100, 45], [7, 45], [7]], run: (x) => ops.linear(x[0]!, x[1]!, x[2]!) },
  {
    name: 'batched matmul transB, head dim 5 (skinny GPU kernel on q·kᵀ and both gradients)',
    shapes: [
      [2, 3, 37, 5],
      [2, 3, 70, 5],
    ],
    run: (x) => ops.matmul(x[0]!, x[1]!, { transB: true }),
  },
  { name: 'window permute 6-D', shapes: [[1, 4, 2, 6, 2, 5]], run: (x) => ops.permute(x[0]!, [0, 1, 3, 5, 2, 4]) },
  { name: 'cyclic shift roll 3 dims', shapes: [[1, 6, 5, 7, 3]], run: (x) => ops.roll(x[0]!, [-3, -3, -3], [1, 2, 3]) },
  {
    name: 'pad + slice (patch merging)',
    shapes: [[1, 5, 6, 7, 3]],
    run: (x) =>
      ops.slice(
        ops.pad(x[0]!, [
          [0, 0],
          [0, 1],
          [0, 0],
          [0, 1],
          [0, 0],
        ]),
        [0, 1, 0, 1, 0],
        [1, 6, 6, 8, 3],
        [1, 2, 2, 2, 1],
      ),
  },
  {
    name: 'broadcast add of a bias [1, h, N, N] and a mask [nW, 1, N, N]',
    shapes: [
      [4, 3, 9, 9],
      [1, 3, 9, 9],
      [4, 1, 9, 9],
    ],
    run: (x) => ops.add(ops.add(x[0]!, x[1]!), x[2]!),
  },
  { name: 'softmaxLast over 343', shapes: [[2, 3, 343]], run: (x) => ops.softmaxLast(ops.scale(x[0]!, 4)) },
  { name: 'gatherRows 343 rows from 125 (duplicates)', shapes: [[125, 3]], run: (x) => ops.gatherRows(x[0]!, relIdx, [343, 3]) },
  { name: 'meanDim over 400 tokens', shapes: [[2, 400, 5]], run: (x) => ops.meanDim(x[0]!, 1) },
];

const referenceResults = new Map<string, { y: Float32Array; grads: Float32Array[] }>();

async function runCase(c: ParityCase, backend: string): Promise<{ y: Float32Array; grads: Float32Array[] }> {
  setBackend(backend);
  const xs = c.shapes.map((s, i) =>
    tensor(
      rand(
        s.reduce((a, b) => a * b, 1),
        i + 1,
      ),
      s,
      { requiresGrad: true },
    ),
  );
  const y = c.run(xs);
  const dy = rand(y.size, 99);
  const yv = await y.data();
  y.backward(tensor(dy, y.shape));
  const grads = await Promise.all(xs.map((x) => gradOf(x)));
  for (const x of xs) {
    x.grad?.dispose();
    x.dispose();
  }
  return { y: yv, grads };
}

for (const backend of testBackends()) {
  describe(`transformer ops vs the reference backend [${backend}]`, () => {
    for (const c of parityCases) {
      it(c.name, async () => {
        let ref = referenceResults.get(c.name);
        if (!ref) {
          ref = await runCase(c, 'reference');
          referenceResults.set(c.name, ref);
        }
        const got = await runCase(c, backend);
        // float32 GEMMs and reductions reassociate: 1e-5 relative to the tensor's largest value
        const scaled = (a: Float32Array, b: Float32Array, what: string) => {
          const m = b.reduce((acc, v) => Math.max(acc, Math.abs(v)), 1);
          for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-5 * m, `${what}[${i}]: ${a[i]} vs reference ${b[i]}`);
        };
        scaled(got.y, ref.y, 'output');
        got.grads.forEach((g, i) => scaled(g, ref!.grads[i]!, `grad ${i}`));
      });
    }
  });
}
