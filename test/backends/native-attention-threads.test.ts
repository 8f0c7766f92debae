/**
 * The native fused attention and its gradient give bit-identical results on 1, 2 and 3 threads: dbias
 * sums over windows in fixed groups, so a training step (SwinUNETR, nnFormer) does not depend on the
 * thread count or on which thread took which task (crossval and queued runs promise bit-identical resumes).
 */
import { test } from 'node:test';
import { nativeAddon, nativeLoadError } from '../../src/backends/native/index.js';
import { skipUnlessAvailable } from '../helpers/backends.js';
import { assertSameOnThreads } from '../helpers/native-threads.js';

const skip = skipUnlessAvailable('native', !!nativeAddon, `native addon not available: ${nativeLoadError}`);

test('native attention forward and backward (with bias and mask) are bit-identical on 1, 2 and 3 threads, close to the reference', { skip }, () => {
  // 36 windows (not a multiple of the 16 dbias groups), 2 heads of width 16, 27 tokens, 4 mask windows;
  // q, k, v packed in one [B, N, 3·H·D] tensor as the qkv Linear writes it.
  assertSameOnThreads(
    `
    const B = 36, N = 27, H = 2, D = 16;
    const [qr, qn] = pair([B, N, 3 * H * D]), [br, bn] = pair([H, N, N]), [mr, mn] = pair([4, N, N]), [dr, dn] = pair([B, N, H * D]);
    const a = { heads: H, headDim: D, qCol: 0, kCol: H * D, vCol: 2 * H * D, qScale: 0.25, sScale: 1 };
    const [yr, lr] = rk.attention(qr, qr, qr, br, mr, a), [yn, ln] = k.attention(qn, qn, qn, bn, mn, a);
    check(yr, yn);
    const ga = { ...a, share: [0, 0, 0], needBias: true };
    const gr = rk.attentionGrad(dr, qr, qr, qr, br, mr, yr, lr, ga), gn = k.attentionGrad(dn, qn, qn, qn, bn, mn, yn, ln, ga);
    check(gr[0], gn[0]);
    check(gr[3], gn[3]);
`,
    11,
    1e-4,
  );
});
