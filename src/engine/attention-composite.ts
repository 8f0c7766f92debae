import type { AttentionAttrs, KTensor } from './kernels.js';
import { runKernel, wrap } from './op.js';

/**
 * The gradient from existing kernels, for a backend without a fused backward (webgpu's attentionGrad): it
 * recomputes the [B·heads, N, M] probabilities with matmul and softmax, so it needs that memory.
 */
export function attentionGradComposite(
  be: string,
  dy: KTensor,
  q: KTensor,
  k: KTensor,
  v: KTensor,
  bias: KTensor | null,
  mask: KTensor | null,
  a: AttentionAttrs & { share: readonly [0, number, number]; needBias: boolean },
): [KTensor, KTensor | null, KTensor | null, KTensor | null] {
  const [B, N] = q.shape as [number, number];
  const M = k.shape[1]!;
  const { heads: H, headDim: D } = a;
  const temps: KTensor[] = [];
  const run = <T extends KTensor>(t: T): T => (temps.push(t), t);
  // [B·H, T, D] copy of the head columns of a token-major tensor, and its adjoint.
  const split = (x: KTensor, col: number, T: number) => {
    const C = x.shape[2]!;
    const t = runKernel('stridedCopy', be, x, { shape: [B, H, T, D], offset: col, strides: [T * C, D, C, 1] });
    return run({ shape: [B * H, T, D], data: t.data });
  };
  const merge = (x: KTensor, col: number, shape: readonly number[]) => {
    const C = shape[2]!;
    const T = shape[1]!;
    return runKernel('stridedScatter', be, { shape: [B, H, T, D], data: x.data }, { shape, offset: col, strides: [T * C, D, C, 1] });
  };
  try {
    const qh = run(runKernel('scale', be, split(q, a.qCol, N), { factor: a.qScale }));
    const kh = split(k, a.kCol, M);
    const vh = split(v, a.vCol, M);
    const doh = split({ shape: [B, N, H * D], data: dy.data }, 0, N);
    let s = run(runKernel('matmul', be, qh, kh, null, { transA: false, transB: true }));
    if (a.sScale !== 1) s = run(runKernel('scale', be, s, { factor: a.sScale }));
    if (bias) s = run(runKernel('broadcastBinary', be, { shape: [B, H, N, M], data: s.data }, bias, { op: 'add' }));
    if (mask) {
      const nW = mask.shape[0]!;
      s = run(runKernel('broadcastBinary', be, { shape: [B / nW, nW, H, N, M], data: s.data }, { shape: [nW, 1, N, M], data: mask.data }, { op: 'add' }));
    }
    const rows = { shape: [B * H * N, M, 1], data: s.data };
    const p = run(runKernel('softmax', be, rows));
    const pm = { shape: [B * H, N, M], data: p.data };
    const dv = run(runKernel('matmul', be, pm, doh, null, { transA: true, transB: false }));
    const dp = run(runKernel('matmul', be, doh, vh, null, { transA: false, transB: true }));
    const ds = run(runKernel('softmaxGrad', be, { shape: rows.shape, data: dp.data }, p));
    const dsm = { shape: [B * H, N, M], data: ds.data };
    const dq = run(runKernel('scale', be, run(runKernel('matmul', be, dsm, kh, null, { transA: false, transB: false })), { factor: a.qScale * a.sScale }));
    let dk = run(runKernel('matmul', be, dsm, qh, null, { transA: true, transB: false }));
    if (a.sScale !== 1) dk = run(runKernel('scale', be, dk, { factor: a.sScale }));
    const db = a.needBias ? runKernel('sumToShape', be, { shape: [B, H, N, M], data: ds.data }, { shape: [1, H, N, M] }) : null;
    const g: (KTensor | null)[] = [merge(dq, a.qCol, q.shape), null, null];
    const addInto = (slot: number, x: KTensor, col: number, shape: readonly number[]) => {
      const part = merge(x, col, shape);
      const prev = g[slot];
      if (!prev) g[slot] = part;
      else {
        g[slot] = runKernel('add', be, prev, part);
        run(prev);
        run(part);
      }
    };
    addInto(a.share[1], dk, a.kCol, k.shape);
    addInto(a.share[2], dv, a.vCol, v.shape);
    return [g[0]!, g[1]!, g[2]!, db ? { shape: [H, N, M], data: db.data } : null];
  } finally {
    for (const t of temps) wrap(t, be).dispose();
  }
}
