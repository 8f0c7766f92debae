import type { Conv3dAttrs, KTensor } from '../../engine/kernels.js';
import { convGeometry, type ConvGeometry } from '../../engine/conv-geometry.js';
import { alloc, check, f32, out } from './memory.js';

/**
 * 3-D convolution (cross-correlation, as PyTorch) with groups, per-axis stride and zero padding,
 * plus its two gradients. All sums are accumulated in float64 and rounded to float32 once.
 *
 * Every kernel walks the same loop nest: for each weight tap (kd, kh), the output rows whose input
 * row o·s + k − p falls inside the input are a contiguous range per axis (`validRange`); each pair
 * of rows (one output row, one input row) is then handled by a row helper that applies all kw taps
 * along W. The row helpers have a fused path for the common stride-1, kw = 3 case (three taps per
 * load/store of the accumulator, ~2× faster) and a plain per-tap path for everything else; both
 * compute the same float64 sums, only the order of the additions differs.
 */

type Geometry = ConvGeometry;

function geometry(op: string, xShape: readonly number[], wShape: readonly number[], a: Conv3dAttrs): Geometry {
  return convGeometry('reference backend', op, xShape, wShape, a);
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

/** validRange along W for every kw, flattened [lo0, hi0, lo1, hi1, …]: computed once per kernel call. */
function columnRanges(OW: number, W: number, KW: number, sw: number, pw: number): Int32Array {
  const r = new Int32Array(2 * KW);
  for (let kw = 0; kw < KW; kw++) [r[2 * kw], r[2 * kw + 1]] = validRange(OW, W, kw, sw, pw);
  return r;
}

/**
 * The loop nest all three kernels share: for the weight taps (kd, kh), calls visit(outRow, inRow) for
 * every output row (od, oh) whose input row (od·sd + kd − pd, oh·sh + kh − ph) lies inside the input.
 * Both arguments are flat offsets of column 0 within one channel's volume.
 */
function forEachRowPair(g: Geometry, kd: number, kh: number, visit: (outRow: number, inRow: number) => void): void {
  const { D, H, W, OD, OH, OW, sd, sh, pd, ph } = g;
  const [odLo, odHi] = validRange(OD, D, kd, sd, pd);
  const [ohLo, ohHi] = validRange(OH, H, kh, sh, ph);
  for (let od = odLo; od <= odHi; od++) {
    const id = od * sd + kd - pd;
    for (let oh = ohLo; oh <= ohHi; oh++) visit((od * OH + oh) * OW, (id * H + oh * sh + kh - ph) * W);
  }
}

/** The gradients' dy must have the forward's output shape [N, Cout, OD, OH, OW]. */
function checkDy(op: string, g: Geometry, dy: KTensor, inputShape: readonly number[]): void {
  const want = [g.N, g.Cout, g.OD, g.OH, g.OW];
  check(
    dy.shape.length === 5 && want.every((v, i) => dy.shape[i] === v),
    `${op}: dy must be [${want.join(', ')}] for input [${inputShape.join(', ')}], got [${dy.shape.join(', ')}]`,
  );
}

/**
 * Forward row: acc[a + ow] += Σ_kw w[wo + kw]·x[r + ow·sw + kw − pw] for ow in [0, OW), skipping taps
 * whose input column ow·sw + kw − pw is outside [0, W). `r` is the index of column 0 of the input row.
 */
function forwardRow(
  acc: Float64Array,
  a: number,
  x: Float32Array,
  r: number,
  OW: number,
  W: number,
  sw: number,
  pw: number,
  w: Float32Array,
  wo: number,
  KW: number,
  cols: Int32Array,
): void {
  if (sw === 1 && KW === 3) {
    const w0 = w[wo]!;
    const w1 = w[wo + 1]!;
    const w2 = w[wo + 2]!;
    // columns where all three taps are inside: ow − pw ≥ 0 and ow + 2 − pw ≤ W − 1
    const lo = Math.min(Math.max(0, pw), OW);
    const hi = Math.max(Math.min(OW - 1, W - 3 + pw), lo - 1);
    for (let ow = lo; ow <= hi; ow++) {
      const j = r + ow - pw;
      acc[a + ow] += w0 * x[j]! + w1 * x[j + 1]! + w2 * x[j + 2]!;
    }
    for (let ow = 0; ow < OW; ow++) {
      if (ow === lo) ow = hi + 1; // edges only
      if (ow >= OW) break;
      for (let kw = 0; kw < 3; kw++) {
        const iw = ow + kw - pw;
        if (iw >= 0 && iw < W) acc[a + ow] += w[wo + kw]! * x[r + iw]!;
      }
    }
    return;
  }
  for (let kw = 0; kw < KW; kw++) {
    const lo = cols[2 * kw]!;
    const hi = cols[2 * kw + 1]!;
    const wv = w[wo + kw]!;
    const xr = r + kw - pw;
    if (sw === 1) for (let ow = lo; ow <= hi; ow++) acc[a + ow] += wv * x[xr + ow]!;
    else for (let ow = lo; ow <= hi; ow++) acc[a + ow] += wv * x[xr + ow * sw]!;
  }
}

/**
 * Transposed row (gradInput): acc[a + iw] += w[wo + kw]·dy[d + ow] for every ow in [0, OW) and kw
 * with iw = ow·sw + kw − pw inside [0, W). `a` is the index of column 0 of the input-gradient row.
 */
function transposedRow(
  acc: Float64Array,
  a: number,
  dy: Float32Array,
  d: number,
  OW: number,
  W: number,
  sw: number,
  pw: number,
  w: Float32Array,
  wo: number,
  KW: number,
  cols: Int32Array,
): void {
  if (sw === 1 && KW === 3) {
    const w0 = w[wo]!;
    const w1 = w[wo + 1]!;
    const w2 = w[wo + 2]!;
    // input column iw gets ow = iw + pw − kw; all three inside [0, OW) when iw + pw − 2 ≥ 0 and iw + pw ≤ OW − 1
    const lo = Math.min(Math.max(0, 2 - pw), W);
    const hi = Math.max(Math.min(W - 1, OW - 1 - pw), lo - 1);
    for (let iw = lo; iw <= hi; iw++) {
      const j = d + iw + pw;
      acc[a + iw] += w0 * dy[j]! + w1 * dy[j - 1]! + w2 * dy[j - 2]!;
    }
    for (let iw = 0; iw < W; iw++) {
      if (iw === lo) iw = hi + 1; // edges only
      if (iw >= W) break;
      for (let kw = 0; kw < 3; kw++) {
        const ow = iw + pw - kw;
        if (ow >= 0 && ow < OW) acc[a + iw] += w[wo + kw]! * dy[d + ow]!;
      }
    }
    return;
  }
  for (let kw = 0; kw < KW; kw++) {
    const lo = cols[2 * kw]!;
    const hi = cols[2 * kw + 1]!;
    const wv = w[wo + kw]!;
    const ar = a + kw - pw;
    if (sw === 1) for (let ow = lo; ow <= hi; ow++) acc[ar + ow] += wv * dy[d + ow]!;
    else for (let ow = lo; ow <= hi; ow++) acc[ar + ow * sw] += wv * dy[d + ow]!;
  }
}

/**
 * Weight-gradient row: sums[kw] += Σ_ow dy[d + ow]·x[r + ow·sw + kw − pw] over ow in [0, OW) with the
 * input column inside [0, W).
 */
function weightRow(sums: Float64Array, dy: Float32Array, d: number, x: Float32Array, r: number, OW: number, W: number, sw: number, pw: number, KW: number, cols: Int32Array): void {
  if (sw === 1 && KW === 3) {
    const lo = Math.min(Math.max(0, pw), OW);
    const hi = Math.max(Math.min(OW - 1, W - 3 + pw), lo - 1);
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    for (let ow = lo; ow <= hi; ow++) {
      const g = dy[d + ow]!;
      const j = r + ow - pw;
      s0 += g * x[j]!;
      s1 += g * x[j + 1]!;
      s2 += g * x[j + 2]!;
    }
    for (let ow = 0; ow < OW; ow++) {
      if (ow === lo) ow = hi + 1; // edges only
      if (ow >= OW) break;
      const g = dy[d + ow]!;
      if (ow - pw >= 0 && ow - pw < W) s0 += g * x[r + ow - pw]!;
      if (ow + 1 - pw >= 0 && ow + 1 - pw < W) s1 += g * x[r + ow + 1 - pw]!;
      if (ow + 2 - pw >= 0 && ow + 2 - pw < W) s2 += g * x[r + ow + 2 - pw]!;
    }
    sums[0] += s0;
    sums[1] += s1;
    sums[2] += s2;
    return;
  }
  for (let kw = 0; kw < KW; kw++) {
    const lo = cols[2 * kw]!;
    const hi = cols[2 * kw + 1]!;
    const xr = r + kw - pw;
    let s = 0;
    if (sw === 1) for (let ow = lo; ow <= hi; ow++) s += dy[d + ow]! * x[xr + ow]!;
    else for (let ow = lo; ow <= hi; ow++) s += dy[d + ow]! * x[xr + ow * sw]!;
    sums[kw] += s;
  }
}

export function conv3d(x: KTensor, w: KTensor, bias: KTensor | null, a: Conv3dAttrs): KTensor {
  const g = geometry('conv3d', x.shape, w.shape, a);
  const { N, Cin, Cout, D, H, W, KD, KH, KW, OD, OH, OW, cpg, opg, sw, pw } = g;
  const xd = f32(x);
  const wd = f32(w);
  const bd = bias ? f32(bias) : null;
  if (bias) check(bias.shape.length === 1 && bias.shape[0] === Cout, `conv3d: bias must be [${Cout}], got [${bias.shape.join(', ')}]`);
  const inVol = D * H * W;
  const outVol = OD * OH * OW;
  const K = KD * KH * KW;
  const cols = columnRanges(OW, W, KW, sw, pw);
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
          for (let kh = 0; kh < KH; kh++) {
            const wo = wBase + (kd * KH + kh) * KW;
            forEachRowPair(g, kd, kh, (outRow, inRow) => forwardRow(acc, outRow, xd, xBase + inRow, OW, W, sw, pw, wd, wo, KW, cols));
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
  const { N, Cin, Cout, D, H, W, KD, KH, KW, OD, OH, OW, cpg, opg, sw, pw } = g;
  checkDy('conv3dGradInput', g, dy, a.inputShape);
  const dyd = f32(dy);
  const wd = f32(w);
  const inVol = D * H * W;
  const outVol = OD * OH * OW;
  const K = KD * KH * KW;
  const cols = columnRanges(OW, W, KW, sw, pw);
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
          for (let kh = 0; kh < KH; kh++) {
            const wo = wBase + (kd * KH + kh) * KW;
            forEachRowPair(g, kd, kh, (outRow, inRow) => transposedRow(acc, inRow, dyd, dBase + outRow, OW, W, sw, pw, wd, wo, KW, cols));
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
  const { N, Cin, Cout, D, H, W, KD, KH, KW, OD, OH, OW, cpg, opg, sw, pw } = g;
  checkDy('conv3dGradWeight', g, dy, x.shape);
  const xd = f32(x);
  const dyd = f32(dy);
  const inVol = D * H * W;
  const outVol = OD * OH * OW;
  const K = KD * KH * KW;
  const cols = columnRanges(OW, W, KW, sw, pw);
  const dw = alloc(Cout * cpg * K);
  const sums = new Float64Array(KW);
  for (let o = 0; o < Cout; o++) {
    const grp = Math.floor(o / opg);
    for (let ci = 0; ci < cpg; ci++) {
      const wBase = (o * cpg + ci) * K;
      for (let kd = 0; kd < KD; kd++) {
        for (let kh = 0; kh < KH; kh++) {
          sums.fill(0);
          for (let n = 0; n < N; n++) {
            const xBase = (n * Cin + grp * cpg + ci) * inVol;
            const dBase = (n * Cout + o) * outVol;
            forEachRowPair(g, kd, kh, (outRow, inRow) => weightRow(sums, dyd, dBase + outRow, xd, xBase + inRow, OW, W, sw, pw, KW, cols));
          }
          dw.set(sums, wBase + (kd * KH + kh) * KW);
        }
      }
    }
  }
  return out(a.weightShape, dw);
}
