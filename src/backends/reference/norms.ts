import type { KTensor } from '../../engine/kernels.js';
import { alloc, check, f32, out, tail } from './memory.js';

/**
 * Instance norm and layer norm. Statistics are two-pass (mean, then biased variance of x − mean)
 * in float64, so inputs with a large mean (≈100) keep their precision; outputs are rounded to
 * float32 once.
 */

export function instanceNorm(x: KTensor, a: { eps: number }): [KTensor, KTensor] {
  check(x.shape.length >= 3, `instanceNorm: input must be [N, C, ...spatial], got [${x.shape.join(', ')}]`);
  const [N, C] = x.shape as [number, number];
  const S = tail(x.shape, 2);
  const xd = f32(x);
  const y = alloc(N * C * S);
  const rstd = alloc(N * C);
  for (let nc = 0; nc < N * C; nc++) {
    const base = nc * S;
    let sum = 0;
    for (let i = 0; i < S; i++) sum += xd[base + i]!;
    const mean = sum / S;
    let sq = 0;
    for (let i = 0; i < S; i++) {
      const d = xd[base + i]! - mean;
      sq += d * d;
    }
    const r = 1 / Math.sqrt(sq / S + a.eps);
    for (let i = 0; i < S; i++) y[base + i] = (xd[base + i]! - mean) * r;
    rstd[nc] = r;
  }
  return [out(x.shape, y), out([N, C], rstd)];
}

export function instanceNormGrad(dy: KTensor, y: KTensor, rstd: KTensor): KTensor {
  check(
    dy.shape.length >= 3 && dy.shape.length === y.shape.length && dy.shape.every((d, i) => d === y.shape[i]),
    `instanceNormGrad: dy [${dy.shape.join(', ')}] and y [${y.shape.join(', ')}] differ`,
  );
  const [N, C] = dy.shape as [number, number];
  const S = tail(dy.shape, 2);
  const dyd = f32(dy);
  const yd = f32(y);
  const rd = f32(rstd);
  check(rd.length === N * C, `instanceNormGrad: rstd must hold N·C = ${N * C} values`);
  const dx = alloc(N * C * S);
  for (let nc = 0; nc < N * C; nc++) {
    const base = nc * S;
    let sdy = 0;
    let sdyy = 0;
    for (let i = 0; i < S; i++) {
      const g = dyd[base + i]!;
      sdy += g;
      sdyy += g * yd[base + i]!;
    }
    const mdy = sdy / S;
    const mdyy = sdyy / S;
    const r = rd[nc]!;
    for (let i = 0; i < S; i++) dx[base + i] = r * (dyd[base + i]! - mdy - yd[base + i]! * mdyy);
  }
  return out(dy.shape, dx);
}

/**
 * The layout of the normalised vectors: `count` vectors of `C` values; vector v's element c is at
 * index base(v) + c·stride. channels_first [N, C, S]: v = n·S + s, base = n·C·S + s, stride = S.
 * channels_last [..., C]: base = v·C, stride = 1.
 */
interface Layout {
  C: number;
  count: number;
  /** spatial size S for channels_first (1 for channels_last) */
  S: number;
  statShape: number[];
}

function layout(op: string, shape: readonly number[], channelsLast: boolean): Layout {
  if (channelsLast) {
    check(shape.length >= 1, `${op}: input must have at least 1 dimension`);
    const C = shape[shape.length - 1]!;
    const statShape = shape.slice(0, -1);
    return { C, count: tail(statShape, 0), S: 1, statShape };
  }
  check(shape.length >= 2, `${op}: channels_first input must be [N, C, ...], got [${shape.join(', ')}]`);
  const [N, C] = shape as [number, number];
  const S = tail(shape, 2);
  return { C, count: N * S, S, statShape: [N, ...shape.slice(2)] };
}

function base(l: Layout, v: number): number {
  if (l.S === 1) return v * l.C;
  const n = Math.floor(v / l.S);
  return n * l.C * l.S + (v - n * l.S);
}

