import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Conv3dAttrs, KTensor, Triple } from '../../src/engine/kernels.js';
import { getBackend, getKernel, hasKernel, listBackends } from '../../src/engine/registry.js';
import { erf, erfc, referenceBackend, referenceKernels as K, referenceMemory } from '../../src/backends/reference/index.js';
import { fma32 } from '../../src/backends/reference/adamw.js';
import { get } from '../helpers/fixtures.js';

// ---------------------------------------------------------------------------------------------
// helpers

function T(shape: readonly number[], values?: ArrayLike<number> | ((i: number) => number)): KTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float32Array(n);
  if (typeof values === 'function') for (let i = 0; i < n; i++) d[i] = values(i);
  else if (values) {
    assert.equal(values.length, n, `T: ${values.length} values for shape [${shape.join(', ')}]`);
    d.set(values);
  }
  return { shape: [...shape], data: d };
}

function arr(t: KTensor): Float32Array {
  return t.data as Float32Array;
}

/** Deterministic pseudo-random numbers in [-1, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 31 - 1;
  };
}

function rand(shape: readonly number[], seed: number, scale = 1, offset = 0): KTensor {
  const r = rng(seed);
  return T(shape, () => offset + scale * r());
}

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol = 0, what = ''): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} vs ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) assert.fail(`${what}[${i}]: got ${a}, expected ${e} (atol ${atol}, rtol ${rtol})`);
  }
}

function dot(a: KTensor, b: KTensor): number {
  const x = arr(a);
  const y = arr(b);
  assert.equal(x.length, y.length);
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * y[i]!;
  return s;
}

function attrs(stride: Triple, padding: Triple, groups = 1): Conv3dAttrs {
  return { stride, padding, groups };
}

/** conv3d straight from its definition, in float64, with explicit bounds checks. */
function naiveConv(x: KTensor, w: KTensor, b: KTensor | null, a: Conv3dAttrs): { shape: number[]; data: Float64Array } {
  const [N, Cin, D, H, W] = x.shape as number[] as [number, number, number, number, number];
  const [Cout, cpg, KD, KH, KW] = w.shape as number[] as [number, number, number, number, number];
  const [sd, sh, sw] = a.stride;
  const [pd, ph, pw] = a.padding;
  const OD = Math.floor((D + 2 * pd - KD) / sd) + 1;
  const OH = Math.floor((H + 2 * ph - KH) / sh) + 1;
  const OW = Math.floor((W + 2 * pw - KW) / sw) + 1;
  const opg = Cout / a.groups;
  const xd = arr(x);
  const wd = arr(w);
  const y = new Float64Array(N * Cout * OD * OH * OW);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < Cout; o++)
      for (let od = 0; od < OD; od++)
        for (let oh = 0; oh < OH; oh++)
          for (let ow = 0; ow < OW; ow++) {
            let s = b ? arr(b)[o]! : 0;
            const g = Math.floor(o / opg);
            for (let ci = 0; ci < cpg; ci++)
              for (let kd = 0; kd < KD; kd++)
                for (let kh = 0; kh < KH; kh++)
                  for (let kw = 0; kw < KW; kw++) {
                    const id = od * sd + kd - pd;
                    const ih = oh * sh + kh - ph;
                    const iw = ow * sw + kw - pw;
                    if (id < 0 || id >= D || ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                    const xv = xd[(((n * Cin + g * cpg + ci) * D + id) * H + ih) * W + iw]!;
                    s += wd[(((o * cpg + ci) * KD + kd) * KH + kh) * KW + kw]! * xv;
                  }
            y[(((n * Cout + o) * OD + od) * OH + oh) * OW + ow] = s;
          }
  return { shape: [N, Cout, OD, OH, OW], data: y };
}

/** Central finite difference of L(x) = Σ dy·f(x) with respect to every element of x. */
function numericGrad(f: (x: KTensor) => KTensor, x: KTensor, dy: KTensor, h = 1e-2): Float64Array {
  const xd = arr(x);
  const g = new Float64Array(xd.length);
  for (let i = 0; i < xd.length; i++) {
    const v = xd[i]!;
    const xp = T(x.shape, xd);
    arr(xp)[i] = v + h;
    const xm = T(x.shape, xd);
    arr(xm)[i] = v - h;
    const hp = arr(xp)[i]! - v; // the actually representable steps
    const hm = v - arr(xm)[i]!;
    g[i] = (dot(f(xp), dy) - dot(f(xm), dy)) / (hp + hm);
  }
  return g;
}

// ---------------------------------------------------------------------------------------------

