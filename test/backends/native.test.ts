/**
 * Native backend kernels against the reference backend's kernels on random inputs (relative tolerance
 * 1e-5 of max|ref|), plus the asynchronous queue semantics. Skipped, with a message, when the addon did
 * not build. UXNET_ISA=avx2|generic forces the lower micro-kernel sets (native_isa.test.ts does that).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Conv3dAttrs, Kernels, KTensor, Triple } from '../../src/engine/kernels.js';
import { referenceKernels } from '../../src/backends/reference/index.js';
import { makeNativeKernels, nativeAddon, nativeLoadError } from '../../src/backends/native/index.js';
import type { NativeHandle } from '../../src/backends/native/addon.js';
import { skipUnlessAvailable } from '../helpers/backends.js';

const skip = skipUnlessAvailable('native', !!nativeAddon, `native addon not available: ${nativeLoadError}`);
if (skip) console.log(`# skipping native backend tests: ${skip}`);
const addon = nativeAddon!;
const nk: Kernels | null = nativeAddon ? makeNativeKernels(nativeAddon) : null;
const rk = referenceKernels;

let seed = 12345;
function rnd(): number {
  // xorshift32 → uniform [-1, 1)
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return ((seed >>> 0) / 4294967296) * 2 - 1;
}
function randArray(n: number, scale = 1, offset = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rnd() * scale + offset;
  return a;
}
function numel(s: readonly number[]): number {
  return s.reduce((a, b) => a * b, 1);
}

/** The same values as a reference tensor and a native tensor. */
function pair(shape: number[], data?: Float32Array): [KTensor, KTensor] {
  const d = data ?? randArray(numel(shape));
  return [
    { shape, data: d.slice() },
    { shape, data: addon.upload(d) },
  ];
}
function nread(t: KTensor): Float32Array {
  return addon.readSync(t.data as NativeHandle, numel(t.shape));
}
function close(what: string, ref: KTensor, got: KTensor, tol = 1e-5): void {
  assert.deepEqual([...got.shape], [...ref.shape], `${what}: shape`);
  const r = ref.data as Float32Array;
  const g = nread(got);
  let mx = 0;
  for (const v of r) mx = Math.max(mx, Math.abs(v));
  let worst = 0;
  let at = -1;
  for (let i = 0; i < r.length; i++) {
    const e = Math.abs(r[i]! - g[i]!);
    if (!(e <= worst)) {
      worst = e;
      at = i;
    }
  }
  assert.ok(worst <= tol * Math.max(mx, 1e-30), `${what}: max abs err ${worst} at ${at} (ref ${r[at]}, got ${g[at]}), max|ref| ${mx}`);
}

interface ConvCase {
  name: string;
  N: number;
  Cin: number;
  Cout: number;
  sp: Triple;
  k: Triple;
  s: Triple;
  p: Triple;
  g: number;
  bias?: boolean;
}

