/**
 * The Winograd F(2×2×2, 3×3×3) path of the native dense 3×3×3 stride-1 conv, forward and grad input
 * (native/winograd.cc): hand-computed
 * values, the reference backend, the direct kernels (UXNET_WINOGRAD=0) on every ISA, bit-identity on 1/2/3
 * threads and the transformed-weight cache. Every shape here takes that path (output rows ≥ 16 wide, d and
 * h ≥ 4, ≥ 16 inputs, > 16 outputs; see winogradApplies). Skipped when the addon is absent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Conv3dAttrs, KTensor } from '../../src/engine/kernels.js';
import { referenceKernels as rk } from '../../src/backends/reference/index.js';
import { makeNativeKernels, nativeAddon, nativeLoadError } from '../../src/backends/native/index.js';
import type { NativeHandle } from '../../src/backends/native/addon.js';
import { skipUnlessAvailable } from '../helpers/backends.js';
import { assertSameOnThreads, runNativeScript } from '../helpers/native-threads.js';

const skip = skipUnlessAvailable('native', !!nativeAddon, `native addon not available: ${nativeLoadError}`);

// Winograd's transforms add a few roundings: measured within 1e-6 of max|ref| on these shapes (the direct
// kernels: within 2e-6), so the native tests' usual 1e-5 holds with margin.
const TOL = 1e-5;

interface Case {
  N: number;
  Cin: number;
  Cout: number;
  sp: [number, number, number];
  p: number;
  bias: boolean;
  // also check grad input (its forward-equivalent conv, dy to dx with the kernel flipped, takes the path too)
  gi?: boolean;
}
const cases: Case[] = [
  // odd sizes, channel counts that are not multiples of the vector width, two samples, bias
  { N: 2, Cin: 17, Cout: 19, sp: [7, 9, 19], p: 1, bias: true },
  // 33 outputs: two full vectors of 16 and a one-channel tail; 9 tiles along w (one partial block)
  { N: 1, Cin: 20, Cout: 33, sp: [5, 6, 17], p: 1, bias: false, gi: true },
  // 17 tiles along w: a full block of 16 then 1
  { N: 1, Cin: 48, Cout: 48, sp: [4, 4, 34], p: 1, bias: true, gi: true },
  // padding 0 and 2
  { N: 1, Cin: 16, Cout: 24, sp: [6, 6, 18], p: 0, bias: true },
  { N: 1, Cin: 19, Cout: 17, sp: [5, 4, 14], p: 2, bias: false },
];

// Script body for a child process: `k`/`rk` kernels and `pair` as in test/helpers/native-threads.ts.
const body = `
    for (const c of ${JSON.stringify(cases)}) {
      const attrs = { stride: [1, 1, 1], padding: [c.p, c.p, c.p], groups: 1 };
      const [xr, xn] = pair([c.N, c.Cin, ...c.sp]), [wr, wn] = pair([c.Cout, c.Cin, 3, 3, 3]);
      const [br, bn] = c.bias ? pair([c.Cout]) : [null, null];
      check(rk.conv3d(xr, wr, br, attrs), k.conv3d(xn, wn, bn, attrs));
      if (c.gi) {
        const [dyr, dyn] = pair([c.N, c.Cout, ...c.sp.map((d) => d + 2 * c.p - 2)]);
        const a = { ...attrs, inputShape: [c.N, c.Cin, ...c.sp] };
        check(rk.conv3dGradInput(dyr, wr, a), k.conv3dGradInput(dyn, wn, a));
      }
    }`;

/** Runs the cases in a child process with `env`; returns each case's native result and the worst relative error. */
function runCases(env: Record<string, string | undefined>): { worst: number; out: Float32Array[] } {
  const r = runNativeScript(body, 11, env);
  return { worst: r.worst, out: r.out.map((b) => new Float32Array(new Uint8Array(Buffer.from(b, 'base64')).buffer)) };
}