describe('reference backend: storage', () => {
  it('is registered with every kernel of the contract', () => {
    assert.ok(listBackends().includes('reference'));
    assert.equal(getBackend('reference'), referenceBackend);
    for (const name of Object.keys(K) as (keyof typeof K)[]) {
      assert.ok(hasKernel(name, 'reference'), name);
      assert.equal(getKernel(name, 'reference'), K[name]);
    }
    assert.equal(Object.keys(K).length, 38); // 27 for UX-Net + 8 for the transformer networks (matmul, strided copy/scatter, roll, broadcast, sumToShape, row gather/scatter) + fused attention and its gradient + fused linear→GELU
  });

  it('upload, read, readSync and write copy; zeros are zero; free accounts bytes', async () => {
    const before = referenceMemory();
    const src = new Float32Array([1, 2, 3]);
    const h = referenceBackend.upload(src) as Float32Array;
    src[0] = 99;
    assert.deepEqual([...h], [1, 2, 3]);
    const r = referenceBackend.readSync(h, 3);
    r[1] = 42;
    assert.deepEqual([...referenceBackend.readSync(h, 3)], [1, 2, 3]);
    const ra = await referenceBackend.read(h, 3);
    ra[2] = 7;
    assert.deepEqual([...(await referenceBackend.read(h, 3))], [1, 2, 3]);
    const z = referenceBackend.zeros(5) as Float32Array;
    assert.deepEqual([...z], [0, 0, 0, 0, 0]);
    const w = new Float32Array([4, 5, 6]);
    referenceBackend.write(h, w);
    w[0] = 0;
    assert.deepEqual([...referenceBackend.readSync(h, 3)], [4, 5, 6]);
    assert.deepEqual(referenceMemory(), { bytes: before.bytes + 32, count: before.count + 2 });
    const y = K.add(T([2], [1, 2]), T([2], [3, 4]));
    assert.deepEqual(referenceMemory(), { bytes: before.bytes + 40, count: before.count + 3 });
    referenceBackend.free(h);
    referenceBackend.free(z);
    referenceBackend.free(y.data);
    assert.deepEqual(referenceMemory(), before);
  });
});

