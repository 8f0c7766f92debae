import type { KTensor } from '../../engine/kernels.js';
import { erfc } from '../../engine/erf.js';
import { alloc, check, f32, out, tail } from './memory.js';

/** Pointwise activations and the channel softmax. Math in float64, one rounding to float32. */

const INV_SQRT_2PI = 0.3989422804014327; // 1/√(2π)

function sameShape(op: string, a: KTensor, b: KTensor): void {
  check(a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]), `${op}: shapes [${a.shape.join(', ')}] and [${b.shape.join(', ')}] differ`);
}

/** Standard normal CDF Φ(x) = ½·erfc(−x/√2) (erfc keeps relative precision for very negative x). */
function normalCdf(x: number): number {
  return 0.5 * erfc(-x * Math.SQRT1_2);
}

export function gelu(x: KTensor): KTensor {
  const xd = f32(x);
  const y = alloc(xd.length);
  for (let i = 0; i < xd.length; i++) {
    const v = xd[i]!;
    y[i] = v * normalCdf(v);
  }
  return out(x.shape, y);
}

/** d/dx [x·Φ(x)] = Φ(x) + x·φ(x), φ(x) = e^{−x²/2}/√(2π). */
export function geluGrad(dy: KTensor, x: KTensor): KTensor {
  sameShape('geluGrad', dy, x);
  const dyd = f32(dy);
  const xd = f32(x);
  const dx = alloc(xd.length);
  for (let i = 0; i < xd.length; i++) {
    const v = xd[i]!;
    dx[i] = dyd[i]! * (normalCdf(v) + v * INV_SQRT_2PI * Math.exp(-0.5 * v * v));
  }
  return out(x.shape, dx);
}

/** PyTorch casts the slope to float32 and multiplies in float32; the double product of two floats is exact, so one fround reproduces it. */
export function leakyRelu(x: KTensor, a: { slope: number }): KTensor {
  const xd = f32(x);
  const s = Math.fround(a.slope);
  const y = alloc(xd.length);
  for (let i = 0; i < xd.length; i++) {
    const v = xd[i]!;
    y[i] = v > 0 ? v : v * s;
  }
  return out(x.shape, y);
}

export function leakyReluGrad(dy: KTensor, x: KTensor, a: { slope: number }): KTensor {
  sameShape('leakyReluGrad', dy, x);
  const dyd = f32(dy);
  const xd = f32(x);
  const s = Math.fround(a.slope);
  const dx = alloc(xd.length);
  for (let i = 0; i < xd.length; i++) dx[i] = xd[i]! > 0 ? dyd[i]! : dyd[i]! * s;
  return out(x.shape, dx);
}

/** Softmax over axis 1 of [N, C, ...]: subtract the per-voxel max, exponentiate and normalise in float64. */
export function softmax(x: KTensor): KTensor {
  check(x.shape.length >= 2, `softmax: input must be [N, C, ...], got [${x.shape.join(', ')}]`);
  const [N, C] = x.shape as [number, number];
  const S = tail(x.shape, 2);
  const xd = f32(x);
  const y = alloc(xd.length);
  const mx = new Float64Array(S);
  const sum = new Float64Array(S);
  const e = new Float64Array(C * S);
  for (let n = 0; n < N; n++) {
    const base = n * C * S;
    mx.fill(-Infinity);
    sum.fill(0);
    for (let c = 0; c < C; c++) {
      const o = base + c * S;
      for (let s = 0; s < S; s++) if (xd[o + s]! > mx[s]!) mx[s] = xd[o + s]!;
    }
    for (let c = 0; c < C; c++) {
      const o = base + c * S;
      for (let s = 0; s < S; s++) {
        const v = Math.exp(xd[o + s]! - mx[s]!);
        e[c * S + s] = v;
        sum[s] += v;
      }
    }
    for (let c = 0; c < C; c++) {
      const o = base + c * S;
      for (let s = 0; s < S; s++) y[o + s] = e[c * S + s]! / sum[s]!;
    }
  }
  return out(x.shape, y);
}

/** dx = y·(dy − Σ_c dy·y) per voxel. */
export function softmaxGrad(dy: KTensor, y: KTensor): KTensor {
  sameShape('softmaxGrad', dy, y);
  check(y.shape.length >= 2, `softmaxGrad: input must be [N, C, ...], got [${y.shape.join(', ')}]`);
  const [N, C] = y.shape as [number, number];
  const S = tail(y.shape, 2);
  const dyd = f32(dy);
  const yd = f32(y);
  const dx = alloc(yd.length);
  const dot = new Float64Array(S);
  for (let n = 0; n < N; n++) {
    const base = n * C * S;
    dot.fill(0);
    for (let c = 0; c < C; c++) {
      const o = base + c * S;
      for (let s = 0; s < S; s++) dot[s] += dyd[o + s]! * yd[o + s]!;
    }
    for (let c = 0; c < C; c++) {
      const o = base + c * S;
      for (let s = 0; s < S; s++) dx[o + s] = yd[o + s]! * (dyd[o + s]! - dot[s]!);
    }
  }
  return out(y.shape, dx);
}