test('winograd conv: all-ones input and weights give the hand-counted tap sums (+ bias) exactly', { skip }, () => {
  const nk = makeNativeKernels(nativeAddon!);
  const [C, D, H, W] = [24, 4, 4, 16];
  const x = { shape: [1, C, D, H, W], data: nativeAddon!.upload(new Float32Array(C * D * H * W).fill(1)) };
  const w = { shape: [C, C, 3, 3, 3], data: nativeAddon!.upload(new Float32Array(C * C * 27).fill(1)) };
  const b = { shape: [C], data: nativeAddon!.upload(new Float32Array(C).fill(0.5)) };
  const y = nk.conv3d(x, w, b, { stride: [1, 1, 1], padding: [1, 1, 1], groups: 1 });
  const got = nativeAddon!.readSync(y.data as NativeHandle, C * D * H * W);
  // Taps inside the volume along one dim: 2 at either end, 3 inside. y = 24 channels · taps + 0.5.
  const taps = (i: number, n: number) => (i === 0 || i === n - 1 ? 2 : 3);
  for (const o of [0, 23])
    for (const [d, h, ww] of [
      [0, 0, 0],
      [1, 2, 7],
      [3, 1, 15],
      [2, 3, 0],
      [1, 1, 14],
    ] as const)
      assert.equal(got[((o * D + d) * H + h) * W + ww], 24 * taps(d, D) * taps(h, H) * taps(ww, W) + 0.5, `y[${o}][${d}][${h}][${ww}]`);
  for (const t of [x, w, b, y]) nativeAddon!.free(t.data as NativeHandle);
});

for (const isa of [undefined, 'avx2', 'generic']) {
  test(`winograd conv (${isa ?? 'best ISA'}) against the reference and against the direct kernels (UXNET_WINOGRAD=0)`, { skip }, () => {
    const on = runCases({ UXNET_ISA: isa, UXNET_WINOGRAD: undefined });
    const off = runCases({ UXNET_ISA: isa, UXNET_WINOGRAD: '0' });
    assert.ok(on.worst <= TOL, `winograd: relative error ${on.worst}`);
    assert.ok(off.worst <= TOL, `direct: relative error ${off.worst}`);
    on.out.forEach((a, i) => {
      const b = off.out[i]!;
      assert.equal(a.length, b.length);
      let mx = 0;
      let e = 0;
      for (let j = 0; j < a.length; j++) {
        mx = Math.max(mx, Math.abs(b[j]!));
        e = Math.max(e, Math.abs(a[j]! - b[j]!));
      }
      // Different summation orders: close, but not bit-equal (which shows the two paths really differ).
      assert.ok(e <= 2 * TOL * mx, `case ${i}: winograd vs direct ${e} (max ${mx})`);
      assert.ok(e > 0, `case ${i}: winograd and direct results are bit-identical; did the Winograd path run?`);
    });
  });
}

test('winograd conv gives bit-identical results on 1, 2 and 3 threads, close to the reference', { skip }, () => {
  assertSameOnThreads(body, 5, TOL);
});

test('winograd conv: the transformed-weight caches (forward, grad input) follow weight writes', { skip }, () => {
  const nk = makeNativeKernels(nativeAddon!);
  const attrs: Conv3dAttrs = { stride: [1, 1, 1], padding: [1, 1, 1], groups: 1 };
  const xs = [1, 20, 4, 4, 16];
  const ys = [1, 24, 4, 4, 16];
  const ws = [24, 20, 3, 3, 3];
  let seed = 3;
  const rnd = (n: number) => Float32Array.from({ length: n }, () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1);
  const xd = rnd(20 * 256);
  const dyd = rnd(24 * 256);
  const xn: KTensor = { shape: xs, data: nativeAddon!.upload(xd) };
  const dyn: KTensor = { shape: ys, data: nativeAddon!.upload(dyd) };
  const wn: KTensor = { shape: ws, data: nativeAddon!.upload(new Float32Array(24 * 20 * 27)) };
  const closeTo = (what: string, want: Float32Array, y: KTensor) => {
    const got = nativeAddon!.readSync(y.data as NativeHandle, want.length);
    nativeAddon!.free(y.data as NativeHandle);
    let mx = 0;
    let e = 0;
    for (let i = 0; i < want.length; i++) {
      mx = Math.max(mx, Math.abs(want[i]!));
      e = Math.max(e, Math.abs(want[i]! - got[i]!));
    }
    assert.ok(e <= TOL * mx, `${what}: max abs err ${e} (max ${mx})`);
  };
  for (let round = 0; round < 3; round++) {
    const wd = rnd(24 * 20 * 27);
    nativeAddon!.write(wn.data as NativeHandle, wd);
    const wr: KTensor = { shape: ws, data: wd };
    const wantY = rk.conv3d({ shape: xs, data: xd }, wr, null, attrs).data as Float32Array;
    const wantDx = rk.conv3dGradInput({ shape: ys, data: dyd }, wr, { ...attrs, inputShape: xs }).data as Float32Array;
    // Three calls per weight version: the second caches the transform, the third reads it from the cache.
    for (let k = 0; k < 3; k++) {
      closeTo(`forward round ${round} call ${k}`, wantY, nk.conv3d(xn, wn, null, attrs));
      closeTo(`grad input round ${round} call ${k}`, wantDx, nk.conv3dGradInput(dyn, wn, { ...attrs, inputShape: xs }));
    }
  }
});
