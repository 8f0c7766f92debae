import type { KTensor } from '../../engine/kernels.js';
import { alloc, check, f32, out, tail } from './memory.js';

/**
 * Cross-entropy on logits and MONAI's soft Dice loss on probabilities, both against a class-index
 * target [N, 1, ...spatial] stored as floats. Everything is accumulated in float64.
 */

function dims(op: string, x: KTensor, target: KTensor): [number, number, number] {
  check(x.shape.length >= 2, `${op}: input must be [N, C, ...], got [${x.shape.join(', ')}]`);
  const [N, C] = x.shape as [number, number];
  const S = tail(x.shape, 2);
  const ok = target.shape.length === x.shape.length && target.shape[0] === N && target.shape[1] === 1 && target.shape.every((d, i) => i < 2 || d === x.shape[i]);
  check(ok, `${op}: target must be [${[N, 1, ...x.shape.slice(2)].join(', ')}], got [${target.shape.join(', ')}]`);
  return [N, C, S];
}

/** Reads a class index stored as a float and checks it is an integer in [0, C). */
function classOf(op: string, v: number, C: number): number {
  if (!(Number.isInteger(v) && v >= 0 && v < C)) throw new Error(`reference backend: ${op}: target value ${v} is not a class index in [0, ${C})`);
  return v;
}

/** Per voxel of sample n: max over classes and Σ_c exp(x − max), in float64. */
function lseParts(xd: Float32Array, n: number, C: number, S: number, mx: Float64Array, se: Float64Array): void {
  const base = n * C * S;
  mx.fill(-Infinity);
  se.fill(0);
  for (let c = 0; c < C; c++) {
    const o = base + c * S;
    for (let s = 0; s < S; s++) if (xd[o + s]! > mx[s]!) mx[s] = xd[o + s]!;
  }
  for (let c = 0; c < C; c++) {
    const o = base + c * S;
    for (let s = 0; s < S; s++) se[s] += Math.exp(xd[o + s]! - mx[s]!);
  }
}

export function crossEntropy(logits: KTensor, target: KTensor): KTensor {
  const [N, C, S] = dims('crossEntropy', logits, target);
  const xd = f32(logits);
  const td = f32(target);
  const mx = new Float64Array(S);
  const se = new Float64Array(S);
  let total = 0;
  for (let n = 0; n < N; n++) {
    lseParts(xd, n, C, S, mx, se);
    for (let s = 0; s < S; s++) {
      const t = classOf('crossEntropy', td[n * S + s]!, C);
      // −log_softmax(x)[t] = max + log Σ exp(x − max) − x[t]
      total += mx[s]! + Math.log(se[s]!) - xd[(n * C + t) * S + s]!;
    }
  }
  const y = alloc(1);
  y[0] = total / (N * S);
  return out([1], y);
}

export function crossEntropyGrad(dloss: KTensor, logits: KTensor, target: KTensor): KTensor {
  const [N, C, S] = dims('crossEntropyGrad', logits, target);
  const xd = f32(logits);
  const td = f32(target);
  const k = f32(dloss)[0]! / (N * S);
  const dx = alloc(xd.length);
  const mx = new Float64Array(S);
  const se = new Float64Array(S);
  for (let n = 0; n < N; n++) {
    lseParts(xd, n, C, S, mx, se);
    for (let c = 0; c < C; c++) {
      const o = (n * C + c) * S;
      for (let s = 0; s < S; s++) {
        const p = Math.exp(xd[o + s]! - mx[s]!) / se[s]!;
        const g = classOf('crossEntropyGrad', td[n * S + s]!, C) === c ? 1 : 0;
        dx[o + s] = k * (p - g);
      }
    }
  }
  return out(logits.shape, dx);
}

export function diceLoss(probs: KTensor, target: KTensor, a: { smoothNr: number; smoothDr: number }): [KTensor, KTensor] {
  const [N, C, S] = dims('diceLoss', probs, target);
  const pd = f32(probs);
  const td = f32(target);
  const stats = alloc(N * C * 3);
  let total = 0;
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      const o = (n * C + c) * S;
      let I = 0;
      let G = 0;
      let P = 0;
      for (let s = 0; s < S; s++) {
        const p = pd[o + s]!;
        P += p;
        if (classOf('diceLoss', td[n * S + s]!, C) === c) {
          I += p;
          G += 1;
        }
      }
      total += 1 - (2 * I + a.smoothNr) / (G + P + a.smoothDr);
      stats[(n * C + c) * 3] = I;
      stats[(n * C + c) * 3 + 1] = G;
      stats[(n * C + c) * 3 + 2] = P;
    }
  }
  const loss = alloc(1);
  loss[0] = total / (N * C);
  return [out([1], loss), out([N, C, 3], stats)];
}

export function diceLossGrad(dloss: KTensor, target: KTensor, stats: KTensor, a: { smoothNr: number; smoothDr: number; channels: number }): KTensor {
  const C = a.channels;
  check(target.shape.length >= 2 && target.shape[1] === 1, `diceLossGrad: target must be [N, 1, ...], got [${target.shape.join(', ')}]`);
  const N = target.shape[0]!;
  const S = tail(target.shape, 2);
  const td = f32(target);
  const st = f32(stats);
  check(st.length === N * C * 3, `diceLossGrad: stats must be [${N}, ${C}, 3], got [${stats.shape.join(', ')}]`);
  const k = -f32(dloss)[0]! / (N * C);
  const dp = alloc(N * C * S);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      const j = (n * C + c) * 3;
      const num = 2 * st[j]! + a.smoothNr;
      const den = st[j + 1]! + st[j + 2]! + a.smoothDr;
      // d f/d p_v = −(2·g_v·den − num)/den²
      const onFg = (k * (2 * den - num)) / (den * den);
      const onBg = (k * -num) / (den * den);
      const o = (n * C + c) * S;
      for (let s = 0; s < S; s++) dp[o + s] = classOf('diceLossGrad', td[n * S + s]!, C) === c ? onFg : onBg;
    }
  }
  const shape = [...target.shape];
  shape[1] = C;
  return out(shape, dp);
}
