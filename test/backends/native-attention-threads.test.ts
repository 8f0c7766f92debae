/**
 * The native fused attention and its gradient give bit-identical results on 1, 2 and 3 threads: dbias
 * sums over windows in fixed groups, so a training step (SwinUNETR, nnFormer) does not depend on the
 * thread count or on which thread took which task (crossval and queued runs promise bit-identical resumes).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { nativeAddon } from '../../src/backends/native/index.js';

const skip = nativeAddon ? false : 'native addon not built';

test('native attention forward and backward (with bias and mask) are bit-identical on 1, 2 and 3 threads, close to the reference', { skip }, () => {
  const here = dirname(fileURLToPath(import.meta.url));
  const mod = JSON.stringify(join(here, '../../src/backends/native/index.js'));
  const ref = JSON.stringify(join(here, '../../src/backends/reference/index.js'));
  // 36 windows (not a multiple of the 16 dbias groups), 2 heads of width 16, 27 tokens, 4 mask windows;
  // q, k, v packed in one [B, N, 3·H·D] tensor as the qkv Linear writes it.
  const script = `Promise.all([import(${mod}), import(${ref})]).then(([m, r]) => {
    const k = m.makeNativeKernels(m.nativeAddon), rk = r.referenceKernels;
    let seed = 11;
    const rnd = (n) => Float32Array.from({ length: n }, () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1);
    const pair = (shape) => { const d = rnd(shape.reduce((a, b) => a * b, 1)); return [{ shape, data: d.slice() }, { shape, data: m.nativeAddon.upload(d) }]; };
    const B = 36, N = 27, H = 2, D = 16;
    const [qr, qn] = pair([B, N, 3 * H * D]), [br, bn] = pair([H, N, N]), [mr, mn] = pair([4, N, N]), [dr, dn] = pair([B, N, H * D]);
    const a = { heads: H, headDim: D, qCol: 0, kCol: H * D, vCol: 2 * H * D, qScale: 0.25, sScale: 1 };
    const out = [];
    let worst = 0;
    const check = (rt, nt) => {
      const g = m.nativeAddon.readSync(nt.data, rt.data.length);
      let mx = 0, e = 0;
      for (let i = 0; i < g.length; i++) { mx = Math.max(mx, Math.abs(rt.data[i])); e = Math.max(e, Math.abs(rt.data[i] - g[i])); }
      worst = Math.max(worst, e / mx);
      out.push(Buffer.from(g.buffer).toString('base64'));
    };
    const [yr, lr] = rk.attention(qr, qr, qr, br, mr, a), [yn, ln] = k.attention(qn, qn, qn, bn, mn, a);
    check(yr, yn);
    const ga = { ...a, share: [0, 0, 0], needBias: true };
    const gr = rk.attentionGrad(dr, qr, qr, qr, br, mr, yr, lr, ga), gn = k.attentionGrad(dn, qn, qn, qn, bn, mn, yn, ln, ga);
    check(gr[0], gn[0]);
    check(gr[3], gn[3]);
    console.log(JSON.stringify({ threads: m.nativeInfo().threads, worst, out }));
  })`;
  const runs = ['1', '2', '3'].map((threads) => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, UXNET_THREADS: threads } });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim()) as { threads: number; worst: number; out: string[] };
  });
  assert.deepEqual(
    runs.map((r) => r.threads),
    [1, 2, 3],
  );
  for (const r of runs) assert.ok(r.worst <= 1e-4, `relative error ${r.worst} on ${r.threads} threads`);
  for (const r of runs.slice(1))
    assert.ok(
      r.out.every((o, i) => o === runs[0]!.out[i]),
      `results on ${r.threads} threads differ from 1 thread`,
    );
});
