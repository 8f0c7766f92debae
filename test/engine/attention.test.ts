/**
 * The fused attention op on every backend: a hand-computed case; random cases (packed qkv read in
 * place, a separate q with a shared kv tensor as nnFormer's kv block, three separate tensors; bias,
 * shifted-window mask, q-scale vs score-scale, M ≠ N) against the same attention written with existing
 * ops, values and gradients; each backend's fused results against the reference backend's; and
 * central finite differences of the reference kernels' gradients for q, k, v and bias.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { initTestBackends, testBackends } from '../helpers/backends.js';
import { noGrad, setBackend, tensor, type Tensor } from '../../src/engine/index.js';
import * as ops from '../../src/engine/ops/index.js';
import { Rng } from '../../src/engine/rng.js';

await initTestBackends();

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    assert.ok(Math.abs(actual[i]! - e) <= tol * Math.max(1, Math.abs(e)), `${what}[${i}]: ${actual[i]} vs expected ${e}`);
  }
}

function randArray(n: number, seed: number, amp = 1): Float32Array {
  const g = new Rng(seed, 'mulberry32');
  return Float32Array.from({ length: n }, () => amp * (2 * g.random() - 1));
}

interface Case {
  name: string;
  B: number;
  N: number;
  M: number;
  H: number;
  D: number;
  /** 'packed': one [B, N, 3HD] tensor; 'kv': q separate, k and v one [B, M, 2HD] tensor; 'separate': three tensors. */
  layout: 'packed' | 'kv' | 'separate';
  bias: boolean;
  nW: number;
  qScale: number;
  sScale: number;
}

const cases: Case[] = [
  { name: 'packed qkv, bias, mask, q scaled (Swin)', B: 4, N: 5, M: 5, H: 2, D: 3, layout: 'packed', bias: true, nW: 2, qScale: 3 ** -0.5, sScale: 1 },
  { name: 'packed qkv, scores scaled (UNETR/TransBTS)', B: 2, N: 6, M: 6, H: 3, D: 4, layout: 'packed', bias: false, nW: 0, qScale: 1, sScale: 0.5 },
  { name: 'q separate with a column offset, shared kv, M ≠ N, bias', B: 2, N: 5, M: 7, H: 2, D: 3, layout: 'kv', bias: true, nW: 0, qScale: 0.7, sScale: 1 },
  { name: 'three tensors, mask only, both scales, M ≠ N', B: 3, N: 4, M: 9, H: 1, D: 5, layout: 'separate', bias: false, nW: 3, qScale: 0.8, sScale: 1.3 },
  { name: 'head width 16 over 70 keys (native vector blocks and tails)', B: 2, N: 70, M: 70, H: 2, D: 16, layout: 'packed', bias: true, nW: 2, qScale: 0.25, sScale: 1 },
  // ≥ 8 windows per thread (up to 5 threads): the native forward's window-by-window tasks with prefetch.
  {
    name: 'many windows, q separate, shared kv, head width 32, bias, mask (nnFormer kv block)',
    B: 40,
    N: 9,
    M: 9,
    H: 2,
    D: 32,
    layout: 'kv',
    bias: true,
    nW: 4,
    qScale: 32 ** -0.5,
    sScale: 1,
  },
  { name: 'many windows, three tensors, M ≠ N', B: 40, N: 5, M: 11, H: 3, D: 4, layout: 'separate', bias: false, nW: 0, qScale: 0.6, sScale: 1.1 },
];

interface Inputs {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  cols: [number, number, number];
  bias: Tensor | null;
  mask: Tensor | null;
  /** the distinct leaves to differentiate */
  leaves: Tensor[];
}

