import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { initTestBackends, testBackends } from '../helpers/backends.js';
import { isGradEnabled, memory, noGrad, parameter, setBackend, tensor, tidy, type Tensor } from '../../src/engine/index.js';
import { registerKernel, getKernel } from '../../src/engine/registry.js';
import { NonFiniteError, setCheckNumerics, setKernelObserver } from '../../src/engine/run-kernel.js';
import * as ops from '../../src/engine/ops/index.js';

await initTestBackends();

describe('engine: kernel registry', () => {
  it('registering a kernel a second time throws, naming kernel and backend', () => {
    const add = getKernel('add', 'reference');
    assert.throws(() => registerKernel('add', 'reference', add), /registerKernel\('add'\): backend 'reference' already has this kernel/);
    assert.equal(getKernel('add', 'reference'), add, 'the first registration stays');
  });
});

for (const backend of testBackends()) {
  describe(`engine: runKernel instrumentation [${backend}]`, () => {
    before(() => setBackend(backend));
    after(() => {
      setCheckNumerics(false);
      setKernelObserver(null);
    });

    it('every op reaches its kernels through the observer, forward and backward', () => {
      const seen: string[] = [];
      setKernelObserver((name, be) => {
        if (be === backend) seen.push(name);
      });
      try {
        const x = parameter([1, -2, 3], [1, 3]);
        const y = ops.sum(ops.leakyRelu(ops.scale(x, 2), 0.1));
        y.backward();
      } finally {
        setKernelObserver(null);
      }
      // forward: scale, leakyRelu, sum; backward: fillFromScalar (sum), leakyReluGrad, scale.
      assert.deepEqual(seen, ['scale', 'leakyRelu', 'sum', 'fillFromScalar', 'leakyReluGrad', 'scale']);
    });

    if (backend !== 'webgpu') {
      it('UXNET_CHECK_NUMERICS stops at the first kernel that makes Inf or NaN and names it', () => {
        setCheckNumerics(true);
        try {
          const x = tensor([1, 3e38, 2], [3]);
          const y = ops.scale(x, 0.5); // finite: no error
          assert.equal(y.dataSync()[1], Math.fround(1.5e38));
          assert.throws(
            () => ops.scale(x, 10),
            (e: unknown) => {
              assert.ok(e instanceof NonFiniteError);
              assert.equal(e.kernel, 'scale');
              assert.equal(e.index, 1);
              assert.equal(e.value, Infinity);
              assert.match(e.message, /kernel 'scale' on backend '\w+' produced Infinity at flat index 1/);
              return true;
            },
          );
          const z = tensor([0, 0], [1, 2]);
          assert.throws(() => ops.softmax(ops.scale(ops.add(z, tensor([Infinity, 0], [1, 2])), -1)), /kernel 'add' .*produced Infinity at flat index 0/);
        } finally {
          setCheckNumerics(false);
        }
        // off again: the same op passes through.
        assert.equal(ops.scale(tensor([3e38], [1]), 10).dataSync()[0], Infinity);
      });
    }
  });
}

describe('engine: UXNET_CHECK_NUMERICS from the environment', () => {
  it('is read at start-up', () => {
    const engine = new URL('../../src/engine/index.js', import.meta.url).href;
    const script = `import('${new URL('../../src/backends/reference/index.js', import.meta.url).href}').then(() => import('${engine}')).then((e) => {
      e.setBackend('reference');
      try { e.scale(e.tensor([1e38], [1]), 100); console.log('no error'); } catch (err) { console.log(err.message); }
    });`;
    const run = (value: string | undefined) =>
      execFileSync(process.execPath, ['--input-type=module', '-e', script], {
        env: { ...process.env, UXNET_CHECK_NUMERICS: value, UXNET_NATIVE: '0' },
        encoding: 'utf8',
        cwd: fileURLToPath(new URL('.', import.meta.url)),
      }).trim();
    assert.equal(run('1'), "UXNET_CHECK_NUMERICS: kernel 'scale' on backend 'reference' produced Infinity at flat index 0 of its output");
    assert.equal(run('0'), 'no error');
  });
});

describe('engine: grad mode is never carried across await', () => {
  it('noGrad refuses an async function and leaves grad mode as it was', async () => {
    assert.equal(isGradEnabled(), true);
    let insideSync: boolean | null = null;
    assert.throws(
      () =>
        noGrad(async () => {
          insideSync = isGradEnabled();
          await Promise.resolve();
        }),
      /noGrad\(\) takes a synchronous function/,
    );
    assert.equal(insideSync, false, 'the synchronous prefix ran with grad off');
    assert.equal(isGradEnabled(), true, 'grad mode restored before the promise settles');
    await new Promise((r) => setTimeout(r, 0));
    assert.equal(isGradEnabled(), true);
  });

  it('two interleaved tasks each see their own mode', async () => {
    setBackend('reference');
    const w = parameter([1, 2], [2]);
    const seen: boolean[] = [];
    const a = (async () => {
      const y = noGrad(() => ops.scale(w, 2));
      await Promise.resolve();
      seen.push(y.requiresGrad);
    })();
    const b = (async () => {
      await Promise.resolve();
      // Runs while task a is suspended: must record the graph.
      seen.push(ops.scale(w, 2).requiresGrad);
    })();
    await Promise.all([a, b]);
    assert.deepEqual(seen.sort(), [false, true]);
  });
});

describe('engine: tidy keeps what its result reaches', () => {
  it('keeps tensors nested in arrays, objects, Maps and Sets at any depth; frees the rest', async () => {
    setBackend('reference');
    const before = memory().storages;
    const deep = tidy(() => {
      const t = (v: number) => ops.scale(tensor([v], [1]), 1);
      t(99); // garbage
      let nest: unknown = { leaf: t(1) };
      for (let i = 0; i < 8; i++) nest = [{ inner: nest }];
      const m = new Map<string, unknown>([['a', { arr: [[[t(2)]]] }]]);
      const s = new Set([t(3)]);
      const keyed = new Map<Tensor, number>([[t(4), 0]]);
      const cyclic: { self?: unknown; x: Tensor } = { x: t(5) };
      cyclic.self = cyclic;
      return { nest, m, s, keyed, cyclic };
    });
    // six inputs, scratch tensor and its input freed: 5 kept outputs remain (inputs disposed).
    assert.equal(memory().storages - before, 5);
    let leaf: unknown = deep.nest;
    for (let i = 0; i < 8; i++) leaf = (leaf as [{ inner: unknown }])[0].inner;
    const values = [(leaf as { leaf: Tensor }).leaf, (deep.m.get('a') as { arr: Tensor[][][] }).arr[0]![0]![0]!, [...deep.s][0]!, [...deep.keyed.keys()][0]!, deep.cyclic.x];
    assert.deepEqual(await Promise.all(values.map(async (t) => (await t.data())[0])), [1, 2, 3, 4, 5]);
    for (const t of values) t.dispose();
    assert.equal(memory().storages, before);
  });
});
