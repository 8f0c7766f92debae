import type { Conv3dAttrs, KTensor } from '../../engine/kernels.js';
import { alloc, check, f32, out } from './memory.js';

/**
 * 3-D convolution (cross-correlation, as PyTorch) with groups, per-axis stride and zero padding,
 * plus its two gradients. All sums are accumulated in float64 and rounded to float32 once.
 *
 * Every kernel walks the same loop nest: for each weight tap (kd, kh, kw), the output positions
 * whose input position o·s + k − p falls inside the input are a contiguous range per axis
 * (`validRange`), so the innermost loop runs over output W without bounds checks.
 */

interface Geometry {
  N: number;
  Cin: number;
  Cout: number;
  D: number;
  H: number;
  W: number;
  KD: number;
  KH: number;
  KW: number;
  OD: number;
  OH: number;
  OW: number;
  /** input channels per group (= weight dim 1) */
  cpg: number;
  /** output channels per group */
  opg: number;
  sd: number;
  sh: number;
  sw: number;
  pd: number;
  ph: number;
  pw: number;
}

function outSize(n: number, k: number, s: number, p: number): number {
  return Math.floor((n + 2 * p - k) / s) + 1;
}

function geometry(op: string, xShape: readonly number[], wShape: readonly number[], a: Conv3dAttrs): Geometry {
  check(xShape.length === 5, `${op}: input must be [N, C, D, H, W], got [${xShape.join(', ')}]`);
  check(wShape.length === 5, `${op}: weight must be [Cout, Cin/groups, kd, kh, kw], got [${wShape.join(', ')}]`);
  const [N, Cin, D, H, W] = xShape as [number, number, number, number, number];
  const [Cout, cpg, KD, KH, KW] = wShape as [number, number, number, number, number];
  const G = a.groups;
  check(Number.isInteger(G) && G >= 1, `${op}: groups must be a positive integer, got ${G}`);
  check(Cin % G === 0 && Cout % G === 0, `${op}: channels ${Cin} -> ${Cout} are not divisible by groups ${G}`);
  check(cpg === Cin / G, `${op}: weight dim 1 is ${cpg}, expected Cin/groups = ${Cin / G}`);
  const [sd, sh, sw] = a.stride;
  const [pd, ph, pw] = a.padding;
  check(sd >= 1 && sh >= 1 && sw >= 1, `${op}: stride must be >= 1`);
  check(pd >= 0 && ph >= 0 && pw >= 0, `${op}: padding must be >= 0`);
  const OD = outSize(D, KD, sd, pd);
  const OH = outSize(H, KH, sh, ph);
  const OW = outSize(W, KW, sw, pw);
  check(OD >= 1 && OH >= 1 && OW >= 1, `${op}: kernel [${KD}, ${KH}, ${KW}] does not fit padded input [${D}, ${H}, ${W}]`);
  return { N, Cin, Cout, D, H, W, KD, KH, KW, OD, OH, OW, cpg, opg: Cout / G, sd, sh, sw, pd, ph, pw };
}

/**
 * Output indices o in [lo, hi] (inclusive) with 0 <= o·s + k − p < n, clipped to [0, O−1].
 * Empty when lo > hi.
 */
function validRange(O: number, n: number, k: number, s: number, p: number): [number, number] {
  const lo = Math.max(0, Math.ceil((p - k) / s));
  const hi = Math.min(O - 1, Math.floor((n - 1 + p - k) / s));
  return [lo, hi];
}

export function conv3d(x: KTensor, w: KTensor, bias: KTensor | null, a: Conv3dAttrs): KTensor {
  const g = geometry('conv3d', x.shape, w.shape, a);
  const { N, Cin, Cout, D, H, W, KD, KH, KW, OD, OH, OW, cpg, opg, sd, sh, sw, pd, ph, pw } = g;
  const xd = f32(x);
  const wd = f32(w);
  const bd = bias ? f32(bias) : null;
  if (bias) check(bias.shape.length === 1 && bias.shape[0] === Cout, `conv3d: bias must be [${Cout}], got [${bias.shape.join(', ')}]`);
  const inVol = D * H * W;
  const outVol = OD * OH * OW;
  const K = KD * KH * KW;
  const y = alloc(N * Cout * outVol);
  const acc = new Float64Array(outVol);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < Cout; o++) {
      const grp = Math.floor(o / opg);
      acc.fill(bd ? bd[o]! : 0);
      for (let ci = 0; ci < cpg; ci++) {
        const xBase = (n * Cin + grp * cpg + ci) * inVol;
        const wBase = (o * cpg + ci) * K;
        for (let kd = 0; kd < KD; kd++) {
          const [odLo, odHi] = validRange(OD, D, kd, sd, pd);
          for (let kh = 0; kh < KH; kh++) {
            const [ohLo, ohHi] = validRange(OH, H, kh, sh, ph);
            for (let kw = 0; kw < KW; kw++) {
              const [owLo, owHi] = validRange(OW, W, kw, sw, pw);
              const wv = wd[wBase + (kd * KH + kh) * KW + kw]!;
              for (let od = odLo; od <= odHi; od++) {
                const id = od * sd + kd - pd;
                for (let oh = ohLo; oh <= ohHi; oh++) {
                  const ih = oh * sh + kh - ph;
                  const xRow = xBase + (id * H + ih) * W + kw - pw; // + ow·sw
                  const aRow = (od * OH + oh) * OW;
                  if (sw === 1) {
                    for (let ow = owLo; ow <= owHi; ow++) acc[aRow + ow] += wv * xd[xRow + ow]!;
                  } else {
                    for (let ow = owLo; ow <= owHi; ow++) acc[aRow + ow] += wv * xd[xRow + ow * sw]!;
                  }
                }
              }
            }
          }
        }
      }
      y.set(acc, (n * Cout + o) * outVol); // Float64 -> Float32 rounds to nearest
    }
  }
  return out([N, Cout, OD, OH, OW], y);
}