describe('reference backend: conv3d', () => {
  it('1-channel 3×3×3 all-ones kernel with padding 1 sums each neighbourhood', () => {
    const x = T([1, 1, 3, 3, 3], (i) => i);
    const w = T([1, 1, 3, 3, 3], () => 1);
    const y = K.conv3d(x, w, T([1], [0.5]), attrs([1, 1, 1], [1, 1, 1]));
    assert.deepEqual(y.shape, [1, 1, 3, 3, 3]);
    // centre: sum 0..26 = 351; corner (0,0,0): x at d,h,w ∈ {0,1} = 0+1+3+4+9+10+12+13 = 52
    assert.equal(arr(y)[13], 351.5);
    assert.equal(arr(y)[0], 52.5);
    // corner (2,2,2): indices {13,14,16,17,22,23,25,26} = 156
    assert.equal(arr(y)[26], 156.5);
  });

  it('a known asymmetric kernel is cross-correlation, not convolution', () => {
    // 1-D along W: x = [1, 2, 3, 4], w = [1, 10, 100], no padding -> [321, 432]
    const x = T([1, 1, 1, 1, 4], [1, 2, 3, 4]);
    const w = T([1, 1, 1, 1, 3], [1, 10, 100]);
    const y = K.conv3d(x, w, null, attrs([1, 1, 1], [0, 0, 0]));
    assert.deepEqual(y.shape, [1, 1, 1, 1, 2]);
    assert.deepEqual([...arr(y)], [321, 432]);
  });

  it('output sizes follow floor((n + 2p − k)/s) + 1', () => {
    const cases: [number[], number[], Triple, Triple, number[]][] = [
      [
        [1, 1, 5, 5, 5],
        [1, 1, 3, 3, 3],
        [2, 2, 2],
        [1, 1, 1],
        [3, 3, 3],
      ],
      [
        [1, 1, 4, 4, 4],
        [1, 1, 2, 2, 2],
        [2, 2, 2],
        [0, 0, 0],
        [2, 2, 2],
      ],
      [
        [1, 1, 6, 7, 8],
        [1, 1, 3, 3, 3],
        [2, 2, 2],
        [0, 0, 0],
        [2, 3, 3],
      ],
      [
        [2, 1, 8, 8, 8],
        [3, 1, 7, 7, 7],
        [2, 2, 2],
        [3, 3, 3],
        [4, 4, 4],
      ],
      [
        [1, 1, 5, 6, 7],
        [1, 1, 1, 2, 3],
        [1, 2, 3],
        [0, 1, 2],
        [5, 4, 3],
      ],
    ];
    for (const [xs, ws, s, p, o] of cases) {
      const y = K.conv3d(rand(xs, 1), rand(ws, 2), null, attrs(s, p));
      assert.deepEqual(y.shape.slice(2), o, `x ${xs} w ${ws} s ${s} p ${p}`);
    }
  });

  it('matches the definition for strides, padding, groups, bias and batch', () => {
    const cases: { x: number[]; w: number[]; s: Triple; p: Triple; g: number; bias: boolean }[] = [
      { x: [2, 3, 5, 6, 7], w: [4, 3, 3, 3, 3], s: [1, 1, 1], p: [1, 1, 1], g: 1, bias: true },
      { x: [1, 2, 7, 6, 5], w: [3, 2, 3, 2, 3], s: [2, 1, 3], p: [1, 0, 2], g: 1, bias: false },
      { x: [2, 4, 6, 6, 6], w: [4, 1, 7, 7, 7], s: [1, 1, 1], p: [3, 3, 3], g: 4, bias: true }, // depthwise
      { x: [1, 4, 8, 8, 8], w: [6, 2, 2, 2, 2], s: [2, 2, 2], p: [0, 0, 0], g: 2, bias: true },
      { x: [1, 3, 9, 8, 7], w: [2, 3, 3, 3, 3], s: [2, 2, 2], p: [0, 1, 0], g: 1, bias: false }, // non-divisible
      // kw = 3 with stride 1 along W (the fused row path): empty interior (W = 2), wide padding, no padding
      { x: [1, 2, 4, 3, 2], w: [3, 2, 3, 3, 3], s: [2, 1, 1], p: [0, 1, 1], g: 1, bias: true },
      { x: [1, 2, 5, 5, 6], w: [2, 2, 3, 3, 3], s: [1, 1, 1], p: [2, 0, 2], g: 1, bias: false },
      { x: [2, 2, 5, 5, 6], w: [2, 1, 1, 2, 3], s: [1, 2, 1], p: [0, 1, 0], g: 2, bias: true },
    ];
    for (const [i, c] of cases.entries()) {
      const x = rand(c.x, 10 + i);
      const w = rand(c.w, 20 + i);
      const b = c.bias ? rand([c.w[0]!], 30 + i) : null;
      const a = attrs(c.s, c.p, c.g);
      const y = K.conv3d(x, w, b, a);
      const ref = naiveConv(x, w, b, a);
      assert.deepEqual(y.shape, ref.shape);
      close(arr(y), Float32Array.from(ref.data), 0, 0, `case ${i}`); // float64 accumulation: exact after rounding
    }
  });

  it('grouped 1×1 expand C→4C reads channel o//4; reduce 4C→C reads 4o..4o+3', () => {
    const C = 3;
    const S = 2;
    const x = T([1, C, 1, 1, S], (i) => i + 1); // channel c holds [2c+1, 2c+2]
    const we = T([4 * C, 1, 1, 1, 1], (o) => o + 1);
    const ye = K.conv3d(x, we, null, attrs([1, 1, 1], [0, 0, 0], C));
    assert.deepEqual(ye.shape, [1, 4 * C, 1, 1, S]);
    for (let o = 0; o < 4 * C; o++) {
      const c = Math.floor(o / 4);
      assert.deepEqual([...arr(ye).subarray(o * S, o * S + S)], [(o + 1) * (2 * c + 1), (o + 1) * (2 * c + 2)], `expand out ${o}`);
    }
    const xr = T([1, 4 * C, 1, 1, S], (i) => i);
    const wr = T([C, 4, 1, 1, 1], (i) => 10 ** (i % 4));
    const yr = K.conv3d(xr, wr, null, attrs([1, 1, 1], [0, 0, 0], C));
    assert.deepEqual(yr.shape, [1, C, 1, 1, S]);
    for (let o = 0; o < C; o++)
      for (let s = 0; s < S; s++) {
        let e = 0;
        for (let j = 0; j < 4; j++) e += 10 ** j * arr(xr)[(4 * o + j) * S + s]!;
        assert.equal(arr(yr)[o * S + s], e, `reduce out ${o}`);
      }
  });

  it('gradInput and gradWeight satisfy the adjoint identity <conv(x), dy> = <x, gradInput(dy)> = <w, gradWeight(x, dy)>', () => {
    const cases: { x: number[]; w: number[]; s: Triple; p: Triple; g: number }[] = [
      { x: [2, 3, 5, 6, 7], w: [4, 3, 3, 3, 3], s: [1, 1, 1], p: [1, 1, 1], g: 1 },
      { x: [1, 2, 7, 6, 5], w: [3, 2, 3, 2, 3], s: [2, 1, 3], p: [1, 0, 2], g: 1 },
      { x: [2, 4, 6, 6, 6], w: [4, 1, 7, 7, 7], s: [1, 1, 1], p: [3, 3, 3], g: 4 },
      { x: [1, 4, 8, 8, 8], w: [6, 2, 2, 2, 2], s: [2, 2, 2], p: [0, 0, 0], g: 2 },
      { x: [1, 3, 9, 8, 7], w: [2, 3, 3, 3, 3], s: [2, 2, 2], p: [0, 1, 0], g: 1 },
      { x: [1, 2, 4, 4, 4], w: [8, 1, 1, 1, 1], s: [1, 1, 1], p: [0, 0, 0], g: 2 },
      { x: [1, 2, 4, 3, 2], w: [3, 2, 3, 3, 3], s: [2, 1, 1], p: [0, 1, 1], g: 1 },
      { x: [1, 2, 5, 5, 6], w: [2, 2, 3, 3, 3], s: [1, 1, 1], p: [2, 0, 2], g: 1 },
      { x: [2, 2, 5, 5, 6], w: [2, 1, 1, 2, 3], s: [1, 2, 1], p: [0, 1, 0], g: 2 },
    ];
    for (const [i, c] of cases.entries()) {
      const x = rand(c.x, 40 + i);
      const w = rand(c.w, 50 + i);
      const a = attrs(c.s, c.p, c.g);
      const y = K.conv3d(x, w, null, a);
      const dy = rand(y.shape, 60 + i);
      const dx = K.conv3dGradInput(dy, w, { ...a, inputShape: x.shape });
      const dw = K.conv3dGradWeight(x, dy, { ...a, weightShape: w.shape });
      assert.deepEqual(dx.shape, x.shape);
      assert.deepEqual(dw.shape, w.shape);
      const lhs = dot(y, dy);
      const scale = Math.sqrt(dot(y, y) * dot(dy, dy));
      assert.ok(Math.abs(lhs - dot(x, dx)) <= 1e-6 * scale, `case ${i}: <conv(x),dy> ${lhs} vs <x,dx> ${dot(x, dx)}`);
      assert.ok(Math.abs(lhs - dot(w, dw)) <= 1e-6 * scale, `case ${i}: <conv(x),dy> ${lhs} vs <w,dw> ${dot(w, dw)}`);
    }
  });

  it('gradInput is exactly the transpose: unit dy picks out the weight taps; uncovered voxels get 0', () => {
    // W = 6, k = 3, s = 2, p = 0 -> 2 outputs covering inputs 0..4; input 5 gets no contribution.
    const w = T([1, 1, 1, 1, 3], [1, 10, 100]);
    const a = attrs([1, 1, 2], [0, 0, 0]);
    const dx = K.conv3dGradInput(T([1, 1, 1, 1, 2], [1, 2]), w, { ...a, inputShape: [1, 1, 1, 1, 6] });
    assert.deepEqual([...arr(dx)], [1, 10, 100 + 2, 20, 200, 0]);
    // transposed-conv use: stride 2, kernel 2 upsampling
    const up = K.conv3dGradInput(T([1, 1, 1, 1, 2], [1, 2]), T([1, 1, 1, 1, 2], [3, 5]), { ...attrs([1, 1, 2], [0, 0, 0]), inputShape: [1, 1, 1, 1, 4] });
    assert.deepEqual([...arr(up)], [3, 5, 6, 10]);
    // gradWeight by hand: x = [1..6], dy = [1, 2] -> dw[k] = x[k] + 2·x[2+k]
    const dw = K.conv3dGradWeight(T([1, 1, 1, 1, 6], [1, 2, 3, 4, 5, 6]), T([1, 1, 1, 1, 2], [1, 2]), { ...a, weightShape: [1, 1, 1, 1, 3] });
    assert.deepEqual([...arr(dw)], [1 + 6, 2 + 8, 3 + 10]);
  });

  it('rejects mismatched shapes', () => {
    assert.throws(() => K.conv3d(rand([1, 4, 4, 4, 4], 1), rand([2, 3, 3, 3, 3], 2), null, attrs([1, 1, 1], [1, 1, 1])), /weight dim 1/);
    assert.throws(() => K.conv3d(rand([1, 3, 4, 4, 4], 1), rand([2, 1, 3, 3, 3], 2), null, attrs([1, 1, 1], [1, 1, 1], 3)), /divisible/);
    assert.throws(() => K.conv3d(rand([1, 1, 2, 2, 2], 1), rand([1, 1, 3, 3, 3], 2), null, attrs([1, 1, 1], [0, 0, 0])), /does not fit/);
    assert.throws(() => K.conv3dGradInput(rand([1, 1, 3, 3, 3], 1), rand([1, 1, 3, 3, 3], 2), { ...attrs([1, 1, 1], [0, 0, 0]), inputShape: [1, 1, 4, 4, 4] }), /dy must be/);
  });
});

