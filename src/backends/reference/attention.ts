import type { AttentionAttrs, KTensor } from '../../engine/kernels.js';
import { alloc, check, f32, out } from './memory.js';

/**
 * Fused attention written as its definition, one (batch, head, query row) at a time, float64 sums.
 * The backward recomputes each probability row from q, k and the forward's log-sum-exp, so neither
 * direction holds a [B, heads, N, M] matrix (the point of the fused op).
 */

interface Dims {
  B: number;
  N: number;
  M: number;
  Cq: number;
  Ck: number;
  Cv: number;
  nW: number;
}

function dims(q: KTensor, k: KTensor, v: KTensor, mask: KTensor | null): Dims {
  check(q.shape.length === 3 && k.shape.length === 3 && v.shape.length === 3, 'attention: q, k and v must be [B, tokens, channels]');
  const [B, N, Cq] = q.shape as [number, number, number];
  const [, M, Ck] = k.shape as [number, number, number];
  return { B, N, M, Cq, Ck, Cv: v.shape[2]!, nW: mask ? mask.shape[0]! : 1 };
}

/** scores of query row i of (b, h) into s[0..M), as float64. */
function scoreRow(
  qd: Float32Array,
  kd: Float32Array,
  bd: Float32Array | null,
  md: Float32Array | null,
  g: Dims,
  a: AttentionAttrs,
  b: number,
  h: number,
  i: number,
  s: Float64Array,
): void {
  const D = a.headDim;
  const qo = (b * g.N + i) * g.Cq + a.qCol + h * D;
  const bo = (h * g.N + i) * g.M;
  const mo = ((b % g.nW) * g.N + i) * g.M;
  for (let j = 0; j < g.M; j++) {
    const ko = (b * g.M + j) * g.Ck + a.kCol + h * D;
    let dot = 0;
    for (let d = 0; d < D; d++) dot += Math.fround(qd[qo + d]! * a.qScale) * kd[ko + d]!;
    let v = dot * a.sScale;
    if (bd) v += bd[bo + j]!;
    if (md) v += md[mo + j]!;
    s[j] = v;
  }
}

export function attention(q: KTensor, k: KTensor, v: KTensor, bias: KTensor | null, mask: KTensor | null, a: AttentionAttrs): [KTensor, KTensor] {
  const g = dims(q, k, v, mask);
  const D = a.headDim;
  const H = a.heads;
  const qd = f32(q);
  const kd = f32(k);
  const vd = f32(v);
  const bd = bias ? f32(bias) : null;
  const md = mask ? f32(mask) : null;
  const y = alloc(g.B * g.N * H * D);
  const lse = alloc(g.B * H * g.N);
  const s = new Float64Array(g.M);
  const o = new Float64Array(D);
  for (let b = 0; b < g.B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < g.N; i++) {
        scoreRow(qd, kd, bd, md, g, a, b, h, i, s);
        let mx = -Infinity;
        for (let j = 0; j < g.M; j++) mx = Math.max(mx, s[j]!);
        let sum = 0;
        for (let j = 0; j < g.M; j++) sum += Math.exp(s[j]! - mx);
        o.fill(0);
        for (let j = 0; j < g.M; j++) {
          const p = Math.exp(s[j]! - mx) / sum;
          const vo = (b * g.M + j) * g.Cv + a.vCol + h * D;
          for (let d = 0; d < D; d++) o[d] += p * vd[vo + d]!;
        }
        y.set(o, (b * g.N + i) * H * D + h * D);
        lse[(b * H + h) * g.N + i] = mx + Math.log(sum);
      }
  return [out([g.B, g.N, H * D], y), out([g.B, H, g.N], lse)];
}

export function attentionGrad(
  dout: KTensor,
  q: KTensor,
  k: KTensor,
  v: KTensor,
  bias: KTensor | null,
  mask: KTensor | null,
  outT: KTensor,
  lseT: KTensor,
  a: AttentionAttrs & { share: readonly [0, number, number]; needBias: boolean },
): [KTensor, KTensor | null, KTensor | null, KTensor | null] {
  const g = dims(q, k, v, mask);
  const D = a.headDim;
  const H = a.heads;
  const [qd, kd, vd, dod, od, ld] = [q, k, v, dout, outT, lseT].map(f32) as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
  const bd = bias ? f32(bias) : null;
  const md = mask ? f32(mask) : null;
  // One float64 accumulator per distinct input tensor; k and v add into q's (or k's) when shared.
  const acc = [new Float64Array(qd.length), a.share[1] === 1 ? new Float64Array(kd.length) : null, a.share[2] === 2 ? new Float64Array(vd.length) : null];
  const gq = acc[0]!;
  const gk = acc[a.share[1]]!;
  const gv = acc[a.share[2]]!;
  const db = a.needBias ? new Float64Array(H * g.N * g.M) : null;
  const s = new Float64Array(g.M);
  const HD = H * D;
  for (let b = 0; b < g.B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < g.N; i++) {
        scoreRow(qd, kd, bd, md, g, a, b, h, i, s);
        const lse = ld[(b * H + h) * g.N + i]!;
        const go = (b * g.N + i) * HD + h * D;
        let rowD = 0;
        for (let d = 0; d < D; d++) rowD += dod[go + d]! * od[go + d]!;
        const qo = (b * g.N + i) * g.Cq + a.qCol + h * D;
        for (let j = 0; j < g.M; j++) {
          const p = Math.exp(s[j]! - lse);
          const ko = (b * g.M + j) * g.Ck + a.kCol + h * D;
          const vo = (b * g.M + j) * g.Cv + a.vCol + h * D;
          let dp = 0;
          for (let d = 0; d < D; d++) dp += dod[go + d]! * vd[vo + d]!;
          const ds = p * (dp - rowD);
          if (db) db[(h * g.N + i) * g.M + j] += ds;
          const c = ds * a.sScale;
          for (let d = 0; d < D; d++) {
            gq[qo + d] += c * a.qScale * kd[ko + d]!;
            gk[ko + d] += c * Math.fround(qd[qo + d]! * a.qScale);
            gv[vo + d] += p * dod[go + d]!;
          }
        }
      }
  const toT = (x: Float64Array | null, shape: readonly number[]): KTensor | null => {
    if (!x) return null;
    const y = alloc(x.length);
    y.set(x);
    return out(shape, y);
  };
  return [toT(acc[0]!, q.shape)!, toT(acc[1]!, k.shape), toT(acc[2]!, v.shape), toT(db, [H, g.N, g.M])];
}