const convCases: ConvCase[] = [
  { name: 'k3 s1 p1 dense', N: 2, Cin: 5, Cout: 7, sp: [6, 7, 5], k: [3, 3, 3], s: [1, 1, 1], p: [1, 1, 1], g: 1, bias: true },
  { name: 'k3 48->48 (3-vector blocks)', N: 1, Cin: 48, Cout: 48, sp: [3, 4, 21], k: [3, 3, 3], s: [1, 1, 1], p: [1, 1, 1], g: 1, bias: true },
  { name: 'k3 16->96 (2 blocks)', N: 1, Cin: 16, Cout: 96, sp: [3, 3, 7], k: [3, 3, 3], s: [1, 1, 1], p: [1, 1, 1], g: 1 },
  { name: 'k3 20->64 (4-vector blocks)', N: 1, Cin: 20, Cout: 64, sp: [4, 3, 9], k: [3, 3, 3], s: [1, 1, 1], p: [1, 1, 1], g: 1, bias: true },
  { name: 'k2 s2 downsample', N: 2, Cin: 4, Cout: 20, sp: [8, 6, 4], k: [2, 2, 2], s: [2, 2, 2], p: [0, 0, 0], g: 1, bias: true },
  { name: 'k7 s2 p3 stem', N: 1, Cin: 1, Cout: 16, sp: [9, 10, 11], k: [7, 7, 7], s: [2, 2, 2], p: [3, 3, 3], g: 1, bias: true },
  { name: 'k1 24->13', N: 2, Cin: 24, Cout: 13, sp: [5, 4, 6], k: [1, 1, 1], s: [1, 1, 1], p: [0, 0, 0], g: 1, bias: true },
  { name: 'depthwise k7 p3', N: 2, Cin: 6, Cout: 6, sp: [9, 8, 19], k: [7, 7, 7], s: [1, 1, 1], p: [3, 3, 3], g: 6, bias: true },
  { name: 'depthwise k3 p1 wide', N: 1, Cin: 3, Cout: 3, sp: [5, 6, 35], k: [3, 3, 3], s: [1, 1, 1], p: [1, 1, 1], g: 3, bias: true },
  { name: 'depthwise k3 s2 (dense fallback)', N: 1, Cin: 4, Cout: 4, sp: [7, 6, 5], k: [3, 3, 3], s: [2, 2, 2], p: [1, 1, 1], g: 4 },
  { name: 'grouped 1x1 1->4', N: 2, Cin: 4, Cout: 16, sp: [5, 3, 7], k: [1, 1, 1], s: [1, 1, 1], p: [0, 0, 0], g: 4, bias: true },
  { name: 'grouped 1x1 4->1', N: 1, Cin: 16, Cout: 4, sp: [3, 5, 6], k: [1, 1, 1], s: [1, 1, 1], p: [0, 0, 0], g: 4, bias: true },
  { name: 'groups 2, mixed stride/padding', N: 1, Cin: 4, Cout: 6, sp: [6, 7, 8], k: [3, 3, 3], s: [1, 2, 1], p: [1, 0, 2], g: 2, bias: true },
  { name: 'asymmetric kernel/stride', N: 1, Cin: 3, Cout: 5, sp: [7, 5, 11], k: [3, 1, 2], s: [2, 1, 3], p: [1, 0, 1], g: 1 },
  { name: 'k3 s2 p1', N: 1, Cin: 6, Cout: 8, sp: [7, 8, 9], k: [3, 3, 3], s: [2, 2, 2], p: [1, 1, 1], g: 1 },
  { name: 'k9 wide kernel', N: 1, Cin: 2, Cout: 3, sp: [4, 4, 12], k: [1, 2, 9], s: [1, 1, 1], p: [0, 1, 4], g: 1 },
  // Output volumes up to 128 positions go through im2col + GEMM (forward and grad input); several cases
  // above are that small too, and native-isa.test re-runs them with UXNET_CONV_FEW_POSITIONS=0 (direct).
  { name: 'k3 s2 p1 40->70 to 3x2x2 (im2col + GEMM)', N: 2, Cin: 40, Cout: 70, sp: [6, 4, 3], k: [3, 3, 3], s: [2, 2, 2], p: [1, 1, 1], g: 1, bias: true },
  // nnFormer's ConvTranspose shape in small: grad input (dcolᵀ = dyᵀ·w) on 3x2x1 positions, two samples.
  { name: 'k2 s2 24->40 to 3x2x1 (im2col + GEMM)', N: 2, Cin: 24, Cout: 40, sp: [6, 4, 2], k: [2, 2, 2], s: [2, 2, 2], p: [0, 0, 0], g: 1 },
  // 16 channels are one vector on AVX-512: the shared-broadcast tile (three taps per input broadcast) in
  // the forward and in grad input; rows of 30 positions end part-way through its 24-position tiles. (On
  // AVX2 and generic, 'k3 s1 p1 dense' above, 7 channels, takes that tile.)
  { name: 'k3 16->16 (one-vector tiles)', N: 1, Cin: 16, Cout: 16, sp: [3, 4, 30], k: [3, 3, 3], s: [1, 1, 1], p: [1, 1, 1], g: 1, bias: true },
];

function convOut(c: ConvCase): number[] {
  return c.sp.map((d, i) => Math.floor((d + 2 * c.p[i]! - c.k[i]!) / c.s[i]!) + 1);
}

for (const c of convCases) {
  test(`native conv3d ${c.name}: forward, grad input, grad weight`, { skip }, () => {
    const attrs: Conv3dAttrs = { stride: c.s, padding: c.p, groups: c.g };
    const xs = [c.N, c.Cin, ...c.sp];
    const ws = [c.Cout, c.Cin / c.g, ...c.k];
    const ys = [c.N, c.Cout, ...convOut(c)];
    const [xr, xn] = pair(xs);
    const [wr, wn] = pair(ws);
    const [br, bn] = c.bias ? pair([c.Cout]) : [null, null];
    close('forward', rk.conv3d(xr, wr, br, attrs), nk!.conv3d(xn, wn, bn, attrs));
    const [dyr, dyn] = pair(ys);
    close('grad input', rk.conv3dGradInput(dyr, wr, { ...attrs, inputShape: xs }), nk!.conv3dGradInput(dyn, wn, { ...attrs, inputShape: xs }));
    close('grad weight', rk.conv3dGradWeight(xr, dyr, { ...attrs, weightShape: ws }), nk!.conv3dGradWeight(xn, dyn, { ...attrs, weightShape: ws }));
  });
}