function makeInputs(c: Case, seed: number): Inputs {
  const W = c.H * c.D;
  const bias = c.bias ? tensor(randArray(c.H * c.N * c.M, seed + 1), [c.H, c.N, c.M], { requiresGrad: true }) : null;
  // Shifted-window masks hold 0 and −100 (MONAI); a random pattern of them, one row never fully masked.
  const mask = c.nW
    ? tensor(
        Float32Array.from(randArray(c.nW * c.N * c.M, seed + 2), (x, i) => (x > 0.3 && i % c.M !== 0 ? -100 : 0)),
        [c.nW, c.N, c.M],
      )
    : null;
  if (c.layout === 'packed') {
    const x = tensor(randArray(c.B * c.N * 3 * W, seed), [c.B, c.N, 3 * W], { requiresGrad: true });
    return { q: x, k: x, v: x, cols: [0, W, 2 * W], bias, mask, leaves: [x, ...(bias ? [bias] : [])] };
  }
  if (c.layout === 'kv') {
    const q = tensor(randArray(c.B * c.N * (W + 2), seed + 3), [c.B, c.N, W + 2], { requiresGrad: true });
    const kv = tensor(randArray(c.B * c.M * 2 * W, seed + 4), [c.B, c.M, 2 * W], { requiresGrad: true });
    return { q, k: kv, v: kv, cols: [1, 0, W], bias, mask, leaves: [q, kv, ...(bias ? [bias] : [])] };
  }
  const q = tensor(randArray(c.B * c.N * W, seed + 5), [c.B, c.N, W], { requiresGrad: true });
  const k = tensor(randArray(c.B * c.M * (W + 1), seed + 6), [c.B, c.M, W + 1], { requiresGrad: true });
  const v = tensor(randArray(c.B * c.M * W, seed + 7), [c.B, c.M, W], { requiresGrad: true });
  return { q, k, v, cols: [0, 1, 0], bias, mask, leaves: [q, k, v, ...(bias ? [bias] : [])] };
}

function fused(c: Case, x: Inputs): Tensor {
  return ops.attention(x.q, x.k, x.v, {
    heads: c.H,
    headDim: c.D,
    qCol: x.cols[0],
    kCol: x.cols[1],
    vCol: x.cols[2],
    bias: x.bias,
    mask: x.mask,
    qScale: c.qScale,
    sScale: c.sScale,
  });
}

/** The same attention from existing ops, as the networks wrote it before the fused op. */
function composed(c: Case, x: Inputs): Tensor {
  const { B, N, M, H, D } = c;
  const heads = (t: Tensor, col: number, T: number) => ops.permute(ops.reshape(ops.slice(t, [0, 0, col], [B, T, col + H * D]), [B, T, H, D]), [0, 2, 1, 3]);
  let s = ops.matmul(ops.scale(heads(x.q, x.cols[0], N), c.qScale), heads(x.k, x.cols[1], M), { transB: true });
  s = ops.scale(s, c.sScale);
  if (x.bias) s = ops.add(s, x.bias);
  if (x.mask) s = ops.reshape(ops.add(ops.reshape(s, [B / c.nW, c.nW, H, N, M]), ops.reshape(x.mask, [1, c.nW, 1, N, M])), [B, H, N, M]);
  const o = ops.matmul(ops.softmaxLast(s), heads(x.v, x.cols[2], M));
  return ops.reshape(ops.permute(o, [0, 2, 1, 3]), [B, N, H * D]);
}

/** Output values and the gradients of Σ y·r for every leaf. */
async function valuesAndGrads(c: Case, f: (c: Case, x: Inputs) => Tensor, seed: number): Promise<Float32Array[]> {
  const x = makeInputs(c, seed);
  const y = f(c, x);
  const r = tensor(randArray(y.size, seed + 9), y.shape);
  y.backward(r);
  const res = [await y.data()];
  for (const l of x.leaves) {
    assert.ok(l.grad, 'a leaf got no gradient');
    res.push(await l.grad.data());
  }
  return res;
}

const reference = new Map<string, Float32Array[]>();

