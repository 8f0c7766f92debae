/**
 * The shifted-window attention mask built as one batched GEMM of two small factors
 * (attentionMaskFactors) equals the directly filled mask (attentionMask) exactly, on every backend.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { initTestBackends, testBackends } from '../helpers/backends.js';
import { matmul, setBackend, tensor, tidy } from '../../src/engine/index.js';
import { attentionMask, attentionMaskFactors, regionIds } from '../../src/models/swin-windows.js';

await initTestBackends();

/** The GEMM of the factors, read asynchronously (WebGPU has no synchronous reads). */
async function product(ids: Float32Array, nW: number, n: number): Promise<Float32Array> {
  const f = attentionMaskFactors(ids, nW, n);
  const y = tidy(() => matmul(tensor(f.a, [nW, n, f.k]), tensor(f.b, [nW, n, f.k]), { transB: true }));
  try {
    return await y.data();
  } finally {
    y.dispose();
  }
}

for (const backend of testBackends()) {
  describe(`swin attention mask factors [${backend}]`, () => {
    before(() => setBackend(backend));

    it('hand-computed: two windows of three tokens', async () => {
      // Window 0: regions 4, 4, 7; window 1: 2, 5, 8 (three regions, so k = 4).
      const ids = Float32Array.from([4, 4, 7, 2, 5, 8]);
      assert.equal(attentionMaskFactors(ids, 2, 3).k, 4);
      const M = -100;
      assert.deepEqual(await product(ids, 2, 3), Float32Array.from([0, 0, M, 0, 0, M, M, M, 0, 0, M, M, M, 0, M, M, M, 0]));
    });

    it('a shifted 14³ grid in 7³ windows (8 windows of 343 tokens): equal to the filled mask', async () => {
      const { ids, nW, n } = regionIds([14, 14, 14], [7, 7, 7], [3, 3, 3]);
      const want = attentionMask(ids, nW, n);
      assert.ok(want.includes(-100) && want.includes(0));
      assert.deepEqual(await product(ids, nW, n), want);
    });
  });
}