export function conv3dGradInput(dy: KTensor, w: KTensor, a: Conv3dAttrs & { inputShape: readonly number[] }): KTensor {
  const g = geometry('conv3dGradInput', a.inputShape, w.shape, a);
  const { N, Cin, Cout, D, H, W, KD, KH, KW, OD, OH, OW, cpg, opg, sd, sh, sw, pd, ph, pw } = g;
  const want = [N, Cout, OD, OH, OW];
  check(dy.shape.length === 5 && want.every((v, i) => dy.shape[i] === v), `conv3dGradInput: dy must be [${want.join(', ')}] for input [${a.inputShape.join(', ')}], got [${dy.shape.join(', ')}]`);
  const dyd = f32(dy);
  const wd = f32(w);
  const inVol = D * H * W;
  const outVol = OD * OH * OW;
  const K = KD * KH * KW;
  const dx = alloc(N * Cin * inVol);
  const acc = new Float64Array(inVol);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < Cin; c++) {
      const grp = Math.floor(c / cpg);
      const ci = c - grp * cpg;
      acc.fill(0);
      for (let o = grp * opg; o < (grp + 1) * opg; o++) {
        const dBase = (n * Cout + o) * outVol;
        const wBase = (o * cpg + ci) * K;
        for (let kd = 0; kd < KD; kd++) {
          const [odLo, odHi] = validRange(OD, D, kd, sd, pd);
          for (let kh = 0; kh < KH; kh++) {
            const [ohLo, ohHi] = validRange(OH, H, kh, sh, ph);
            for (let kw = 0; kw < KW; kw++) {
              const [owLo, owHi] = validRange(OW, W, kw, sw, pw);
              const wv = wd[wBase + (kd * KH + kh) * KW + kw]!;
              for (let od = odLo; od <= odHi; od++) {
                const id = od * sd + kd - pd;
                for (let oh = ohLo; oh <= ohHi; oh++) {
                  const ih = oh * sh + kh - ph;
                  const xRow = (id * H + ih) * W + kw - pw; // + ow·sw
                  const dRow = dBase + (od * OH + oh) * OW;
                  if (sw === 1) {
                    for (let ow = owLo; ow <= owHi; ow++) acc[xRow + ow] += wv * dyd[dRow + ow]!;
                  } else {
                    for (let ow = owLo; ow <= owHi; ow++) acc[xRow + ow * sw] += wv * dyd[dRow + ow]!;
                  }
                }
              }
            }
          }
        }
      }
      dx.set(acc, (n * Cin + c) * inVol);
    }
  }
  return out([N, Cin, D, H, W], dx);
}

export function conv3dGradWeight(x: KTensor, dy: KTensor, a: Conv3dAttrs & { weightShape: readonly number[] }): KTensor {
  const g = geometry('conv3dGradWeight', x.shape, a.weightShape, a);
  const { N, Cin, Cout, D, H, W, KD, KH, KW, OD, OH, OW, cpg, opg, sd, sh, sw, pd, ph, pw } = g;
  const want = [N, Cout, OD, OH, OW];
  check(dy.shape.length === 5 && want.every((v, i) => dy.shape[i] === v), `conv3dGradWeight: dy must be [${want.join(', ')}] for input [${x.shape.join(', ')}], got [${dy.shape.join(', ')}]`);
  const xd = f32(x);
  const dyd = f32(dy);
  const inVol = D * H * W;
  const outVol = OD * OH * OW;
  const K = KD * KH * KW;
  const dw = alloc(Cout * cpg * K);
  for (let o = 0; o < Cout; o++) {
    const grp = Math.floor(o / opg);
    for (let ci = 0; ci < cpg; ci++) {
      const wBase = (o * cpg + ci) * K;
      for (let kd = 0; kd < KD; kd++) {
        const [odLo, odHi] = validRange(OD, D, kd, sd, pd);
        for (let kh = 0; kh < KH; kh++) {
          const [ohLo, ohHi] = validRange(OH, H, kh, sh, ph);
          for (let kw = 0; kw < KW; kw++) {
            const [owLo, owHi] = validRange(OW, W, kw, sw, pw);
            let s = 0;
            for (let n = 0; n < N; n++) {
              const xBase = (n * Cin + grp * cpg + ci) * inVol;
              const dBase = (n * Cout + o) * outVol;
              for (let od = odLo; od <= odHi; od++) {
                const id = od * sd + kd - pd;
                for (let oh = ohLo; oh <= ohHi; oh++) {
                  const ih = oh * sh + kh - ph;
                  const xRow = xBase + (id * H + ih) * W + kw - pw; // + ow·sw
                  const dRow = dBase + (od * OH + oh) * OW;
                  if (sw === 1) {
                    for (let ow = owLo; ow <= owHi; ow++) s += dyd[dRow + ow]! * xd[xRow + ow]!;
                  } else {
                    for (let ow = owLo; ow <= owHi; ow++) s += dyd[dRow + ow]! * xd[xRow + ow * sw]!;
                  }
                }
              }
            }
            dw[wBase + (kd * KH + kh) * KW + kw] = s;
          }
        }
      }
    }
  }
  return out(a.weightShape, dw);
}