for (const backend of testBackends()) {
  describe(`attention op [${backend}]`, () => {
    before(() => setBackend(backend));

    it('hand-computed: one head, two keys, bias and score scale', async () => {
      // q = [1, 0] for query 0, k = [[1, 0], [0, 1]], v = [[10, 0], [0, 20]], sScale 2, bias [[0, 1], [0, 0]]:
      // query 0 scores [2, 1] → p = [e², e]/(e² + e); query 1 (q = [0, 1]) scores [0, 2].
      const q = tensor([1, 0, 0, 1], [1, 2, 2]);
      const k = tensor([1, 0, 0, 1], [1, 2, 2]);
      const v = tensor([10, 0, 0, 20], [1, 2, 2]);
      const bias = tensor([0, 1, 0, 0], [1, 2, 2]);
      const y = ops.attention(q, k, v, { heads: 1, headDim: 2, bias, sScale: 2 });
      const e = Math.E;
      const p0 = [e ** 2 / (e ** 2 + e), e / (e ** 2 + e)];
      const p1 = [1 / (1 + e ** 2), e ** 2 / (1 + e ** 2)];
      assertClose(await y.data(), [10 * p0[0]!, 20 * p0[1]!, 10 * p1[0]!, 20 * p1[1]!], 1e-6, 'y');
    });

    for (const c of cases) {
      it(`${c.name}: values and gradients equal the composition of existing ops`, async () => {
        const f = await valuesAndGrads(c, fused, 11);
        const g = await valuesAndGrads(c, composed, 11);
        assert.equal(f.length, g.length);
        f.forEach((a, i) => assertClose(a, g[i]!, 2e-5, i === 0 ? 'y' : `grad ${i - 1}`));
        if (backend === 'reference') reference.set(c.name, f);
        else if (reference.has(c.name)) reference.get(c.name)!.forEach((a, i) => assertClose(f[i]!, a, 2e-5, `vs reference, ${i === 0 ? 'y' : `grad ${i - 1}`}`));
      });
    }

    it('rejects a bias of the wrong shape, a mask that needs a gradient and columns outside q', () => {
      const x = tensor(new Float32Array(2 * 3 * 12), [2, 3, 12]);
      assert.throws(
        () => ops.attention(x, x, x, { heads: 2, headDim: 2, kCol: 4, vCol: 8, bias: tensor(new Float32Array(8), [2, 2, 2]) }),
        /attention: bias \[2, 2, 2\] must be \[2, 3, 3\]/,
      );
      const mask = tensor(new Float32Array(9), [1, 3, 3], { requiresGrad: true });
      assert.throws(() => ops.attention(x, x, x, { heads: 2, headDim: 2, kCol: 4, vCol: 8, mask }), /mask must be a constant/);
      assert.throws(() => ops.attention(x, x, x, { heads: 2, headDim: 2, vCol: 9 }), /v columns \[9, 13\) are outside \[2, 3, 12\]/);
    });
  });
}

describe('attention op gradients by finite differences [reference]', () => {
  before(() => setBackend('reference'));
  for (const c of [cases[0]!, cases[2]!, cases[3]!]) {
    it(`${c.name}: q, k, v and bias`, async () => {
      const x = makeInputs(c, 21);
      const y = fused(c, x);
      const r = await tensor(randArray(y.size, 29), y.shape).data();
      y.backward(tensor(r, y.shape));
      const f = () =>
        noGrad(() => fused(c, x))
          .dataSync()
          .reduce((s, v, i) => s + v * r[i]!, 0);
      for (const leaf of x.leaves) {
        const analytic = leaf.grad!.dataSync();
        const data = leaf.dataSync();
        const h = 1e-2;
        for (let k = 0; k < data.length; k += Math.max(1, Math.floor(data.length / 23))) {
          const v0 = data[k]!;
          data[k] = v0 + h;
          leaf.assign(data);
          const fp = f();
          data[k] = v0 - h;
          leaf.assign(data);
          const fm = f();
          data[k] = v0;
          leaf.assign(data);
          const numeric = (fp - fm) / (2 * h);
          assert.ok(Math.abs(analytic[k]! - numeric) <= 1e-2 * Math.max(1, Math.abs(numeric)), `${leaf.shape} element ${k}: analytic ${analytic[k]} vs numeric ${numeric}`);
        }
      }
    });
  }
});