export function layerNorm(x: KTensor, w: KTensor, b: KTensor, a: { eps: number; channelsLast: boolean }): [KTensor, KTensor, KTensor] {
  const l = layout('layerNorm', x.shape, a.channelsLast);
  const { C, count } = l;
  const st = a.channelsLast ? 1 : l.S;
  const xd = f32(x);
  const wd = f32(w);
  const bd = f32(b);
  check(wd.length === C && bd.length === C, `layerNorm: weight and bias must be [${C}]`);
  const y = alloc(xd.length);
  const mean = alloc(count);
  const rstd = alloc(count);
  for (let v = 0; v < count; v++) {
    const o = base(l, v);
    let sum = 0;
    for (let c = 0; c < C; c++) sum += xd[o + c * st]!;
    const m = sum / C;
    let sq = 0;
    for (let c = 0; c < C; c++) {
      const d = xd[o + c * st]! - m;
      sq += d * d;
    }
    const r = 1 / Math.sqrt(sq / C + a.eps);
    for (let c = 0; c < C; c++) y[o + c * st] = (xd[o + c * st]! - m) * r * wd[c]! + bd[c]!;
    mean[v] = m;
    rstd[v] = r;
  }
  return [out(x.shape, y), out(l.statShape, mean), out(l.statShape, rstd)];
}

/**
 * With x̂ = (x − mean)·rstd and g = dy·w: dx = rstd·(g − mean_c(g) − x̂·mean_c(g·x̂)),
 * dw[c] = Σ dy·x̂, db[c] = Σ dy. The mean is recomputed from x in float64 (one cheap pass) rather
 * than taken from the float32 `mean`, so x − mean stays exact-ish when |mean| ≫ std; rstd is used as given.
 */
export function layerNormGrad(dy: KTensor, x: KTensor, w: KTensor, mean: KTensor, rstd: KTensor, a: { channelsLast: boolean }): [KTensor, KTensor, KTensor] {
  check(dy.shape.length === x.shape.length && dy.shape.every((d, i) => d === x.shape[i]), `layerNormGrad: dy [${dy.shape.join(', ')}] and x [${x.shape.join(', ')}] differ`);
  const l = layout('layerNormGrad', x.shape, a.channelsLast);
  const { C, count } = l;
  const st = a.channelsLast ? 1 : l.S;
  const dyd = f32(dy);
  const xd = f32(x);
  const wd = f32(w);
  const md = f32(mean);
  const rd = f32(rstd);
  check(wd.length === C, `layerNormGrad: weight must be [${C}]`);
  check(md.length === count && rd.length === count, `layerNormGrad: mean and rstd must hold ${count} values`);
  const dx = alloc(xd.length);
  const dw = new Float64Array(C);
  const db = new Float64Array(C);
  const xhat = new Float64Array(C);
  for (let v = 0; v < count; v++) {
    const o = base(l, v);
    let sum = 0;
    for (let c = 0; c < C; c++) sum += xd[o + c * st]!;
    const m = sum / C;
    const r = rd[v]!;
    let sg = 0;
    let sgx = 0;
    for (let c = 0; c < C; c++) {
      const i = o + c * st;
      const xh = (xd[i]! - m) * r;
      const d = dyd[i]!;
      const g = d * wd[c]!;
      xhat[c] = xh;
      sg += g;
      sgx += g * xh;
      dw[c] += d * xh;
      db[c] += d;
    }
    const mg = sg / C;
    const mgx = sgx / C;
    for (let c = 0; c < C; c++) dx[o + c * st] = r * (dyd[o + c * st]! * wd[c]! - mg - xhat[c]! * mgx);
  }
  void md; // mean is recomputed in float64 above (see doc comment)
  const dwo = alloc(C);
  const dbo = alloc(C);
  dwo.set(dw);
  dbo.set(db);
  return [out(x.shape, dx), out([C], dwo), out([C], dbo)];
}