test('native conv_transpose3d k2 s2 96->48 as conv3dGradInput (+ its weight grad)', { skip }, () => {
  const attrs: Conv3dAttrs = { stride: [2, 2, 2], padding: [0, 0, 0], groups: 1 };
  const xs = [1, 32, 3, 4, 5];
  const ws = [32, 48, 2, 2, 2];
  const ys = [1, 48, 6, 8, 10];
  const [xr, xn] = pair(xs);
  const [wr, wn] = pair(ws);
  close('convT forward', rk.conv3dGradInput(xr, wr, { ...attrs, inputShape: ys }), nk!.conv3dGradInput(xn, wn, { ...attrs, inputShape: ys }));
  const [dyr, dyn] = pair(ys);
  close('convT weight grad', rk.conv3dGradWeight(dyr, xr, { ...attrs, weightShape: ws }), nk!.conv3dGradWeight(dyn, xn, { ...attrs, weightShape: ws }));
});

// The native GELU evaluates erfc and exp with its own polynomials (so that the loops vectorise): check it
// on a dense grid against the reference backend's double-precision erfc, as tight as libm's erfcf was.
test('native gelu and its gradient on [-12, 12] match double-precision erfc to float rounding', { skip }, () => {
  const n = 24001;
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = -12 + (24 * i) / (n - 1);
  const ones = new Float32Array(n).fill(1);
  const shape = [n];
  const [xr, xn] = pair(shape, x);
  const [gr, gn] = pair(shape, ones);
  const y = nread(nk!.gelu(xn));
  const yr = rk.gelu(xr).data as Float32Array;
  const d = nread(nk!.geluGrad(gn, xn));
  const dr = rk.geluGrad(gr, xr).data as Float32Array;
  for (let i = 0; i < n; i++) {
    const scale = Math.max(1, Math.abs(x[i]!));
    assert.ok(Math.abs(y[i]! - yr[i]!) <= 2.5e-7 * scale, `gelu(${x[i]}): ${y[i]} vs ${yr[i]}`);
    assert.ok(Math.abs(d[i]! - dr[i]!) <= 2.5e-7 * scale, `gelu'(${x[i]}): ${d[i]} vs ${dr[i]}`);
  }
});

