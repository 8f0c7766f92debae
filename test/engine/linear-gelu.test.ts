/**
 * linearGelu (Linear → exact GELU as one op; native runs GELU as a GEMM epilogue): hand-computed values
 * and gradients, equality with the unfused gelu(linear(...)) on every backend (forward and the three
 * gradients, across the native GEMM's paths and tails), no pre-activation kept without a gradient, no
 * storage left behind, and bit-identical native results on 1, 2 and 3 threads.
 */
import { describe, it, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initTestBackends, skipUnlessAvailable, testBackends } from '../helpers/backends.js';
import { memory, noGrad, setBackend, tensor, tidy, type Tensor } from '../../src/engine/index.js';
import * as ops from '../../src/engine/ops/index.js';
import { Rng } from '../../src/engine/rng.js';
import { nativeAddon, nativeLoadError } from '../../src/backends/native/index.js';
import { assertSameOnThreads } from '../helpers/native-threads.js';

await initTestBackends();

function rand(n: number, seed: number): Float32Array {
  const g = new Rng(seed, 'mulberry32');
  return Float32Array.from({ length: n }, () => g.random() * 2 - 1);
}

interface Run {
  y: Float32Array;
  grads: Float32Array[];
}

async function run(fused: boolean, shapes: number[][], seed: number): Promise<Run> {
  const [x, w, b] = shapes.map((s, i) =>
    tensor(
      rand(
        s.reduce((p, q) => p * q, 1),
        seed + i,
      ),
      s,
      { requiresGrad: true },
    ),
  );
  const bias = shapes.length > 2 ? b! : null;
  const y = fused ? ops.linearGelu(x!, w!, bias) : ops.gelu(ops.linear(x!, w!, bias));
  const yv = await y.data();
  y.backward(tensor(rand(y.size, seed + 7), y.shape));
  const ins = [x!, w!, ...(bias ? [bias] : [])];
  const grads = await Promise.all(ins.map((t) => t.grad!.data()));
  for (const t of ins) {
    t.grad?.dispose();
    t.dispose();
  }
  y.dispose();
  return { y: yv, grads };
}

// Shapes that take every native GEMM path: packed blocks with K slices and row/column tails, the dot path
// with a large weight (few tokens) and with a large input (few outputs), the one-vector tile, no bias.
const cases: { name: string; shapes: number[][] }[] = [
  { name: 'packed 300x520 -> 270 (K slices, block tails)', shapes: [[300, 520], [270, 520], [270]] },
  { name: 'leading dims [3, 100, 45] -> 29', shapes: [[3, 100, 45], [29, 45], [29]] },
  { name: 'dot path, few tokens: 54x96 -> 384', shapes: [[54, 96], [384, 96], [384]] },
  { name: 'dot path, few outputs: 200x70 -> 40', shapes: [[200, 70], [40, 70], [40]] },
  {
    name: 'one-vector tile: 37x20 -> 13, no bias',
    shapes: [
      [37, 20],
      [13, 20],
    ],
  },
];

for (const backend of testBackends()) {
  describe(`linearGelu [${backend}]`, () => {
    before(() => setBackend(backend));

    it('hand-computed: pre-activations 0, 1, −1, 2 give exact-erf GELU values and derivatives Φ(h) + h·φ(h)', async () => {
      // x·wᵀ + b = [[0, 1], [−1, 2]]
      const x = tensor([1, 0, 0, 1], [2, 2], { requiresGrad: true });
      const w = tensor([1, 0, 1, 2], [2, 2], { requiresGrad: true });
      const b = tensor([-1, 0], [2], { requiresGrad: true });
      const y = ops.linearGelu(x, w, b);
      const want = [0, 0.8413447460685429, -0.15865525393145707, 1.9544997361036416];
      const got = await y.data();
      want.forEach((v, i) => assert.ok(Math.abs(got[i]! - v) <= 2e-6, `y[${i}] = ${got[i]}, want ${v}`));
      y.backward(tensor([1, 1, 1, 1], [2, 2]));
      const d = [0.5, 1.0833154705876864, -0.08331547058768646, 1.0852318637393457]; // dGELU/dh at 0, 1, −1, 2
      const close = (a: ArrayLike<number>, e: number[], what: string) => e.forEach((v, i) => assert.ok(Math.abs(a[i]! - v) <= 3e-6, `${what}[${i}] = ${a[i]}, want ${v}`));
      // db = Σ rows dh; dw = dhᵀ·x; dx = dh·w
      close(await b.grad!.data(), [d[0]! + d[2]!, d[1]! + d[3]!], 'db');
      close(await w.grad!.data(), [d[0]!, d[2]!, d[1]!, d[3]!], 'dw');
      close(await x.grad!.data(), [d[0]! + d[1]!, 2 * d[1]!, d[2]! + d[3]!, 2 * d[3]!], 'dx');
    });

    for (const c of cases)
      it(`equals gelu(linear(...)) and its gradients: ${c.name}`, async () => {
        const fused = await run(true, c.shapes, 3);
        const plain = await run(false, c.shapes, 3);
        // The fused kernels apply the same GELU to the same GEMM sums: equal bit for bit.
        assert.deepEqual(fused.y, plain.y, 'output');
        fused.grads.forEach((g, i) => assert.deepEqual(g, plain.grads[i], `grad ${i}`));
        assert.ok(
          fused.y.some((v) => v < -0.01),
          'the inputs reach the negative side of GELU',
        );
      });

    it('keeps no pre-activation without a gradient, and leaves no storage behind', async () => {
      const base = memory().storages;
      const x = tensor(rand(60 * 33, 1), [60, 33]);
      const w = tensor(rand(70 * 33, 2), [70, 33], { requiresGrad: true });
      const b = tensor(rand(70, 3), [70]);
      const plainT = tidy(() => noGrad(() => ops.gelu(ops.linear(x, w, b))));
      const plain = await plainT.data();
      plainT.dispose();
      const before = memory().storages;
      const y = noGrad(() => ops.linearGelu(x, w, b));
      assert.equal(memory().storages, before + 1, 'only the output is allocated under noGrad');
      assert.deepEqual(await y.data(), plain);
      y.dispose();
      const y2 = ops.linearGelu(x, w, b);
      const dy = tensor(rand(y2.size, 4), y2.shape);
      y2.backward(dy);
      assert.ok(w.grad);
      for (const t of [w.grad, dy, y2, x, w, b] as Tensor[]) t.dispose();
      assert.equal(memory().storages, base, 'every storage is released');
    });
  });
}

const skip = skipUnlessAvailable('native', !!nativeAddon, `native addon not available: ${nativeLoadError}`);

test('native linearGelu (packed and dot paths, with the pre-activation) is bit-identical on 1, 2 and 3 threads, close to the reference', { skip }, () => {
  // Small enough that the children's base64 results stay under spawnSync's 1 MB output buffer.
  assertSameOnThreads(
    `
    for (const [M, N, K] of [[100, 150, 300], [40, 200, 96], [150, 24, 70]]) {
      const [xr, xn] = pair([M, K]), [wr, wn] = pair([N, K]), [br, bn] = pair([N]);
      const [yr, pr] = rk.linearGelu(xr, wr, br, { keepPre: true }), [yn, pn] = k.linearGelu(xn, wn, bn, { keepPre: true });
      check(yr, yn);
      check(pr, pn);
      const [yn2] = k.linearGelu(xn, wn, bn, { keepPre: false });
      check(yr, yn2);
    }
`,
    5,
    1e-5,
  );
});
