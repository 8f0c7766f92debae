import type { AdamWAttrs, KTensor } from '../../engine/kernels.js';
import { check, f32 } from './memory.js';

const fr = Math.fround;

/**
 * PyTorch AdamW (single-tensor path), in place on p, m, v, reproducing PyTorch's float32 rounding
 * op by op. Python computes the scalars in float64; each tensor op casts its Python scalar to
 * float32 and rounds its result to float32:
 *
 *   param.mul_(1 − lr·wd)
 *   exp_avg.mul_(β1).add_(grad, alpha=1 − β1)
 *   exp_avg_sq.mul_(β2).addcmul_(grad, grad, value=1 − β2)
 *   denom = (exp_avg_sq.sqrt() / sqrt(1 − β2^t)).add_(eps)
 *   param.addcdiv_(exp_avg, denom, value=−lr/(1 − β1^t))
 *
 * A product, sum, quotient or square root of float32 values computed in float64 and rounded once
 * equals the float32 operation, so Math.fround after every step is bit-exact with an unfused
 * float32 evaluation (PyTorch's vectorised add_ with alpha may use an FMA; that differs by at most
 * one rounding in the m update).
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
    const mi = fr(fr(md[i]! * beta1) + fr(gi * oneMinusBeta1));
    const vi = fr(fr(vd[i]! * beta2) + fr(fr(gi * oneMinusBeta2) * gi));
    const denom = fr(fr(fr(Math.sqrt(vi)) / bc2Sqrt) + eps);
    pd[i] = fr(pi + fr(fr(negStepSize * mi) / denom));
    md[i] = mi;
    vd[i] = vi;
  }
}
