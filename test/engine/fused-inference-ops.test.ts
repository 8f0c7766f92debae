/**
 * The fused inference paths of groupNorm(+ReLU), batchNormEval(+ReLU, +residual), conv3dConcat (+ BatchNorm,
 * ReLU, residual epilogue) and the
 * transposed conv's bias: on
 * every backend the op equals the unfused composition written out here (bit for bit where the backend
 * has the fused kernel, since it rounds as the separate kernels do), with odd sizes, with and without
 * affine parameters; with a gradient recorded the op takes the composition and its gradients equal the
 * composition's.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { initTestBackends, testBackends } from '../helpers/backends.js';
import { hasKernel, noGrad, setBackend, tensor, type Tensor } from '../../src/engine/index.js';
import * as ops from '../../src/engine/ops/index.js';
import { channelView } from '../../src/engine/ops/group_norm.js';
import { Rng } from '../../src/engine/rng.js';

await initTestBackends();

const rnd = (n: number, r: Rng, lo = -1, hi = 1) => Float32Array.from({ length: n }, () => lo + (hi - lo) * r.random());
const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function assertSame(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) assert.ok(actual[i] === expected[i], `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
}

/** groupNorm as its documented composition: instance norm of the group view, ·γ, +β, ReLU. */
function groupNormComposed(x: Tensor, g: number, w: Tensor | null, b: Tensor | null, relu: boolean): Tensor {
  let y = ops.reshape(ops.instanceNorm(ops.reshape(x, [x.shape[0]!, g, -1]), { eps: 1e-5 }), x.shape);
  if (w) y = ops.mulChannel(y, w);
  if (b) y = ops.add(y, channelView(b, x.rank));
  return relu ? ops.relu(y) : y;
}

/** batchNormEval as (x·invStd + shift)·γ + β, ReLU, + residual with the float32 statistics. */
function batchNormComposed(x: Tensor, mean: Float32Array, vr: Float32Array, w: Tensor | null, b: Tensor | null, relu: boolean, res: Tensor | null): Tensor {
  const c = mean.length;
  const inv = Float32Array.from(vr, (v) => 1 / Math.sqrt(v + 1e-5));
  const shift = Float32Array.from(mean, (m, i) => -m * inv[i]!);
  let y = ops.add(ops.mulChannel(x, tensor(inv, [c])), tensor(shift, [1, c, 1, 1, 1]));
  if (w) y = ops.mulChannel(y, w);
  if (b) y = ops.add(y, channelView(b, x.rank));
  if (relu) y = ops.relu(y);
  return res ? ops.add(y, res) : y;
}