describe('reference backend: reductions and channel ops', () => {
  it('sumToChannels, sum, fillFromScalar', () => {
    const x = T([2, 3, 2], (i) => i); // n0: c0 [0,1] c1 [2,3] c2 [4,5]; n1: c0 [6,7] c1 [8,9] c2 [10,11]
    assert.deepEqual([...arr(K.sumToChannels(x))], [14, 22, 30]);
    const s = K.sum(x);
    assert.deepEqual(s.shape, [1]);
    assert.equal(arr(s)[0], 66);
    const f = K.fillFromScalar(T([1], [3]), { shape: [2, 2], factor: 0.5 });
    assert.deepEqual(f.shape, [2, 2]);
    assert.deepEqual([...arr(f)], [1.5, 1.5, 1.5, 1.5]);
    // float64 accumulation: 1 + 1e-8·10⁶ would stay 1 in float32
    const big = T([1_000_001], (i) => (i === 0 ? 1 : 1e-8));
    close(arr(K.sum(big)), [1.01], 1e-7);
  });

  it('add, scale, mulChannel and its scale gradient', () => {
    assert.deepEqual([...arr(K.add(T([3], [1, 2, 3]), T([3], [10, 20, 30])))], [11, 22, 33]);
    assert.deepEqual([...arr(K.scale(T([3], [1, -2, 4]), { factor: 0.25 }))], [0.25, -0.5, 1]);
    const x = T([2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8]);
    const s = T([2], [10, -1]);
    assert.deepEqual([...arr(K.mulChannel(x, s))], [10, 20, -3, -4, 50, 60, -7, -8]);
    const dy = T([2, 2, 2], [1, 1, 1, 1, 1, 0, 0, 1]);
    // c0: 1+2+5 = 8; c1: 3+4+8 = 15
    assert.deepEqual([...arr(K.mulChannelGradScale(dy, x))], [8, 15]);
  });

  it('concatChannels and sliceChannels are inverse', () => {
    const a = T([2, 1, 2], [1, 2, 3, 4]);
    const b = T([2, 2, 2], [5, 6, 7, 8, 9, 10, 11, 12]);
    const c = K.concatChannels([a, b]);
    assert.deepEqual(c.shape, [2, 3, 2]);
    assert.deepEqual([...arr(c)], [1, 2, 5, 6, 7, 8, 3, 4, 9, 10, 11, 12]);
    assert.deepEqual([...arr(K.sliceChannels(c, { start: 0, end: 1 }))], [...arr(a)]);
    const s = K.sliceChannels(c, { start: 1, end: 3 });
    assert.deepEqual(s.shape, [2, 2, 2]);
    assert.deepEqual([...arr(s)], [...arr(b)]);
    assert.throws(() => K.sliceChannels(c, { start: 2, end: 4 }), /channel range/);
    assert.throws(() => K.concatChannels([a, T([1, 1, 2], [0, 0])]), /differ/);
  });
});