test('native elementwise, norms, activations, losses, reductions, adamw', { skip }, () => {
  const shape = [2, 5, 4, 3, 6];
  const n = numel(shape);
  const [xr, xn] = pair(shape);
  const [yr, yn] = pair(shape);
  const [gr, gn] = pair(shape);
  const [cr, cn] = pair([5]);
  close('add', rk.add(xr, yr), nk!.add(xn, yn));
  close('scale', rk.scale(xr, { factor: 1 / 3 }), nk!.scale(xn, { factor: 1 / 3 }));
  close('mulChannel', rk.mulChannel(xr, cr), nk!.mulChannel(xn, cn));
  close('mulChannelGradScale', rk.mulChannelGradScale(gr, xr), nk!.mulChannelGradScale(gn, xn));
  close('sumToChannels', rk.sumToChannels(xr), nk!.sumToChannels(xn));
  close('gelu', rk.gelu(xr), nk!.gelu(xn));
  close('geluGrad', rk.geluGrad(gr, xr), nk!.geluGrad(gn, xn));
  close('leakyRelu', rk.leakyRelu(xr, { slope: 0.01 }), nk!.leakyRelu(xn, { slope: 0.01 }));
  close('leakyReluGrad', rk.leakyReluGrad(gr, xr, { slope: 0.01 }), nk!.leakyReluGrad(gn, xn, { slope: 0.01 }));
  close('softmax', rk.softmax(xr), nk!.softmax(xn));
  close('softmaxGrad', rk.softmaxGrad(gr, yr), nk!.softmaxGrad(gn, yn));
  close('sum', rk.sum(xr), nk!.sum(xn));
  const [sr, sn] = pair([1]);
  close('fillFromScalar', rk.fillFromScalar(sr, { shape: [3, 4], factor: 0.25 }), nk!.fillFromScalar(sn, { shape: [3, 4], factor: 0.25 }));
  const [z1r, z2r] = [rk.sliceChannels(xr, { start: 1, end: 3 }), rk.sliceChannels(xr, { start: 3, end: 5 })];
  const [z1n, z2n] = [nk!.sliceChannels(xn, { start: 1, end: 3 }), nk!.sliceChannels(xn, { start: 3, end: 5 })];
  close('sliceChannels', z1r, z1n);
  close('concatChannels', rk.concatChannels([z2r, xr, z1r]), nk!.concatChannels([z2n, xn, z1n]));

  // Instance norm with a large mean (float32 E[x²]−E[x]² would fail).
  const [br, bn] = pair(shape, randArray(n, 1, 100));
  const [ir, ir2] = rk.instanceNorm(br, { eps: 1e-5 });
  const [inn, in2] = nk!.instanceNorm(bn, { eps: 1e-5 });
  close('instanceNorm y', ir, inn);
  close('instanceNorm rstd', ir2, in2);
  close('instanceNormGrad', rk.instanceNormGrad(gr, ir, ir2), nk!.instanceNormGrad(gn, inn, in2));

  for (const channelsLast of [false, true]) {
    const C = channelsLast ? shape[4]! : shape[1]!;
    const [wr, wn] = pair([C], randArray(C, 0.5, 1));
    const [bbr, bbn] = pair([C]);
    const [lr, lm, ls] = rk.layerNorm(br, wr, bbr, { eps: 1e-6, channelsLast });
    const [ln, lmn, lsn] = nk!.layerNorm(bn, wn, bbn, { eps: 1e-6, channelsLast });
    close(`layerNorm y (last=${channelsLast})`, lr, ln);
    close(`layerNorm mean (last=${channelsLast})`, lm, lmn);
    close(`layerNorm rstd (last=${channelsLast})`, ls, lsn);
    const gref = rk.layerNormGrad(gr, br, wr, lm, ls, { channelsLast });
    const gnat = nk!.layerNormGrad(gn, bn, wn, lmn, lsn, { channelsLast });
    for (let i = 0; i < 3; i++) close(`layerNormGrad ${i} (last=${channelsLast})`, gref[i]!, gnat[i]!, 1e-4);
  }

  // Losses: logits [2, 5, ...], target classes in [0, 5).
  const tshape = [2, 1, 4, 3, 6];
  const tdata = new Float32Array(numel(tshape)).map(() => Math.floor((rnd() + 1) * 2.5) % 5);
  const [tr, tn] = pair(tshape, tdata);
  close('crossEntropy', rk.crossEntropy(xr, tr), nk!.crossEntropy(xn, tn));
  const [dlr, dln] = pair([1], new Float32Array([0.7]));
  close('crossEntropyGrad', rk.crossEntropyGrad(dlr, xr, tr), nk!.crossEntropyGrad(dln, xn, tn));
  const pr = rk.softmax(xr);
  const pn = nk!.softmax(xn);
  const [dr, dsr] = rk.diceLoss(pr, tr, { smoothNr: 1e-5, smoothDr: 1e-5 });
  const [dn, dsn] = nk!.diceLoss(pn, tn, { smoothNr: 1e-5, smoothDr: 1e-5 });
  close('diceLoss', dr, dn);
  close('diceLoss stats', dsr, dsn);
  close(
    'diceLossGrad',
    rk.diceLossGrad(dlr, tr, dsr, { smoothNr: 1e-5, smoothDr: 1e-5, channels: 5 }),
    nk!.diceLossGrad(dln, tn, dsn, { smoothNr: 1e-5, smoothDr: 1e-5, channels: 5 }),
  );

  // AdamW: in place, bit-exact with the reference (same unfused float32 operation order).
  const [pr2, pn2] = pair([37]);
  const [g2r, g2n] = pair([37]);
  const [mr, mn] = pair([37], new Float32Array(37));
  const [vr, vn] = pair([37], new Float32Array(37));
  for (let step = 1; step <= 3; step++) {
    const a = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-2, step };
    rk.adamwStep(pr2, g2r, mr, vr, a);
    nk!.adamwStep(pn2, g2n, mn, vn, a);
  }
  assert.deepEqual(nread(pn2), pr2.data, 'adamw p');
  assert.deepEqual(nread(mn), mr.data, 'adamw m');
  assert.deepEqual(nread(vn), vr.data, 'adamw v');
});

