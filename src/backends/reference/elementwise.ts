import type { KTensor } from '../../engine/kernels.js';
import { alloc, check, f32, numel, out, tail } from './memory.js';

/**
 * Elementwise arithmetic, channel scaling, channel concat/slice and reductions.
 * Single float32 ops (a + b, x·s) are computed in float64 and rounded once, which equals the
 * correctly rounded float32 result; reductions accumulate in float64.
 */

function sameShape(op: string, a: KTensor, b: KTensor): void {
  check(a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]), `${op}: shapes [${a.shape.join(', ')}] and [${b.shape.join(', ')}] differ`);
}

function nc(op: string, x: KTensor): [number, number, number] {
  check(x.shape.length >= 2, `${op}: input must be [N, C, ...], got [${x.shape.join(', ')}]`);
  return [x.shape[0]!, x.shape[1]!, tail(x.shape, 2)];
}

export function add(a: KTensor, b: KTensor): KTensor {
  sameShape('add', a, b);
  const ad = f32(a);
  const bd = f32(b);
  const y = alloc(ad.length);
  for (let i = 0; i < ad.length; i++) y[i] = ad[i]! + bd[i]!;
  return out(a.shape, y);
}

/** x·factor with factor taken in float64 (so x·(1/n) rounds like x/n). */
export function scale(x: KTensor, a: { factor: number }): KTensor {
  const xd = f32(x);
  const f = a.factor;
  const y = alloc(xd.length);
  for (let i = 0; i < xd.length; i++) y[i] = xd[i]! * f;
  return out(x.shape, y);
}

export function mulChannel(x: KTensor, s: KTensor): KTensor {
  const [N, C, S] = nc('mulChannel', x);
  const sd = f32(s);
  check(sd.length === C, `mulChannel: scale must be [${C}], got [${s.shape.join(', ')}]`);
  const xd = f32(x);
  const y = alloc(xd.length);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      const o = (n * C + c) * S;
      const v = sd[c]!;
      for (let i = 0; i < S; i++) y[o + i] = xd[o + i]! * v;
    }
  }
  return out(x.shape, y);
}

export function mulChannelGradScale(dy: KTensor, x: KTensor): KTensor {
  sameShape('mulChannelGradScale', dy, x);
  const [N, C, S] = nc('mulChannelGradScale', x);
  const dyd = f32(dy);
  const xd = f32(x);
  const g = alloc(C);
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let n = 0; n < N; n++) {
      const o = (n * C + c) * S;
      for (let i = 0; i < S; i++) s += dyd[o + i]! * xd[o + i]!;
    }
    g[c] = s;
  }
  return out([C], g);
}

export function sumToChannels(x: KTensor): KTensor {
  const [N, C, S] = nc('sumToChannels', x);
  const xd = f32(x);
  const y = alloc(C);
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let n = 0; n < N; n++) {
      const o = (n * C + c) * S;
      for (let i = 0; i < S; i++) s += xd[o + i]!;
    }
    y[c] = s;
  }
  return out([C], y);
}

export function concatChannels(xs: readonly KTensor[]): KTensor {
  check(xs.length > 0, 'concatChannels: no inputs');
  const first = xs[0]!;
  const [N, , S] = nc('concatChannels', first);
  let Ctot = 0;
  for (const t of xs) {
    check(
      t.shape.length === first.shape.length && t.shape.every((d, i) => i === 1 || d === first.shape[i]),
      `concatChannels: shapes [${first.shape.join(', ')}] and [${t.shape.join(', ')}] differ outside axis 1`,
    );
    Ctot += t.shape[1]!;
  }
  const y = alloc(N * Ctot * S);
  for (let n = 0; n < N; n++) {
    let c0 = 0;
    for (const t of xs) {
      const C = t.shape[1]!;
      const td = f32(t);
      y.set(td.subarray(n * C * S, (n + 1) * C * S), (n * Ctot + c0) * S);
      c0 += C;
    }
  }
  const shape = [...first.shape];
  shape[1] = Ctot;
  return out(shape, y);
}

export function sliceChannels(x: KTensor, a: { start: number; end: number }): KTensor {
  const [N, C, S] = nc('sliceChannels', x);
  const { start, end } = a;
  check(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end && end <= C, `sliceChannels: [${start}, ${end}) is not a channel range of [0, ${C})`);
  const k = end - start;
  const xd = f32(x);
  const y = alloc(N * k * S);
  for (let n = 0; n < N; n++) y.set(xd.subarray((n * C + start) * S, (n * C + end) * S), n * k * S);
  const shape = [...x.shape];
  shape[1] = k;
  return out(shape, y);
}

export function sum(x: KTensor): KTensor {
  const xd = f32(x);
  let s = 0;
  for (let i = 0; i < xd.length; i++) s += xd[i]!;
  const y = alloc(1);
  y[0] = s;
  return out([1], y);
}

export function fillFromScalar(s: KTensor, a: { shape: readonly number[]; factor: number }): KTensor {
  const sd = f32(s);
  check(sd.length >= 1, 'fillFromScalar: scalar tensor is empty');
  const y = alloc(numel(a.shape));
  y.fill(sd[0]! * a.factor);
  return out(a.shape, y);
}