describe('reference backend: normalisation', () => {
  it('instanceNorm of a known vector, and with mean ≈ 100', () => {
    const [y, rstd] = K.instanceNorm(T([1, 1, 4], [1, 2, 3, 4]), { eps: 1e-5 });
    const r = 1 / Math.sqrt(1.25 + 1e-5);
    close(arr(y), [-1.5 * r, -0.5 * r, 0.5 * r, 1.5 * r].map(Math.fround), 0, 0, 'y');
    assert.deepEqual(rstd.shape, [1, 1]);
    close(arr(rstd), [Math.fround(r)], 0, 0, 'rstd');
    // mean ≈ 100, std ≈ 0.01: E[x²]−E[x]² in float32 would be garbage
    const x = rand([2, 3, 4, 4, 4], 7, 0.01, 100);
    const [y2, r2] = K.instanceNorm(x, { eps: 1e-5 });
    for (let nc = 0; nc < 6; nc++) {
      const v = [...arr(x).subarray(nc * 64, nc * 64 + 64)];
      const m = v.reduce((a, b) => a + b, 0) / 64;
      const va = v.reduce((a, b) => a + (b - m) ** 2, 0) / 64;
      const rr = 1 / Math.sqrt(va + 1e-5);
      close(arr(r2).subarray(nc, nc + 1), [Math.fround(rr)], 0, 0, 'rstd');
      close(
        arr(y2).subarray(nc * 64, nc * 64 + 64),
        Float32Array.from(v, (e) => (e - m) * rr),
        0,
        0,
        'y',
      );
    }
  });

  it('instanceNormGrad matches finite differences and is orthogonal to 1 and y', () => {
    const x = rand([2, 2, 3, 2, 2], 11, 2, 0.5);
    const eps = 1e-5;
    const [y, rstd] = K.instanceNorm(x, { eps });
    const dy = rand(y.shape, 12);
    const dx = K.instanceNormGrad(dy, y, rstd);
    const num = numericGrad((t) => K.instanceNorm(t, { eps })[0], x, dy);
    close(arr(dx), num, 2e-3, 2e-3, 'dx');
    // with eps = 0 the gradient is orthogonal to constants and to y (the output is scale- and shift-invariant)
    const [y0, rstd0] = K.instanceNorm(x, { eps: 0 });
    const dx0 = K.instanceNormGrad(dy, y0, rstd0);
    for (let nc = 0; nc < 4; nc++) {
      let s1 = 0;
      let sy = 0;
      for (let i = 0; i < 12; i++) {
        s1 += arr(dx0)[nc * 12 + i]!;
        sy += arr(dx0)[nc * 12 + i]! * arr(y0)[nc * 12 + i]!;
      }
      assert.ok(Math.abs(s1) < 1e-5 && Math.abs(sy) < 1e-5, `Σdx ${s1}, Σdx·y ${sy}`);
    }
  });

  it('layerNorm channels_first and channels_last agree and match hand values', () => {
    // channels_first [1, 3, 2]: voxel 0 has channels (1, 2, 3), voxel 1 has (10, 10, 16)
    const xf = T([1, 3, 2], [1, 10, 2, 10, 3, 16]);
    const w = T([3], [1, 2, -1]);
    const b = T([3], [0, 1, 0.5]);
    const eps = 1e-6;
    const [yf, mf, rf] = K.layerNorm(xf, w, b, { eps, channelsLast: false });
    const r0 = 1 / Math.sqrt(2 / 3 + eps);
    const r1 = 1 / Math.sqrt(8 + eps);
    assert.deepEqual(mf.shape, [1, 2]);
    close(arr(mf), [2, 12], 0, 0, 'mean');
    close(arr(rf), [r0, r1].map(Math.fround), 0, 0, 'rstd');
    // y[c] = (x − mean)·rstd·w[c] + b[c]
    const expected = [-1 * r0 * 1 + 0, -2 * r1 * 1 + 0, 0 * 2 + 1, -2 * r1 * 2 + 1, 1 * r0 * -1 + 0.5, 4 * r1 * -1 + 0.5];
    close(arr(yf), expected, 1e-7, 1e-7, 'y channels_first');
    // the same vectors channels_last [2, 3]
    const xl = T([2, 3], [1, 2, 3, 10, 10, 16]);
    const [yl, ml, rl] = K.layerNorm(xl, w, b, { eps, channelsLast: true });
    assert.deepEqual(ml.shape, [2]);
    assert.deepEqual([...arr(ml)], [...arr(mf)]);
    assert.deepEqual([...arr(rl)], [...arr(rf)]);
    assert.deepEqual([...arr(yl)], [expected[0], expected[2], expected[4], expected[1], expected[3], expected[5]].map(Math.fround));
  });

  it('layerNormGrad matches finite differences in both layouts', () => {
    for (const channelsLast of [false, true]) {
      const shape = channelsLast ? [2, 3, 4] : [2, 4, 3, 1, 2];
      const C = 4;
      const x = rand(shape, 21, 1.5, 0.3);
      const w = rand([C], 22, 1, 1);
      const b = rand([C], 23);
      const eps = 1e-6;
      const [y, mean, rstd] = K.layerNorm(x, w, b, { eps, channelsLast });
      const dy = rand(y.shape, 24);
      const [dx, dw, db] = K.layerNormGrad(dy, x, w, mean, rstd, { channelsLast });
      close(
        arr(dx),
        numericGrad((t) => K.layerNorm(t, w, b, { eps, channelsLast })[0], x, dy),
        2e-3,
        2e-3,
        `dx last=${channelsLast}`,
      );
      close(
        arr(dw),
        numericGrad((t) => K.layerNorm(x, t, b, { eps, channelsLast })[0], w, dy),
        2e-3,
        2e-3,
        `dw last=${channelsLast}`,
      );
      close(
        arr(db),
        numericGrad((t) => K.layerNorm(x, w, t, { eps, channelsLast })[0], b, dy),
        2e-3,
        2e-3,
        `db last=${channelsLast}`,
      );
    }
  });
});