test('native: kernels run off the main thread; read() resolves, readSync() blocks, handles can be freed early', { skip }, async (t) => {
  const attrs: Conv3dAttrs = { stride: [1, 1, 1], padding: [1, 1, 1], groups: 1 };
  const xs = [1, 48, 32, 32, 32];
  const x = { shape: xs, data: addon.upload(randArray(numel(xs))) };
  const w = { shape: [48, 48, 3, 3, 3], data: addon.upload(randArray(48 * 48 * 27, 0.05)) };
  const t0 = performance.now();
  let y = nk!.conv3d(x, w, null, attrs);
  for (let i = 0; i < 3; i++) {
    const y2 = nk!.conv3d(y, w, null, attrs);
    addon.free(y.data as NativeHandle); // freed while still queued/running: the queue keeps it alive
    y = y2;
  }
  const enqueueMs = performance.now() - t0;
  addon.free(x.data as NativeHandle);
  // Reported, not asserted: a wall-clock bound fails on a loaded machine; the event-loop check below is the property.
  t.diagnostic(`enqueueing 4 convolutions took ${enqueueMs.toFixed(1)} ms`);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const vals = await addon.read(y.data as NativeHandle, numel(y.shape));
  clearInterval(timer);
  assert.equal(vals.length, 48 * 32 ** 3);
  assert.ok(vals.every(Number.isFinite));
  assert.ok(ticks > 0, 'the event loop kept running while the kernels ran');
  // readSync after write: ordered with the queue.
  addon.write(w.data as NativeHandle, new Float32Array(48 * 48 * 27).fill(0.5));
  assert.equal(addon.readSync(w.data as NativeHandle, 1)[0], 0.5);
  addon.free(y.data as NativeHandle);
  addon.free(w.data as NativeHandle);
  assert.throws(() => addon.readSync(w.data as NativeHandle, 1), /after free/);
});

test('native: packed-weight cache follows in-place weight updates (write, adamw)', { skip }, () => {
  const attrs: Conv3dAttrs = { stride: [1, 1, 1], padding: [1, 1, 1], groups: 1 };
  // 150 output positions: the direct kernels with packed weights (not the few-positions GEMM path)
  const xs = [1, 8, 5, 5, 6];
  const ws = [16, 8, 3, 3, 3];
  const [xr, xn] = pair(xs);
  const [wr, wn] = pair(ws);
  for (let round = 0; round < 3; round++) {
    // Three calls per weight version: the second packs into the cache, the third reads from it.
    for (let k = 0; k < 3; k++) {
      close(`forward round ${round} call ${k}`, rk.conv3d(xr, wr, null, attrs), nk!.conv3d(xn, wn, null, attrs));
      const [dyr, dyn] = pair([1, 16, 5, 5, 6]);
      close(`grad input round ${round} call ${k}`, rk.conv3dGradInput(dyr, wr, { ...attrs, inputShape: xs }), nk!.conv3dGradInput(dyn, wn, { ...attrs, inputShape: xs }));
    }
    const fresh = randArray(numel(ws));
    (wr.data as Float32Array).set(fresh);
    if (round === 0) addon.write(wn.data as NativeHandle, fresh);
    else {
      // An AdamW step changes the weights in place on both backends.
      const [gr, gn] = pair(ws);
      const [mr, mn] = pair(ws, new Float32Array(numel(ws)));
      const [vr, vn] = pair(ws, new Float32Array(numel(ws)));
      (wr.data as Float32Array).set(nread(wn));
      const a = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 };
      rk.adamwStep(wr, gr, mr, vr, a);
      nk!.adamwStep(wn, gn, mn, vn, a);
    }
  }
});

test('native: an invalid class index is reported at the next read', { skip }, () => {
  const [, xn] = pair([1, 3, 2, 2, 2]);
  const [, tn] = pair([1, 1, 2, 2, 2], new Float32Array(8).fill(7));
  const l = nk!.crossEntropy(xn, tn);
  assert.throws(() => nread(l), /class index/);
});

