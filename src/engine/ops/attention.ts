import type { AttentionAttrs } from '../kernels.js';
import { backendOf, record, runKernel, wrap } from '../op.js';
import { shapeString, type Tensor } from '../tensor.js';

/**
 * Fused multi-head attention, token-major so the networks need no permutes: heads are column blocks of
 * q [B, N, Cq], k [B, M, Ck] and v [B, M, Cv] (qCol/kCol/vCol locate head 0, so the packed output of a
 * qkv Linear is read in place and q, k, v may be one tensor). Per head and query row:
 * scores = ((q·qScale)·kᵀ)·sScale + bias[h] + mask[b mod nW]; out = softmax(scores)·v, written to
 * columns h·headDim of out [B, N, heads·headDim] (what the output projection consumes).
 * MONAI Swin and nnFormer scale q before the product (qScale), UNETR and TransBTS after it (sScale).
 * The kernels never hold the [B, heads, N, M] score matrices; the gradient recomputes them from the
 * saved q, k, v and the per-row log-sum-exp (flash-attention style). The mask is a constant (no gradient).
 */
export interface AttentionOptions {
  heads: number;
  headDim: number;
  /** Column of head 0 in q, k, v (default 0). */
  qCol?: number;
  kCol?: number;
  vCol?: number;
  /** [heads, N, M], added to every batch entry (window); gets a gradient summed over them. */
  bias?: Tensor | null;
  /** [nW, N, M], added to batch entry b as mask[b mod nW] (MONAI's shifted-window layout). */
  mask?: Tensor | null;
  qScale?: number;
  sScale?: number;
}

function checkOperands(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions, a: AttentionAttrs): void {
  const fail = (msg: string) => {
    throw new Error(`attention: ${msg}`);
  };
  for (const [n, t] of [
    ['q', q],
    ['k', k],
    ['v', v],
  ] as const)
    if (t.rank !== 3) fail(`${n} ${shapeString(t.shape)} must be [batch, tokens, channels]`);
  if (!Number.isInteger(a.heads) || a.heads < 1 || !Number.isInteger(a.headDim) || a.headDim < 1) fail(`heads (${a.heads}) and headDim (${a.headDim}) must be positive integers`);
  const [B, N] = q.shape as [number, number];
  const M = k.shape[1]!;
  if (k.shape[0] !== B || v.shape[0] !== B || v.shape[1] !== M)
    fail(`q ${shapeString(q.shape)}, k ${shapeString(k.shape)} and v ${shapeString(v.shape)} disagree on batch or key count`);
  const width = a.heads * a.headDim;
  for (const [n, t, col] of [
    ['q', q, a.qCol],
    ['k', k, a.kCol],
    ['v', v, a.vCol],
  ] as const)
    if (!Number.isInteger(col) || col < 0 || col + width > t.shape[2]!) fail(`${n} columns [${col}, ${col + width}) are outside ${shapeString(t.shape)}`);
  // A shared tensor's gradient is one buffer the kernels fill per head: their column ranges must be disjoint.
  const overlap = (c1: number, c2: number) => c1 < c2 + width && c2 < c1 + width;
  if ((k === q && overlap(a.qCol, a.kCol)) || (v === q && overlap(a.qCol, a.vCol)) || (v === k && overlap(a.kCol, a.vCol)))
    fail('q, k and v passed as one tensor must use disjoint column ranges');
  if (o.bias && (o.bias.rank !== 3 || o.bias.shape[0] !== a.heads || o.bias.shape[1] !== N || o.bias.shape[2] !== M))
    fail(`bias ${shapeString(o.bias.shape)} must be [${a.heads}, ${N}, ${M}]`);
  if (o.mask) {
    const m = o.mask;
    if (m.rank !== 3 || m.shape[1] !== N || m.shape[2] !== M || B % m.shape[0]! !== 0)
      fail(`mask ${shapeString(m.shape)} must be [nW, ${N}, ${M}] with nW dividing the batch ${B}`);
    if (m.requiresGrad) fail('mask must be a constant (it gets no gradient)');
  }
}

export function attention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions): Tensor {
  const a: AttentionAttrs = {
    heads: o.heads,
    headDim: o.headDim,
    qCol: o.qCol ?? 0,
    kCol: o.kCol ?? 0,
    vCol: o.vCol ?? 0,
    qScale: o.qScale ?? 1,
    sScale: o.sScale ?? 1,
  };
  checkOperands(q, k, v, o, a);
  const bias = o.bias ?? null;
  const mask = o.mask ?? null;
  const be = backendOf('attention', q, k, v, bias, mask);
  const [yk, lk] = runKernel('attention', be, q.info, k.info, v.info, bias?.info ?? null, mask?.info ?? null, a);
  const lse = wrap(lk, be);
  // Where each input's gradient goes: a tensor passed twice gets one gradient with both parts added.
  const share = [0, k === q ? 0 : 1, v === q ? 0 : v === k ? 1 : 2] as const;
  const inputs = [q, share[1] === 1 ? k : null, share[2] === 2 ? v : null, bias];
  const y = wrap(yk, be);
  const out = record(y, 'attention', inputs, [q, k, v, y, lse, ...(bias ? [bias] : []), ...(mask ? [mask] : [])], (dy, saved, needs) => {
    const [qs, ks, vs, ys, ls] = saved as [Tensor, Tensor, Tensor, Tensor, Tensor];
    const bs = bias ? saved[5]! : null;
    const ms = mask ? saved[bias ? 6 : 5]! : null;
    const attrs = { ...a, share, needBias: needs[3] ?? false };
    const grads = runKernel('attentionGrad', be, dy.info, qs.info, ks.info, vs.info, bs?.info ?? null, ms?.info ?? null, ys.info, ls.info, attrs);
    return grads.map((g, i) => {
      if (!g) return null;
      const t = wrap(g, be);
      if (needs[i]) return t;
      t.dispose();
      return null;
    });
  });
  lse.dispose();
  return out;
}