describe('reference backend: activations', () => {
  it('erf and erfc at known values', () => {
    assert.equal(erf(0), 0);
    close([erf(1 / Math.SQRT2)], [0.6826894921370859], 2e-16);
    close([erf(1)], [0.8427007929497149], 2e-16);
    close([erf(-0.5)], [-0.5204998778130465], 2e-16);
    close([erf(2)], [0.9953222650189527], 5e-16);
    close([erf(3.5)], [0.9999992569016276], 2e-16);
    close([erfc(3)], [2.209049699858544e-5], 0, 1e-13);
    close([erfc(6)], [2.1519736712498913e-17], 0, 1e-13);
    close([erfc(-1)], [1.8427007929497148], 4e-16);
    close([erfc(0.3)], [0.6713732405408726], 2e-16);
  });

  it('gelu at 0, ±1, large |x| and its gradient', () => {
    const y = K.gelu(T([5], [0, 1, -1, 10, -10]));
    const phi1 = 0.5 * (1 + 0.6826894921370859); // Φ(1) = ½(1 + erf(1/√2))
    assert.deepEqual([...arr(y)], [0, Math.fround(phi1), Math.fround(-(1 - phi1)), 10, Math.fround(-10 * 7.619853024160527e-24)]);
    // d/dx gelu = Φ(x) + x·φ(x)
    const pdf1 = Math.exp(-0.5) / Math.sqrt(2 * Math.PI);
    const g = K.geluGrad(T([3], [2, 2, 2]), T([3], [0, 1, -1]));
    close(arr(g), [1, 2 * (phi1 + pdf1), 2 * (1 - phi1 - pdf1)], 1e-7, 0, 'geluGrad');
    const x = rand([20], 31, 3);
    const dy = rand([20], 32);
    close(
      arr(K.geluGrad(dy, x)),
      numericGrad((t) => K.gelu(t), x, dy),
      1e-3,
      1e-3,
      'geluGrad fd',
    );
  });

  it('leakyRelu uses the slope at exactly 0 in the gradient', () => {
    const x = T([4], [-2, 0, 3, -0.5]);
    assert.deepEqual([...arr(K.leakyRelu(x, { slope: 0.01 }))], [Math.fround(-0.02), 0, 3, Math.fround(-0.005)]);
    assert.deepEqual([...arr(K.leakyReluGrad(T([4], [1, 1, 1, 2]), x, { slope: 0.01 }))], [Math.fround(0.01), Math.fround(0.01), 1, Math.fround(0.02)]);
  });

  it('softmax over channels sums to 1, survives huge logits, and its gradient matches finite differences', () => {
    const x = rand([2, 5, 3, 2], 41, 4);
    const y = K.softmax(x);
    for (let n = 0; n < 2; n++)
      for (let s = 0; s < 6; s++) {
        let t = 0;
        for (let c = 0; c < 5; c++) t += arr(y)[(n * 5 + c) * 6 + s]!;
        close([t], [1], 1e-6);
      }
    const big = K.softmax(T([1, 3, 1], [1000, 1000, 0]));
    close(arr(big), [0.5, 0.5, 0], 0, 0, 'big');
    const dy = rand(y.shape, 42);
    const dx = K.softmaxGrad(dy, y);
    close(
      arr(dx),
      numericGrad((t) => K.softmax(t), x, dy),
      1e-3,
      1e-3,
      'softmaxGrad fd',
    );
  });
});

