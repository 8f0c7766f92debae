import type { AdamWAttrs, KTensor } from '../../engine/kernels.js';
import { check, f32 } from './memory.js';

const fr = Math.fround;

const scratch = new Float64Array(1);
const words = new Uint32Array(scratch.buffer); // little-endian: words[0] = low 32 bits of the mantissa

/**
 * Fused multiply-add in float32: the correctly rounded float32 of a·b + c (one rounding), for
 * float32 a, b, c. a·b is exact in float64 (24 + 24 bits); the float64 sum s = a·b + c may be
 * inexact, and rounding s to float32 could then round twice. Rounding s "to odd" first (if the
 * sum was inexact and s's last bit is 0, step one ulp towards the true value) makes the second
 * rounding correct, because float64 has more than 24 + 1 bits.
 */
export function fma32(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  if (!Number.isFinite(s)) return fr(s);
  // TwoSum: e is the exact error of s = fl(p + c).
  const bv = s - p;
  const e = p - (s - bv) + (c - bv);
  if (e === 0) return fr(s);
  scratch[0] = s;
  if ((words[0]! & 1) === 0) {
    if (e > 0 === s > 0) {
      words[0] = words[0]! + 1; // even low word: no carry
    } else if (words[0] === 0) {
      words[0] = 0xffffffff;
      words[1] = words[1]! - 1;
    } else {
      words[0] = words[0]! - 1;
    }
  }
  return fr(scratch[0]!);
}

/**
 * PyTorch AdamW, single-tensor path as in torch 1.13 (the fixtures' version), in place on p, m, v,
 * reproducing PyTorch's float32 rounding op by op. Python computes the scalars in float64; each
 * tensor op casts its Python scalar to float32 and rounds its result to float32:
 *
 *   param.mul_(1 − lr·wd)
 *   exp_avg.mul_(β1).add_(grad, alpha=1 − β1)          add with alpha: one FMA, exp_avg + grad·alpha
 *   exp_avg_sq.mul_(β2).addcmul_(grad, grad, value=1 − β2)   (value·grad) rounded, then FMA ·grad + exp_avg_sq
 *   denom = (exp_avg_sq.sqrt() / sqrt(1 − β2^t)).add_(eps)
 *   param.addcdiv_(exp_avg, denom, value=−lr/(1 − β1^t))     param + (value·exp_avg)/denom
 *
 * The fused steps are where PyTorch's vectorised CPU kernels use FMA instructions; with them, three
 * steps of the `adamw` fixture (257 values, lr 1e-4, wd 1e-2) match bit for bit, while rounding the
 * products separately leaves 46-130 of the m/v values one ulp off. Every other op is a single float32
 * operation, computed in float64 and rounded once (exact for +, −, ·, /, sqrt of float32 values).
 */
export function adamwStep(p: KTensor, g: KTensor, m: KTensor, v: KTensor, a: AdamWAttrs): void {
  const pd = f32(p);
  const gd = f32(g);
  const md = f32(m);
  const vd = f32(v);
  check(gd.length === pd.length && md.length === pd.length && vd.length === pd.length, 'adamwStep: p, g, m, v must have the same size');
  check(Number.isInteger(a.step) && a.step >= 1, `adamwStep: step must be a positive integer, got ${a.step}`);
  // Python-side scalars, float64.
  const biasCorrection1 = 1 - a.beta1 ** a.step;
  const biasCorrection2 = 1 - a.beta2 ** a.step;
  const stepSize = a.lr / biasCorrection1;
  const biasCorrection2Sqrt = Math.sqrt(biasCorrection2);
  // The same scalars as float32 operands of the tensor ops.
  const decay = fr(1 - a.lr * a.weightDecay);
  const beta1 = fr(a.beta1);
  const oneMinusBeta1 = fr(1 - a.beta1);
  const beta2 = fr(a.beta2);
  const oneMinusBeta2 = fr(1 - a.beta2);
  const bc2Sqrt = fr(biasCorrection2Sqrt);
  const eps = fr(a.eps);
  const negStepSize = fr(-stepSize);
  for (let i = 0; i < pd.length; i++) {
    const gi = gd[i]!;
    const pi = fr(pd[i]! * decay);
    const mi = fma32(gi, oneMinusBeta1, fr(md[i]! * beta1));
    const vi = fma32(fr(oneMinusBeta2 * gi), gi, fr(vd[i]! * beta2));
    const denom = fr(fr(fr(Math.sqrt(vi)) / bc2Sqrt) + eps);
    pd[i] = fr(pi + fr(fr(negStepSize * mi) / denom));
    md[i] = mi;
    vd[i] = vi;
  }
}