for (const backend of testBackends()) {
  describe(`fused inference ops equal their composition [${backend}]`, () => {
    before(() => setBackend(backend));
    const r = new Rng(7);

    it('groupNorm (+ReLU): odd sizes, groups of several channels, with and without the affine', async () => {
      for (const [shape, g] of [
        [[2, 6, 3, 5, 7], 3],
        [[1, 16, 9, 4, 5], 8],
        [[1, 4, 2, 3, 1], 1],
      ] as const) {
        const c = shape[1];
        const x = tensor(rnd(size(shape), r, -3, 5), [...shape]);
        const w = tensor(rnd(c, r, 0.5, 1.5), [c]);
        const b = tensor(rnd(c, r), [c]);
        for (const [ww, bb] of [
          [w, b],
          [null, null],
        ] as const)
          for (const relu of [false, true]) {
            const fused = noGrad(() => ops.groupNorm(x, g, ww, bb, { relu }));
            const composed = noGrad(() => groupNormComposed(x, g, ww, bb, relu));
            const got = await fused.data();
            assertSame(got, await composed.data(), `groupNorm ${shape} g${g} affine=${!!ww} relu=${relu}`);
            if (relu) assert.ok(got.some((v) => v === 0) && got.some((v) => v > 0), 'the ReLU is exercised');
          }
      }
    });

    it('batchNormEval (+ReLU, +residual): odd sizes, with and without the affine', async () => {
      const shape = [2, 5, 3, 4, 7];
      const c = shape[1]!;
      const x = tensor(rnd(size(shape), r, -2, 2), shape);
      const res = tensor(rnd(size(shape), r), shape);
      const mean = rnd(c, r, -0.5, 0.5);
      const vr = rnd(c, r, 0.2, 2);
      const w = tensor(rnd(c, r, 0.5, 1.5), [c]);
      const b = tensor(rnd(c, r), [c]);
      for (const [ww, bb] of [
        [w, b],
        [null, b],
        [null, null],
      ] as const)
        for (const relu of [false, true])
          for (const rr of [null, res]) {
            const fused = noGrad(() => ops.batchNormEval(x, mean, vr, ww, bb, { relu, residual: rr ?? undefined }));
            const composed = noGrad(() => batchNormComposed(x, mean, vr, ww, bb, relu, rr));
            assertSame(await fused.data(), await composed.data(), `batchNormEval affine=${!!ww}/${!!bb} relu=${relu} residual=${!!rr}`);
          }
    });

    it('conv3dConcat (+ residual): 1×1, 3×3 strided and not (direct) and 3×3 with more channels (Winograd on native) equal conv3d(concat) (+ add)', async () => {
      for (const { parts, k, stride, padding, cout, sp } of [
        { parts: [3, 5], k: 1, stride: 1, padding: 0, cout: 4, sp: [5, 7, 6] },
        { parts: [2, 1, 4], k: 3, stride: 2, padding: 1, cout: 6, sp: [5, 7, 6] },
        { parts: [4, 4], k: 3, stride: 1, padding: 1, cout: 8, sp: [5, 7, 6] },
        // ≥ 16 channels in, > 16 out, rows of ≥ 16: the Winograd path on native (it gets a gathered copy)
        { parts: [16, 8], k: 3, stride: 1, padding: 1, cout: 17, sp: [4, 5, 16] },
      ]) {
        const xs = parts.map((c) => tensor(rnd(2 * c * size(sp), r), [2, c, ...sp]));
        const cin = parts.reduce((a, b) => a + b, 0);
        const w = tensor(rnd(cout * cin * k ** 3, r, -0.3, 0.3), [cout, cin, k, k, k]);
        const bias = tensor(rnd(cout, r), [cout]);
        const fused = noGrad(() => ops.conv3dConcat(xs, w, bias, { stride, padding }));
        const composed = noGrad(() => ops.conv3d(ops.concatChannels(xs), w, bias, { stride, padding }));
        assert.deepEqual(fused.shape, composed.shape);
        assertSame(await fused.data(), await composed.data(), `conv3dConcat ${parts} k${k} s${stride}`);
        // + a residual, from the concatenation and from a single input
        const res = tensor(rnd(size(composed.shape), r), composed.shape);
        const withRes = noGrad(() => ops.conv3dConcat(xs, w, bias, { stride, padding, residual: res }));
        assertSame(await withRes.data(), await noGrad(() => ops.add(composed, res)).data(), `conv3dConcat ${parts} k${k} s${stride} + residual`);
        const w1 = tensor(rnd(cout * parts[0]! * k ** 3, r, -0.3, 0.3), [cout, parts[0]!, k, k, k]);
        const single = noGrad(() => ops.conv3dConcat([xs[0]!], w1, null, { stride, padding, residual: res }));
        const singleRef = noGrad(() => ops.add(ops.conv3d(xs[0]!, w1, null, { stride, padding }), res));
        assertSame(await single.data(), await singleRef.data(), `conv3d ${parts[0]} k${k} s${stride} + residual`);
      }
    });

    it('conv3dConcat with a BatchNorm(eval)/ReLU/residual epilogue equals conv3d then batchNormEval (+ReLU, +residual)', async () => {
      for (const { parts, k, padding, cout, sp } of [
        { parts: [5], k: 3, padding: 1, cout: 6, sp: [4, 5, 7] },
        { parts: [3, 2], k: 1, padding: 0, cout: 4, sp: [3, 5, 9] },
        { parts: [16], k: 3, padding: 1, cout: 17, sp: [4, 5, 16] }, // Winograd on native: the epilogue as a second pass
      ]) {
        const xs = parts.map((c) => tensor(rnd(2 * c * size(sp), r), [2, c, ...sp]));
        const cin = parts.reduce((a, b) => a + b, 0);
        const w = tensor(rnd(cout * cin * k ** 3, r, -0.3, 0.3), [cout, cin, k, k, k]);
        const bias = tensor(rnd(cout, r), [cout]);
        const runningMean = rnd(cout, r, -0.3, 0.3);
        const runningVar = rnd(cout, r, 0.3, 2);
        const bw = tensor(rnd(cout, r, 0.5, 1.5), [cout]);
        const bb = tensor(rnd(cout, r), [cout]);
        const conv = noGrad(() => ops.conv3d(ops.concatChannels(xs), w, bias, { padding }));
        const res = tensor(rnd(size(conv.shape), r), conv.shape);
        for (const [relu, rr, affine] of [
          [true, res, true],
          [true, null, true],
          [false, res, false],
          [true, null, false],
        ] as const) {
          const bnEval = { runningMean, runningVar, eps: 1e-5, w: affine ? bw : null, b: affine ? bb : null };
          const fused = noGrad(() => ops.conv3dConcat(xs, w, bias, { padding, bnEval, relu, residual: rr ?? undefined }));
          const composed = noGrad(() => batchNormComposed(conv, runningMean, runningVar, bnEval.w, bnEval.b, relu, rr));
          assertSame(await fused.data(), await composed.data(), `conv ${parts} k${k} + bn relu=${relu} residual=${!!rr} affine=${affine}`);
        }
        // ReLU and a residual without a BatchNorm
        const plain = noGrad(() => ops.conv3dConcat(xs, w, bias, { padding, relu: true, residual: res }));
        assertSame(await plain.data(), await noGrad(() => ops.add(ops.relu(conv), res)).data(), `conv ${parts} k${k} + relu + residual`);
      }
    });

    it('convTranspose3d with bias: k2 s2 (large and small inputs: different native paths), odd sizes, and k3 s2 p1 equal convTranspose3d + bias', async () => {
      for (const { cin, cout, k, stride, padding, sp } of [
        // more than 128 input positions: the direct (patch) path on native, not the few-positions GEMM
        { cin: 3, cout: 5, k: 2, stride: 2, padding: 0, sp: [5, 6, 7] },
        { cin: 16, cout: 16, k: 2, stride: 2, padding: 0, sp: [3, 7, 9] },
        { cin: 2, cout: 3, k: 2, stride: 2, padding: 0, sp: [2, 3, 5] },
        { cin: 4, cout: 3, k: 3, stride: 2, padding: 1, sp: [3, 4, 5] },
      ]) {
        const x = tensor(rnd(2 * cin * size(sp), r), [2, cin, ...sp]);
        const w = tensor(rnd(cin * cout * k ** 3, r), [cin, cout, k, k, k]);
        const b = tensor(rnd(cout, r), [cout]);
        const fused = noGrad(() => ops.convTranspose3d(x, w, { stride, padding, bias: b }));
        const composed = noGrad(() => ops.add(ops.convTranspose3d(x, w, { stride, padding }), channelView(b, 5)));
        assert.deepEqual(fused.shape, composed.shape);
        assertSame(await fused.data(), await composed.data(), `convTranspose3d ${cin}->${cout} k${k} s${stride} p${padding}`);
      }
    });

    it('with a gradient recorded the ops take the composition: gradients equal the composition gradients', async () => {
      const shape = [1, 4, 3, 2, 5];
      const xv = rnd(size(shape), r, -2, 2);
      const gradsOf = async (f: (x: Tensor, w: Tensor) => Tensor) => {
        const x = tensor(xv, shape, { requiresGrad: true });
        const w = tensor(Float32Array.of(0.5, 1.5, -1, 2), [4], { requiresGrad: true });
        ops.sum(ops.mul(f(x, w), f(x, w))).backward();
        return [await x.grad!.data(), await w.grad!.data()];
      };
      const m = rnd(4, r, -0.2, 0.2);
      const v = rnd(4, r, 0.5, 1.5);
      // A 1×1 conv weight [1, 8, 1, 1, 1] made of w twice (so that it gets a gradient through both halves).
      const pairWeight = (w: Tensor) => ops.reshape(ops.concatChannels([ops.reshape(w, [1, 4]), ops.reshape(w, [1, 4])]), [1, 8, 1, 1, 1]);
      const cases: [string, (x: Tensor, w: Tensor) => Tensor, (x: Tensor, w: Tensor) => Tensor][] = [
        ['groupNorm+relu', (x, w) => ops.groupNorm(x, 2, w, null, { relu: true }), (x, w) => groupNormComposed(x, 2, w, null, true)],
        ['batchNormEval+relu+res', (x, w) => ops.batchNormEval(x, m, v, w, null, { relu: true, residual: x }), (x, w) => batchNormComposed(x, m, v, w, null, true, x)],
        ['conv3dConcat', (x, w) => ops.conv3dConcat([x, ops.relu(x)], pairWeight(w), null), (x, w) => ops.conv3d(ops.concatChannels([x, ops.relu(x)]), pairWeight(w), null)],
      ];
      for (const [what, fused, composed] of cases) {
        const [gx, gw] = await gradsOf(fused);
        const [ex, ew] = await gradsOf(composed);
        assertSame(gx!, ex!, `${what} dx`);
        assertSame(gw!, ew!, `${what} dw`);
        assert.ok(
          gx!.some((g) => g !== 0),
          `${what}: a non-zero gradient`,
        );
      }
    });

    it('the native backend has the fused kernels (the paths above are the fused ones there)', { skip: backend !== 'native' }, () => {
      for (const k of ['groupNormAct', 'batchNormEvalAct', 'conv3dFused', 'conv3dGradInputBias'] as const) assert.ok(hasKernel(k, 'native'), k);
    });
  });
}
