/** Module base class: PyTorch key order, strict loading reports, seeded initialisation. */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/backends/index.js';
import { setBackend, listBackends, tensor, type Tensor } from '../../src/engine/index.js';
import { Conv3d, ConvTranspose3d, LayerNorm, Module, ModuleList, Rng, Sequential, StateDictError, initContext, type InitOptions } from '../../src/nn/index.js';

class Inner extends Module {
  readonly conv: Conv3d;
  readonly gamma: Tensor;
  constructor(opts: InitOptions) {
    super();
    const init = initContext(opts);
    this.conv = this.registerModule('conv', new Conv3d(2, 4, 3, { padding: 1, init }));
    // Registered after the child, listed before it: own parameters come first, as in PyTorch.
    this.gamma = this.createParameter(init, 'gamma', [4], (n) => new Float32Array(n).fill(0.5));
  }
}

class Outer extends Module {
  constructor(opts: InitOptions = {}) {
    super();
    const init = initContext(opts);
    this.registerModule('layers', new ModuleList([new Sequential([new LayerNorm(2, { init }), new Conv3d(2, 2, 1, { init })]), new Inner({ init })]));
    this.registerModule('norm0', new LayerNorm(4, { init }));
  }
}

const keysOf = (m: Module) => m.namedParameters().map(([k]) => k);