test('native GEMM (every transpose, shared and per-batch b, bias, K of 1) and the layout kernels', { skip }, () => {
  // Sizes straddle the GEMM's blocks (K slices of 256, 96-row and 256-column blocks) and every ISA's
  // register tile (12x32, 6x16, 4x16) and one-vector tile (12x16, 6x8, 4x8: N ≤ 16 on AVX-512, ≤ 8 below),
  // so native-isa.test re-running this file covers each micro-kernel. B is pre-packed when its panels serve
  // several blocks (several row blocks: the first and last sizes; a shared B over a batch); otherwise each
  // block packs its own (the second to fifth sizes, per-batch B). A·Bᵀ with one side of at most 64 rows and
  // the other of 128 or more takes the dot path (20x300x270, 150x45x99, and 2x7x200x131 with a shared B,
  // whose batch stacks into 14 rows): K tails of 14, 3 and 3 floats past every vector width, and row
  // counts that are not multiples of any dot tile (4x6, 3x4, 2x3) or of its 24-row tasks.
  for (const [B, M, N, K] of [
    [1, 193, 270, 520],
    [3, 13, 33, 257],
    [2, 7, 5, 1],
    [4, 30, 16, 40],
    [1, 20, 300, 270],
    [2, 100, 20, 30],
    [1, 150, 45, 99],
    [2, 7, 200, 131],
  ] as const) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        for (const shared of [false, true]) {
          const [ar, an] = pair([B, transA ? K : M, transA ? M : K]);
          const [br, bn] = pair([shared ? 1 : B, transB ? N : K, transB ? K : N]);
          const [cr, cn] = pair([N]);
          const at = { transA, transB };
          const what = `matmul ${B}x${M}x${N}x${K} tA=${transA} tB=${transB} shared=${shared}`;
          close(what, rk.matmul(ar, br, cr, at), nk!.matmul(an, bn, cn, at));
          if (!shared) close(`${what} no bias`, rk.matmul(ar, br, null, at), nk!.matmul(an, bn, null, at));
        }
      }
    }
  }
  const [xr, xn] = pair([3, 4, 5, 6]);
  const perm = { shape: [6, 3, 5, 4], offset: 0, strides: [1, 120, 6, 30] };
  close('stridedCopy (permute)', rk.stridedCopy(xr, perm), nk!.stridedCopy(xn, perm));
  const sl = { shape: [2, 2, 3, 2], offset: 1 * 120 + 6 + 1, strides: [120, 60, 12, 3] };
  close('stridedCopy (strided slice)', rk.stridedCopy(xr, sl), nk!.stridedCopy(xn, sl));
  const [pr, pn] = pair([2, 2, 3, 2]);
  const sc = { shape: [3, 4, 5, 6], offset: 127, strides: [120, 60, 12, 3] };
  close('stridedScatter', rk.stridedScatter(pr, sc), nk!.stridedScatter(pn, sc));
  const roll = { shifts: [2, 5, 1], dims: [1, 3, 0] };
  close('roll', rk.roll(xr, roll), nk!.roll(xn, roll));
  const [mr, mn] = pair([4, 1, 6]);
  const [vr, vn] = pair([5, 1]);
  for (const op of ['add', 'sub', 'mul'] as const) {
    close(`broadcastBinary ${op}`, rk.broadcastBinary(xr, mr, { op }), nk!.broadcastBinary(xn, mn, { op }));
    close(`broadcastBinary ${op} (row broadcast)`, rk.broadcastBinary(xr, vr, { op }), nk!.broadcastBinary(xn, vn, { op }));
  }
  for (const shape of [[6], [4, 1, 6], [3, 1, 5, 1], [1]]) close(`sumToShape [${shape}]`, rk.sumToShape(xr, { shape }), nk!.sumToShape(xn, { shape }));
  const [tr, tn] = pair([7, 9]);
  const index = Int32Array.from([6, 0, 6, 3, 6, 1]);
  close('gatherRows', rk.gatherRows(tr, { index }), nk!.gatherRows(tn, { index }));
  const [dr, dn] = pair([6, 9]);
  close('scatterAddRows', rk.scatterAddRows(dr, { index, rows: 7 }), nk!.scatterAddRows(dn, { index, rows: 7 }));
  const [rr, rn] = pair([50, 343], randArray(50 * 343, 8));
  const [gr, gn] = pair([50, 343, 1]);
  const v = (t: KTensor) => ({ shape: [50, 343, 1], data: t.data });
  const yr = rk.softmax(v(rr));
  close('softmax over rows', yr, nk!.softmax(v(rn)));
  close('softmax grad over rows', rk.softmaxGrad(gr, yr), nk!.softmaxGrad(gn, nk!.softmax(v(rn))));
});
