import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { initTestBackends, testBackends } from '../helpers/backends.js';
import { memory, noGrad, parameter, setBackend, tensor, tidy, keep, releaseGraph } from '../../src/engine/index.js';
import * as ops from '../../src/engine/ops/index.js';

await initTestBackends();

for (const backend of testBackends()) {
  describe(`engine: autograd and memory [${backend}]`, () => {
    before(() => setBackend(backend));

    it('gradients accumulate across backward calls until reset', async () => {
      const w = parameter([1, 2, 3], [3]);
      for (let k = 0; k < 2; k++) ops.sum(ops.scale(w, 2)).backward();
      assert.deepEqual(Array.from(await w.grad!.data()), [4, 4, 4]);
      w.grad!.dispose();
      w.grad = null;
      ops.sum(w).backward();
      assert.deepEqual(Array.from(await w.grad!.data()), [1, 1, 1]);
    });

    it('a tensor used twice gets the sum of both paths', async () => {
      const x = parameter([1, -2], [2]);
      // y = x + 3x → dy/dx = 4
      ops.sum(ops.add(x, ops.scale(x, 3))).backward();
      assert.deepEqual(Array.from(await x.grad!.data()), [4, 4]);
    });

    it('noGrad records nothing', async () => {
      const x = parameter([1, 2], [2]);
      const y = noGrad(() => ops.scale(x, 2));
      assert.equal(y.requiresGrad, false);
      assert.throws(() => ops.sum(y).backward(), /does not require grad/);
    });

    it('backward needs a scalar or an explicit gradient', async () => {
      const x = parameter([1, 2], [2]);
      assert.throws(() => ops.scale(x, 2).backward(), /one-element/);
    });

    it('tidy frees intermediates; backward and dispose free the rest', async () => {
      const before = memory().storages;
      const x = tensor(
        new Float32Array(2 * 3 * 4 * 4 * 4).map((_, i) => Math.sin(i)),
        [2, 3, 4, 4, 4],
      );
      const w = parameter(
        new Float32Array(4 * 3 * 27).map((_, i) => Math.cos(i) / 10),
        [4, 3, 3, 3, 3],
      );
      const loss = tidy(() => ops.mean(ops.leakyRelu(ops.instanceNorm(ops.conv3d(x, w, null, { padding: 1 })))));
      loss.backward();
      assert.ok(w.grad, 'weight has a gradient');
      for (const t of [x, w, loss, w.grad!]) t.dispose();
      assert.equal(memory().storages, before, 'every storage is released');
    });

    it('releaseGraph frees a graph that is never back-propagated', async () => {
      const before = memory().storages;
      const w = parameter([1, 2, 3, 4], [1, 4]);
      const y = tidy(() => ops.softmax(ops.scale(w, 2)));
      releaseGraph(y);
      y.dispose();
      w.dispose();
      assert.equal(memory().storages, before);
    });

    it('keep() survives tidy; disposed tensors give a clear error', async () => {
      let kept!: ReturnType<typeof tensor>;
      tidy(() => {
        kept = keep(tensor([1, 2], [2]));
        tensor([3], [1]);
        return null;
      });
      assert.deepEqual(Array.from(await kept.data()), [1, 2]);
      kept.dispose();
      assert.throws(() => kept.data(), /disposed/);
    });

    it('reshape shares storage and routes gradients', async () => {
      const x = parameter([1, 2, 3, 4, 5, 6], [2, 3]);
      const y = ops.reshape(x, [3, 2]);
      assert.deepEqual(y.shape, [3, 2]);
      ops.sum(ops.scale(y, 5)).backward();
      assert.deepEqual(Array.from(await x.grad!.data()), [5, 5, 5, 5, 5, 5]);
    });

    it('shape errors name the op and the shapes', async () => {
      const x = tensor(new Float32Array(2 * 3 * 4 * 4 * 4), [2, 3, 4, 4, 4]);
      const w = tensor(new Float32Array(5 * 2 * 27), [5, 2, 3, 3, 3]);
      assert.throws(() => ops.conv3d(x, w), /conv3d: weight \[5, 2, 3, 3, 3\] expects 2 input channels/);
      assert.throws(() => ops.add(x, w), /add: shapes/);
      assert.throws(() => ops.instanceNorm(tensor([1, 2], [1, 2, 1])), /more than one spatial element/);
    });
  });
}