describe('Module', () => {
  before(() => setBackend(listBackends().includes('reference') ? 'reference' : listBackends()[0]!));

  it('lists own parameters first, then children in registration order, with numeric Sequential names', () => {
    const m = new Outer();
    assert.deepEqual(keysOf(m), [
      'layers.0.0.weight',
      'layers.0.0.bias',
      'layers.0.1.weight',
      'layers.0.1.bias',
      'layers.1.gamma',
      'layers.1.conv.weight',
      'layers.1.conv.bias',
      'norm0.weight',
      'norm0.bias',
    ]);
    assert.deepEqual([...m.stateDict().keys()], keysOf(m));
    assert.equal(m.numParameters(), 2 + 2 + 4 + 2 + 4 + 4 * 2 * 27 + 4 + 4 + 4);
    assert.deepEqual(
      m.namedParameterShapes().map(([, s]) => s),
      m.namedParameters().map(([, t]) => t.shape),
    );
  });

  it('rejects duplicate and dotted names', () => {
    const m = new Outer();
    assert.throws(() => m.registerModule('norm0', new LayerNorm(2)), /already used/);
    assert.throws(() => m.registerModule('a.b', new LayerNorm(2)), /contain no '\.'/);
  });

  it('loads a state dict in place and reports loaded keys', () => {
    const a = new Outer({ seed: 1 });
    const b = new Outer({ seed: 2 });
    const before = b.parameters();
    const report = b.loadStateDict(a.stateDict());
    assert.deepEqual(report.loaded, keysOf(a));
    assert.deepEqual([report.missing, report.unexpected, report.mismatched], [[], [], []]);
    b.parameters().forEach((t, i) => assert.equal(t, before[i], 'parameters must be updated in place'));
    const sa = a.stateDict();
    for (const [k, t] of b.stateDict()) assert.deepEqual(t.dataSync(), sa.get(k)!.dataSync());
    // Raw {shape, data} values (as read from safetensors) and plain objects work too.
    const raw = Object.fromEntries([...sa].map(([k, t]) => [k, { shape: t.shape, data: t.dataSync() }]));
    new Outer({ seed: 3 }).loadStateDict(raw);
  });

  it('strict loading names every missing, unexpected and mismatched key, and changes nothing', () => {
    const m = new Outer({ seed: 5 });
    const snapshot = m.parameters().map((t) => t.dataSync());
    const sd = new Map<string, { shape: readonly number[]; data: Float32Array }>();
    for (const [k, t] of new Outer({ seed: 6 }).stateDict()) sd.set(k, { shape: t.shape, data: t.dataSync() });
    sd.delete('layers.1.gamma');
    sd.set('layers.1.extra', { shape: [1], data: new Float32Array(1) });
    sd.set('norm0.weight', { shape: [5], data: new Float32Array(5) });
    let err: unknown;
    try {
      m.loadStateDict(sd);
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof StateDictError);
    assert.deepEqual(err.report.missing, ['layers.1.gamma']);
    assert.deepEqual(err.report.unexpected, ['layers.1.extra']);
    assert.deepEqual(err.report.mismatched, [{ key: 'norm0.weight', expected: [4], got: [5] }]);
    assert.match(err.message, /layers\.1\.gamma/);
    assert.match(err.message, /layers\.1\.extra/);
    assert.match(err.message, /norm0\.weight expected \[4\] got \[5\]/);
    m.parameters().forEach((t, i) => assert.deepEqual(t.dataSync(), snapshot[i], 'a failed load must not write anything'));
  });

  it('non-strict loading skips missing/unexpected keys but still refuses shape mismatches', () => {
    const m = new Outer();
    const sd = new Map([
      ['norm0.weight', tensor([1, 2, 3, 4], [4])],
      ['bogus', tensor([1], [1])],
    ]);
    const r = m.loadStateDict(sd, { strict: false });
    assert.deepEqual(r.loaded, ['norm0.weight']);
    assert.deepEqual(r.unexpected, ['bogus']);
    assert.equal(r.missing.length, keysOf(m).length - 1);
    assert.deepEqual([...m.stateDict().get('norm0.weight')!.dataSync()], [1, 2, 3, 4]);
    assert.throws(() => m.loadStateDict(new Map([['norm0.weight', tensor([1, 2], [2])]]), { strict: false }), StateDictError);
  });

  it('train()/eval() propagate to every descendant', () => {
    const m = new Outer().eval();
    assert.ok(m.namedModules().every(([, x]) => !x.training));
    m.train();
    assert.ok(m.namedModules().every(([, x]) => x.training));
  });

  it('initialises from the seed: reproducible, and with PyTorch default bounds', () => {
    const a = new Conv3d(3, 6, 3, { groups: 3, seed: 42 });
    const b = new Conv3d(3, 6, 3, { groups: 3, seed: 42 });
    const c = new Conv3d(3, 6, 3, { groups: 3, seed: 43 });
    assert.deepEqual(a.weight.dataSync(), b.weight.dataSync());
    assert.notDeepEqual(a.weight.dataSync(), c.weight.dataSync());
    const bound = 1 / Math.sqrt((3 / 3) * 27); // fan_in = in/groups · k³
    for (const t of [a.weight, a.bias!]) {
      const v = t.dataSync();
      const m = Math.max(...v.map(Math.abs));
      assert.ok(m <= bound && m > 0.8 * bound, `max ${m} vs bound ${bound}`);
    }
    // ConvTranspose3d: PyTorch's fan_in is weight dim 1 (out channels) · k³.
    const t = new ConvTranspose3d(8, 2, 2, { stride: 2, seed: 1 });
    assert.deepEqual(t.weight.shape, [8, 2, 2, 2, 2]);
    const mt = Math.max(...t.weight.dataSync().map(Math.abs));
    assert.ok(mt <= 1 / Math.sqrt(2 * 8) && mt > 0.8 / Math.sqrt(2 * 8));
    const ln = new LayerNorm(3);
    assert.deepEqual([...ln.weight.dataSync()], [1, 1, 1]);
    assert.deepEqual([...ln.bias.dataSync()], [0, 0, 0]);
    assert.equal(ln.eps, 1e-6);
  });

  it('Rng: deterministic uniform in [0,1) and a plausible normal', () => {
    const r1 = new Rng(7, 'mulberry32');
    const r2 = new Rng(7, 'mulberry32');
    const xs = Array.from({ length: 20000 }, () => r1.random());
    assert.deepEqual(
      xs.slice(0, 5),
      Array.from({ length: 5 }, () => r2.random()),
    );
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.ok(Math.abs(mean - 0.5) < 0.01);
    const n = new Rng(3, 'mulberry32').normalArray(20000, 1, 2);
    const nm = n.reduce((a, b) => a + b, 0) / n.length;
    const nv = n.reduce((a, b) => a + (b - nm) ** 2, 0) / n.length;
    assert.ok(Math.abs(nm - 1) < 0.05 && Math.abs(Math.sqrt(nv) - 2) < 0.05, `mean ${nm} std ${Math.sqrt(nv)}`);
  });

  it('dispose() frees every parameter', () => {
    const m = new Outer();
    const ps = m.parameters();
    m.dispose();
    assert.ok(ps.every((t) => t.isDisposed));
  });
});