describe('reference backend: losses', () => {
  it('crossEntropy on hand cases, and its gradient', () => {
    // N=1, C=2, two voxels: logits (0,0) target 1 -> log 2; logits (1,3) target 0 -> log(1 + e²)
    const logits = T([1, 2, 2], [0, 1, 0, 3]);
    const target = T([1, 1, 2], [1, 0]);
    const l = K.crossEntropy(logits, target);
    assert.deepEqual(l.shape, [1]);
    close(arr(l), [Math.fround((Math.log(2) + Math.log(1 + Math.exp(2))) / 2)], 0, 0, 'ce');
    // huge logits stay finite
    close(arr(K.crossEntropy(T([1, 2, 1], [1000, 0]), T([1, 1, 1], [1]))), [1000], 0, 0, 'ce big');
    const g = K.crossEntropyGrad(T([1], [2]), logits, target);
    const p = 1 / (1 + Math.exp(2)); // softmax of (1, 3) at class 0
    close(arr(g), [(2 * 0.5) / 2, (2 * (p - 1)) / 2, (2 * (0.5 - 1)) / 2, (2 * (1 - p)) / 2], 1e-7, 0, 'ce grad');
    const x = rand([2, 3, 2, 2], 51, 2);
    const t = T([2, 1, 2, 2], [0, 1, 2, 1, 2, 2, 0, 1]);
    close(
      arr(K.crossEntropyGrad(T([1], [1]), x, t)),
      numericGrad((z) => K.crossEntropy(z, t), x, T([1], [1])),
      1e-3,
      1e-3,
      'ce fd',
    );
    assert.throws(() => K.crossEntropy(logits, T([1, 1, 2], [2, 0])), /class index/);
  });

  it('diceLoss on a hand case, and its gradient', () => {
    // N=1, C=2, 2 voxels; probs c0 = [0.8, 0.3], c1 = [0.2, 0.7]; target [0, 1]
    const probs = T([1, 2, 2], [0.8, 0.3, 0.2, 0.7]);
    const target = T([1, 1, 2], [0, 1]);
    const sm = { smoothNr: 1e-5, smoothDr: 1e-5 };
    const [loss, stats] = K.diceLoss(probs, target, sm);
    const f0 = 1 - (2 * 0.8 + 1e-5) / (1 + 1.1 + 1e-5);
    const f1 = 1 - (2 * 0.7 + 1e-5) / (1 + 0.9 + 1e-5);
    close(arr(loss), [(f0 + f1) / 2], 1e-7, 0, 'dice');
    assert.deepEqual(stats.shape, [1, 2, 3]);
    close(arr(stats), [0.8, 1, 1.1, 0.7, 1, 0.9], 1e-7, 0, 'stats');
    const p = rand([2, 3, 2, 2], 61, 0.4, 0.5);
    const t = T([2, 1, 2, 2], [0, 1, 2, 1, 2, 2, 0, 1]);
    const [, st] = K.diceLoss(p, t, sm);
    const g = K.diceLossGrad(T([1], [1.5]), t, st, { ...sm, channels: 3 });
    assert.deepEqual(g.shape, [2, 3, 2, 2]);
    close(
      arr(g),
      numericGrad((z) => K.diceLoss(z, t, sm)[0], p, T([1], [1.5])),
      1e-3,
      1e-3,
      'dice fd',
    );
  });
});

describe('reference backend: adamw', () => {
  it('one step by hand, then a second with t = 2', () => {
    const p = T([2], [1, -2]);
    const g = T([2], [0.5, 0]);
    const m = T([2]);
    const v = T([2]);
    const a = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-2, step: 1 };
    K.adamwStep(p, g, m, v, a);
    // p ← p·(1 − 1e-5); m = 0.1·g; v = 0.001·g²; m̂ = g, v̂ = g² -> update = lr·g/(|g| + eps)
    close(arr(m), [0.05, 0], 0, 1e-7, 'm');
    close(arr(v), [0.00025, 0], 0, 2e-7, 'v');
    close(arr(p), [1 * (1 - 1e-5) - 1e-3 * (0.5 / (0.5 + 1e-8)), -2 * (1 - 1e-5)], 1e-7, 1e-6, 'p');
    assert.deepEqual([...arr(g)], [0.5, 0], 'g is not modified');
    // step 2 with g = 0.5 again: m = 0.095, v = 0.0004997..., m̂ = 0.095/0.19 = 0.5, v̂ = v/(1−0.999²)
    const p1 = arr(p)[0]!;
    K.adamwStep(p, g, m, v, { ...a, step: 2 });
    const m2 = 0.9 * 0.05 + 0.1 * 0.5;
    const v2 = 0.999 * 0.00025 + 0.001 * 0.25;
    const expected = p1 * (1 - 1e-5) - (1e-3 / (1 - 0.81)) * (m2 / (Math.sqrt(v2) / Math.sqrt(1 - 0.999 ** 2) + 1e-8));
    close(arr(p).subarray(0, 1), [expected], 1e-7, 1e-6, 'p step 2');
  });

  it('rounds like PyTorch 1.13 op by op: float32 per op, FMA in add_(alpha) and addcmul_', () => {
    const r = rng(71);
    const n = 257;
    const p = T([n], () => r());
    const g = T([n], () => r() * 1e-2);
    const m = T([n], () => r() * 1e-3);
    const v = T([n], () => Math.abs(r()) * 1e-5);
    const [p0, m0, v0] = [arr(p).slice(), arr(m).slice(), arr(v).slice()];
    const a = { lr: 3e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-5, step: 7 };
    K.adamwStep(p, g, m, v, a);
    // the same arithmetic with a Float32Array as the rounding device
    const f = new Float32Array(1);
    const r32 = (x: number) => ((f[0] = x), f[0]!);
    const bc1 = 1 - 0.9 ** 7;
    const bc2 = 1 - 0.999 ** 7;
    for (let i = 0; i < n; i++) {
      const gi = arr(g)[i]!;
      const pp = r32(p0[i]! * r32(1 - 3e-4 * 1e-5));
      const mm = fma32(gi, r32(1 - 0.9), r32(m0[i]! * r32(0.9)));
      const vv = fma32(r32(gi * r32(1 - 0.999)), gi, r32(v0[i]! * r32(0.999)));
      const den = r32(r32(r32(Math.sqrt(vv)) / r32(Math.sqrt(bc2))) + r32(1e-8));
      const pn = r32(pp + r32(r32(r32(-3e-4 / bc1) * mm) / den));
      assert.equal(arr(m)[i], mm);
      assert.equal(arr(v)[i], vv);
      assert.equal(arr(p)[i], pn);
    }
  });

  it('fma32 rounds a·b + c once, also where float64 would round to a float32 tie', () => {
    // 8390655 · 16773123 = 2^47 + 10237, so a·b = 2^-24·(1 + 7.3e-11): 1 + a·b lies just above the
    // float32 midpoint 1 + 2^-24 but rounds to it in float64, and ties-to-even would then give 1.
    const a = 8390655 * 2 ** -35;
    const b = 16773123 * 2 ** -36;
    assert.equal(Math.fround(a * b + 1), 1);
    assert.equal(fma32(a, b, 1), 1 + 2 ** -23);
    assert.equal(fma32(-a, b, -1), -(1 + 2 ** -23));
    assert.equal(fma32(a, -b, 1), 1 - 2 ** -24); // below 1 the float32 spacing is 2^-24: exact 1 − 2^-24 − tiny rounds to 1 − 2^-24
    // random operands against an exact BigInt evaluation
    const r = rng(99);
    const bits = new Uint32Array(1);
    const asF = new Float32Array(bits.buffer);
    const step = (x: number, d: number) => ((asF[0] = x), (bits[0] = bits[0]! + (x >= 0 === d > 0 ? 1 : -1)), asF[0]!);
    const S = 2 ** 149;
    const big = (x: number, scale: number) => BigInt(x * scale);
    for (let i = 0; i < 2000; i++) {
      const x = Math.fround(r() * 2 ** Math.floor(8 * r()));
      const y = Math.fround(r() * 2 ** Math.floor(8 * r()));
      const z = Math.fround(r() * 2 ** Math.floor(8 * r()));
      const got = fma32(x, y, z);
      const exact = big(x, S) * big(y, S) + big(z, S * S);
      const dist = (q: number) => {
        const d = big(q, S * S) - exact;
        return d < 0n ? -d : d;
      };
      assert.ok(dist(got) <= dist(step(got, 1)) && dist(got) <= dist(step(got, -1)), `fma32(${x}, ${y}, ${z}) = ${got} is not the nearest float32`);
    }
  });

  it('reproduces the PyTorch adamw fixture bit for bit over three steps', () => {
    const F = 'tiny_ops.safetensors';
    const fx = (name: string) => get(F, `adamw.${name}`);
    const p = T([257], fx('param0').data);
    const m = T([257]);
    const v = T([257]);
    for (let t = 1; t <= 3; t++) {
      K.adamwStep(p, T([257], fx(`grad${t}`).data), m, v, { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-2, step: t });
      assert.deepEqual(arr(p), Float32Array.from(fx(`param${t}`).data), `param step ${t}`);
      assert.deepEqual(arr(m), Float32Array.from(fx(`exp_avg${t}`).data), `exp_avg step ${t}`);
      assert.deepEqual(arr(v), Float32Array.from(fx(`exp_avg_sq${t}`).data), `exp_avg_sq step ${t}`);
    }
  });
});

