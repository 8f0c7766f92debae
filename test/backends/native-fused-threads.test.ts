/**
 * The native fused inference kernels (groupNormAct, batchNormEvalAct, conv3dFused, conv3dGradInputBias) against the reference
 * backend's separate kernels, with channels longer than one work span (so that a channel is split over
 * threads), bit-identical on 1, 2 and 3 threads.
 */
import { test } from 'node:test';
import { nativeAddon, nativeLoadError } from '../../src/backends/native/index.js';
import { skipUnlessAvailable } from '../helpers/backends.js';
import { assertSameOnThreads } from '../helpers/native-threads.js';

const skip = skipUnlessAvailable('native', !!nativeAddon, `native addon not available: ${nativeLoadError}`);

test('native fused GroupNorm/BatchNorm(eval)+ReLU, the concatenating conv and the biased transposed conv equal the reference composition on 1, 2 and 3 threads', { skip }, () => {
  assertSameOnThreads(
    `
    const view = (t, shape) => ({ shape, data: t.data });
    // GroupNorm(3 groups of 2 channels) + ReLU on [2, 6, 17, 31, 33]: 17391 values per channel (two spans)
    const shape = [2, 6, 17, 31, 33];
    const [xr, xn] = pair(shape), [wr, wn] = pair([6]), [br, bn] = pair([6]);
    let y = rk.instanceNorm(view(xr, [2, 3, 2 * 17 * 31 * 33]), { eps: 1e-5 })[0];
    y = rk.mulChannel(view(y, shape), wr);
    y = rk.broadcastBinary(y, view(br, [1, 6, 1, 1, 1]), { op: 'add' });
    check(rk.leakyRelu(y, { slope: 0 }), k.groupNormAct(xn, wn, bn, { groups: 3, eps: 1e-5, relu: true }));
    // BatchNorm(eval) + ReLU + residual
    const [rr, rn] = pair(shape);
    const invStd = Float32Array.from({ length: 6 }, (_, i) => 1 / Math.sqrt(0.5 + i / 4));
    const shift = Float32Array.from({ length: 6 }, (_, i) => (i - 2.5) / 7);
    let z = rk.mulChannel(xr, { shape: [6], data: invStd });
    z = rk.broadcastBinary(z, { shape: [1, 6, 1, 1, 1], data: shift }, { op: 'add' });
    z = rk.mulChannel(z, wr);
    z = rk.broadcastBinary(z, view(br, [1, 6, 1, 1, 1]), { op: 'add' });
    check(rk.add(rk.leakyRelu(z, { slope: 0 }), rr), k.batchNormEvalAct(xn, wn, bn, rn, { invStd, shift, relu: true }));
    // 1×1 conv of the concatenation of [2, 3, ...] and [2, 5, ...]
    const [ar, an] = pair([2, 3, 9, 10, 11]), [cr, cn] = pair([2, 5, 9, 10, 11]), [kr, kn] = pair([7, 8, 1, 1, 1]), [qr, qn] = pair([7]);
    const attrs = { stride: [1, 1, 1], padding: [0, 0, 0], groups: 1 };
    check(rk.conv3d(rk.concatChannels([ar, cr]), kr, qr, attrs), k.conv3dFused([an, cn], kn, qn, null, attrs));
    // 3×3 conv 16 -> 16 (the direct kernel) with a residual added as it stores
    const [er, en] = pair([2, 16, 7, 9, 20]), [fr, fn] = pair([16, 16, 3, 3, 3]), [gr, gn] = pair([2, 16, 7, 9, 20]);
    const a3 = { stride: [1, 1, 1], padding: [1, 1, 1], groups: 1 };
    check(rk.add(rk.conv3d(er, fr, null, a3), gr), k.conv3dFused([en], fn, null, { bn: null, relu: false, res: gn }, a3));
    // the same conv with a BatchNorm(eval) + ReLU + residual epilogue
    const inv16 = Float32Array.from({ length: 16 }, (_, i) => 1 / Math.sqrt(0.5 + i / 8)), shift16 = Float32Array.from({ length: 16 }, (_, i) => (i - 7.5) / 9);
    const [wr16, wn16] = pair([16]), [br16, bn16] = pair([16]);
    let v = rk.mulChannel(rk.conv3d(er, fr, null, a3), { shape: [16], data: inv16 });
    v = rk.broadcastBinary(v, { shape: [1, 16, 1, 1, 1], data: shift16 }, { op: 'add' });
    v = rk.broadcastBinary(rk.mulChannel(v, wr16), view(br16, [1, 16, 1, 1, 1]), { op: 'add' });
    check(rk.add(rk.leakyRelu(v, { slope: 0 }), gr), k.conv3dFused([en], fn, null, { bn: { invStd: inv16, shift: shift16, w: wn16, b: bn16 }, relu: true, res: gn }, a3));
    // transposed conv k2 s2 with its bias, 16 -> 16 channels from [2, 16, 5, 9, 11]
    const [dr, dn] = pair([2, 16, 5, 9, 11]), [tr, tn] = pair([16, 16, 2, 2, 2]), [ur, un] = pair([16]);
    const ta = { stride: [2, 2, 2], padding: [0, 0, 0], groups: 1, inputShape: [2, 16, 10, 18, 22] };
    check(rk.broadcastBinary(rk.conv3dGradInput(dr, tr, ta), view(ur, [1, 16, 1, 1, 1]), { op: 'add' }), k.conv3dGradInputBias(dn, tn, un, ta));
`,
    29,
    1e-6,
  );
});