describe('reference backend: kernels do not modify their inputs', () => {
  it('every kernel except adamwStep leaves its inputs untouched', () => {
    const x5 = rand([2, 4, 4, 4, 4], 81);
    const w = rand([4, 2, 3, 3, 3], 82);
    const b = rand([4], 83);
    const a = attrs([1, 1, 1], [1, 1, 1], 2);
    const y = K.conv3d(x5, w, b, a);
    const dy = rand(y.shape, 84);
    const tgt = T([2, 1, 4, 4, 4], (i) => i % 4);
    const probs = K.softmax(x5);
    const [, st] = K.diceLoss(probs, tgt, { smoothNr: 1e-5, smoothDr: 1e-5 });
    const [yi, ri] = K.instanceNorm(x5, { eps: 1e-5 });
    const [, mean, rstd] = K.layerNorm(x5, b, b, { eps: 1e-6, channelsLast: false });
    const inputs = [x5, w, b, y, dy, tgt, probs, st, yi, ri, mean, rstd];
    const snapshot = inputs.map((t) => arr(t).slice());
    K.conv3dGradInput(dy, w, { ...a, inputShape: x5.shape });
    K.conv3dGradWeight(x5, dy, { ...a, weightShape: w.shape });
    K.sumToChannels(x5);
    K.instanceNormGrad(dy, yi, ri);
    K.layerNormGrad(x5, x5, b, mean, rstd, { channelsLast: false });
    K.gelu(x5);
    K.geluGrad(dy, y);
    K.leakyRelu(x5, { slope: 0.01 });
    K.leakyReluGrad(dy, y, { slope: 0.01 });
    K.add(dy, y);
    K.scale(y, { factor: 3 });
    K.mulChannel(y, b);
    K.mulChannelGradScale(dy, y);
    K.concatChannels([x5, y]);
    K.sliceChannels(y, { start: 1, end: 3 });
    K.softmaxGrad(dy, probs);
    K.crossEntropy(x5, tgt);
    K.crossEntropyGrad(T([1], [1]), x5, tgt);
    K.diceLossGrad(T([1], [1]), tgt, st, { smoothNr: 1e-5, smoothDr: 1e-5, channels: 4 });
    K.sum(y);
    K.fillFromScalar(b, { shape: [3], factor: 2 });
    inputs.forEach((t, i) => assert.deepEqual(arr(t), snapshot[i], `input ${i} was modified`));
  });
});
