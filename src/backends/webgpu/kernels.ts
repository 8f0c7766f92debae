/**
 * Every kernel of the contract (src/engine/kernels.ts) in WGSL. All arithmetic is float32:
 * reductions use per-thread Kahan–Babuška accumulation and a pairwise workgroup tree (no atomics,
 * so results are deterministic); norm statistics are two-pass with a corrected mean (mean of
 * x − m₁ added back) so inputs with mean ≈ 100 keep their precision; GELU uses an accurate Φ
 * (math.ts); AdamW follows PyTorch's op order with fma where PyTorch's CPU kernels fuse.
 */
import type { AdamWAttrs, Conv3dAttrs, Kernels, KTensor } from '../../engine/kernels.js';
import { allocStorage, commandEncoder, freeStorage, recorded, storageOf, type GpuStorage } from './device.js';
import { run, WGSL_REDUCE, type TensorArg } from './program.js';
import { WGSL_NORMAL_CDF } from './math.js';

function check(cond: boolean, msg: string): asserts cond {
  if (!cond) throw new Error(`webgpu backend: ${msg}`);
}

function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function tail(shape: readonly number[], from: number): number {
  let n = 1;
  for (let i = from; i < shape.length; i++) n *= shape[i]!;
  return n;
}

function sameShape(op: string, a: KTensor, b: KTensor): void {
  check(a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]), `${op}: shapes [${a.shape.join(', ')}] and [${b.shape.join(', ')}] differ`);
}

function nc(op: string, x: KTensor): [number, number, number] {
  check(x.shape.length >= 2, `${op}: input must be [N, C, ...], got [${x.shape.join(', ')}]`);
  return [x.shape[0]!, x.shape[1]!, tail(x.shape, 2)];
}

function out(shape: readonly number[], s: GpuStorage): KTensor {
  return { shape: [...shape], data: s };
}

const r = (name: string, t: KTensor, op: string): TensorArg => ({ name, s: storageOf(t, op), mode: 'r' });
const w = (name: string, s: GpuStorage): TensorArg => ({ name, s, mode: 'w' });

const WG = 256;
const groups = (n: number) => Math.ceil(n / WG);

// ---------------------------------------------------------------------------------------------
// Elementwise

/** One thread per element: `body` computes `v` from index `i` (and may use any ld_*). */
function elementwise(label: string, size: number, inputs: TensorArg[], body: string, extra: { fconsts?: Record<string, number>; consts?: Record<string, number>; uniforms?: number[]; lib?: string } = {}): GpuStorage {
  const y = allocStorage(size);
  run({
    label,
    src: `${extra.lib ?? ''}\nfn kmain(wg: u32, li: u32) {\n  let i = wg * WG + li;\n  if (i >= NE) { return; }\n${body}\n  st_y(i, v);\n}\n`,
    tensors: [...inputs, w('y', y)],
    consts: { NE: size, ...extra.consts },
    fconsts: extra.fconsts,
    uniforms: extra.uniforms,
    workgroups: groups(size),
  });
  return y;
}

// ---------------------------------------------------------------------------------------------
// Reductions

/**
 * Channel reduction over [N, C, S] (S = 1 and N = vector count for channels-last layouts):
 * out[c] = Σ_{n,s} f(n, c, s), f = x (sum) or a·b (dot). One workgroup per (c, part); with more
 * than one part a second pass sums the parts of each channel.
 */
function channelReduce(label: string, N: number, C: number, S: number, ins: TensorArg[], mode: 'sum' | 'dot'): GpuStorage {
  const M = N * S;
  const parts = Math.max(1, Math.min(256, Math.floor(M / (WG * 64))));
  const term = mode === 'sum' ? 'ld_a(idx)' : 'ld_a(idx) * ld_b(idx)';
  const partial = allocStorage(C * parts);
  run({
    label,
    src: `${WGSL_REDUCE}
fn kmain(wg: u32, li: u32) {
  let c = wg / PARTS;
  let part = wg % PARTS;
  let per = (M + PARTS - 1u) / PARTS;
  let m0 = part * per;
  let m1 = min(M, m0 + per);
  var k = vec2<f32>(0.0f, 0.0f);
  for (var m = m0 + li; m < m1; m = m + WG) {
    let n = m / S;
    let s = m - n * S;
    let idx = (n * C + c) * S + s;
    k = kadd(k, ${term});
  }
  let tot = wg_sum(li, k.x + k.y);
  if (li == 0u) { st_y(wg, tot); }
}`,
    tensors: [...ins, w('y', partial)],
    consts: { M, S, C, PARTS: parts },
    workgroups: C * parts,
  });
  if (parts === 1) return partial;
  const y = allocStorage(C);
  run({
    label: `${label} (parts)`,
    src: `${WGSL_REDUCE}
fn kmain(wg: u32, li: u32) {
  var v = 0.0f;
  if (li < PARTS) { v = ld_p(wg * PARTS + li); }
  let tot = wg_sum(li, v);
  if (li == 0u) { st_y(wg, tot); }
}`,
    tensors: [{ name: 'p', s: partial, mode: 'r' }, w('y', y)],
    consts: { PARTS: parts },
    workgroups: C,
  });
  freeTemp(partial);
  return y;
}

/** Sum of all `size` values of `a`, times `factor` (applied once at the end, in float32): [1]. */
function flatSum(label: string, a: TensorArg, size: number, post: string = 'tot'): GpuStorage {
  const parts = Math.max(1, Math.min(256, Math.floor(size / (WG * 64))));
  const partial = allocStorage(parts);
  run({
    label,
    src: `${WGSL_REDUCE}
fn kmain(wg: u32, li: u32) {
  let per = (NE + PARTS - 1u) / PARTS;
  let i0 = wg * per;
  let i1 = min(NE, i0 + per);
  var k = vec2<f32>(0.0f, 0.0f);
  for (var i = i0 + li; i < i1; i = i + WG) { k = kadd(k, ld_a(i)); }
  let tot = wg_sum(li, k.x + k.y);
  if (li == 0u) { st_y(wg, ${parts === 1 ? post : 'tot'}); }
}`,
    tensors: [{ ...a, name: 'a' }, w('y', partial)],
    consts: { NE: size, PARTS: parts },
    workgroups: parts,
  });
  if (parts === 1) return partial;
  const y = allocStorage(1);
  run({
    label: `${label} (parts)`,
    src: `${WGSL_REDUCE}
fn kmain(wg: u32, li: u32) {
  var v = 0.0f;
  if (li < PARTS) { v = ld_p(li); }
  let tot = wg_sum(li, v);
  if (li == 0u) { st_y(0u, ${post}); }
}`,
    tensors: [{ name: 'p', s: partial, mode: 'r' }, w('y', y)],
    consts: { PARTS: parts, NE: size },
    workgroups: 1,
  });
  freeTemp(partial);
  return y;
}

/** Temporaries go back to the pool at once: later commands are ordered after the ones using them. */
function freeTemp(s: GpuStorage): void {
  if (!s.freed) freeStorage(s);
}

// ---------------------------------------------------------------------------------------------
// Convolution

interface Geo {
  N: number; Cin: number; Cout: number; D: number; H: number; W: number;
  KD: number; KH: number; KW: number; OD: number; OH: number; OW: number;
  cpg: number; opg: number; sd: number; sh: number; sw: number; pd: number; ph: number; pw: number;
}

function outSize(n: number, k: number, s: number, p: number): number {
  return Math.floor((n + 2 * p - k) / s) + 1;
}

function geometry(op: string, xShape: readonly number[], wShape: readonly number[], a: Conv3dAttrs): Geo {
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

function geoConsts(g: Geo): { consts: Record<string, number>; iconsts: Record<string, number> } {
  return {
    consts: { N: g.N, CIN: g.Cin, COUT: g.Cout, CPG: g.cpg, OPG: g.opg, KD: g.KD, KH: g.KH, KW: g.KW },
    iconsts: { D: g.D, H: g.H, W: g.W, OD: g.OD, OH: g.OH, OW: g.OW, SD: g.sd, SH: g.sh, SW: g.sw, PD: g.pd, PH: g.ph, PW: g.pw },
  };
}

function conv3d(x: KTensor, wt: KTensor, bias: KTensor | null, a: Conv3dAttrs): KTensor {
  const g = geometry('conv3d', x.shape, wt.shape, a);
  if (bias) check(bias.shape.length === 1 && bias.shape[0] === g.Cout, `conv3d: bias must be [${g.Cout}], got [${bias.shape.join(', ')}]`);
  const size = g.N * g.Cout * g.OD * g.OH * g.OW;
  const y = allocStorage(size);
  const { consts, iconsts } = geoConsts(g);
  run({
    label: 'conv3d',
    src: `
fn kmain(wg: u32, li: u32) {
  let i = wg * WG + li;
  if (i >= NE) { return; }
  let ow = i32(i % u32(OW));
  var t = i / u32(OW);
  let oh = i32(t % u32(OH));
  t = t / u32(OH);
  let od = i32(t % u32(OD));
  t = t / u32(OD);
  let o = t % COUT;
  let n = t / COUT;
  let grp = o / OPG;
  var acc = ${bias ? 'ld_b(o)' : '0.0f'};
  for (var ci = 0u; ci < CPG; ci = ci + 1u) {
    let xc = (n * CIN + grp * CPG + ci) * u32(D);
    let wc = (o * CPG + ci) * KD;
    for (var kd = 0; kd < i32(KD); kd = kd + 1) {
      let id = od * SD + kd - PD;
      if (id < 0 || id >= D) { continue; }
      for (var kh = 0; kh < i32(KH); kh = kh + 1) {
        let ih = oh * SH + kh - PH;
        if (ih < 0 || ih >= H) { continue; }
        let xr = ((xc + u32(id)) * u32(H) + u32(ih)) * u32(W);
        let wr = ((wc + u32(kd)) * KH + u32(kh)) * KW;
        for (var kw = 0; kw < i32(KW); kw = kw + 1) {
          let iw = ow * SW + kw - PW;
          if (iw < 0 || iw >= W) { continue; }
          acc = acc + ld_w(wr + u32(kw)) * ld_x(xr + u32(iw));
        }
      }
    }
  }
  st_y(i, acc);
}`,
    tensors: [r('x', x, 'conv3d'), r('w', wt, 'conv3d'), ...(bias ? [r('b', bias, 'conv3d')] : []), w('y', y)],
    consts: { ...consts, NE: size },
    iconsts,
    workgroups: groups(size),
  });
  return out([g.N, g.Cout, g.OD, g.OH, g.OW], y);
}

function conv3dGradInput(dy: KTensor, wt: KTensor, a: Conv3dAttrs & { inputShape: readonly number[] }): KTensor {
  const g = geometry('conv3dGradInput', a.inputShape, wt.shape, a);
  const want = [g.N, g.Cout, g.OD, g.OH, g.OW];
  check(dy.shape.length === 5 && want.every((v, i) => dy.shape[i] === v), `conv3dGradInput: dy must be [${want.join(', ')}] for input [${a.inputShape.join(', ')}], got [${dy.shape.join(', ')}]`);
  const size = g.N * g.Cin * g.D * g.H * g.W;
  const dx = allocStorage(size);
  const { consts, iconsts } = geoConsts(g);
  run({
    label: 'conv3dGradInput',
    src: `
fn kmain(wg: u32, li: u32) {
  let i = wg * WG + li;
  if (i >= NE) { return; }
  let iw = i32(i % u32(W));
  var t = i / u32(W);
  let ih = i32(t % u32(H));
  t = t / u32(H);
  let id = i32(t % u32(D));
  t = t / u32(D);
  let c = t % CIN;
  let n = t / CIN;
  let grp = c / CPG;
  let ci = c - grp * CPG;
  var acc = 0.0f;
  for (var o = grp * OPG; o < (grp + 1u) * OPG; o = o + 1u) {
    let dc = (n * COUT + o) * u32(OD);
    let wc = (o * CPG + ci) * KD;
    for (var kd = 0; kd < i32(KD); kd = kd + 1) {
      let td = id + PD - kd;
      if (td < 0 || td % SD != 0) { continue; }
      let od = td / SD;
      if (od >= OD) { continue; }
      for (var kh = 0; kh < i32(KH); kh = kh + 1) {
        let th = ih + PH - kh;
        if (th < 0 || th % SH != 0) { continue; }
        let oh = th / SH;
        if (oh >= OH) { continue; }
        let dr = ((dc + u32(od)) * u32(OH) + u32(oh)) * u32(OW);
        let wr = ((wc + u32(kd)) * KH + u32(kh)) * KW;
        for (var kw = 0; kw < i32(KW); kw = kw + 1) {
          let tw = iw + PW - kw;
          if (tw < 0 || tw % SW != 0) { continue; }
          let ow = tw / SW;
          if (ow >= OW) { continue; }
          acc = acc + ld_w(wr + u32(kw)) * ld_dy(dr + u32(ow));
        }
      }
    }
  }
  st_y(i, acc);
}`,
    tensors: [r('dy', dy, 'conv3dGradInput'), r('w', wt, 'conv3dGradInput'), w('y', dx)],
    consts: { ...consts, NE: size },
    iconsts,
    workgroups: groups(size),
  });
  return out(a.inputShape, dx);
}

function conv3dGradWeight(x: KTensor, dy: KTensor, a: Conv3dAttrs & { weightShape: readonly number[] }): KTensor {
  const g = geometry('conv3dGradWeight', x.shape, a.weightShape, a);
  const want = [g.N, g.Cout, g.OD, g.OH, g.OW];
  check(dy.shape.length === 5 && want.every((v, i) => dy.shape[i] === v), `conv3dGradWeight: dy must be [${want.join(', ')}] for input [${x.shape.join(', ')}], got [${dy.shape.join(', ')}]`);
  const size = numel(a.weightShape);
  const dw = allocStorage(size);
  const { consts, iconsts } = geoConsts(g);
  // One workgroup per weight element; its threads stride over every (n, output voxel).
  run({
    label: 'conv3dGradWeight',
    src: `${WGSL_REDUCE}
fn kmain(wg: u32, li: u32) {
  let kw = i32(wg % KW);
  var t = wg / KW;
  let kh = i32(t % KH);
  t = t / KH;
  let kd = i32(t % KD);
  t = t / KD;
  let ci = t % CPG;
  let o = t / CPG;
  let grp = o / OPG;
  // output rows whose input row is inside, per axis
  let odLo = max(0, (PD - kd + SD - 1) / SD);
  let odHi = min(OD - 1, (D - 1 + PD - kd) / SD);
  let ohLo = max(0, (PH - kh + SH - 1) / SH);
  let ohHi = min(OH - 1, (H - 1 + PH - kh) / SH);
  let owLo = max(0, (PW - kw + SW - 1) / SW);
  let owHi = min(OW - 1, (W - 1 + PW - kw) / SW);
  var k = vec2<f32>(0.0f, 0.0f);
  if (odHi >= odLo && ohHi >= ohLo && owHi >= owLo) {
    let nd = u32(odHi - odLo + 1);
    let nh = u32(ohHi - ohLo + 1);
    let nw = u32(owHi - owLo + 1);
    let per = nd * nh * nw;
    let total = N * per;
    for (var m = li; m < total; m = m + WG) {
      let n = m / per;
      var r = m - n * per;
      let ow = owLo + i32(r % nw);
      r = r / nw;
      let oh = ohLo + i32(r % nh);
      let od = odLo + i32(r / nh);
      let id = od * SD + kd - PD;
      let ih = oh * SH + kh - PH;
      let iw = ow * SW + kw - PW;
      let xi = (((n * CIN + grp * CPG + ci) * u32(D) + u32(id)) * u32(H) + u32(ih)) * u32(W) + u32(iw);
      let di = (((n * COUT + o) * u32(OD) + u32(od)) * u32(OH) + u32(oh)) * u32(OW) + u32(ow);
      k = kadd(k, ld_dy(di) * ld_x(xi));
    }
  }
  let tot = wg_sum(li, k.x + k.y);
  if (li == 0u) { st_y(wg, tot); }
}`,
    tensors: [r('x', x, 'conv3dGradWeight'), r('dy', dy, 'conv3dGradWeight'), w('y', dw)],
    consts,
    iconsts,
    workgroups: size,
  });
  return out(a.weightShape, dw);
}

// ---------------------------------------------------------------------------------------------
// Norms

/** Rows of S contiguous values: corrected two-pass mean (m₁ + m₂) and centred variance. */
const WGSL_ROW_STATS = /* wgsl */ `
fn row_mean(li: u32, base: u32, S: u32) -> vec2<f32> {
  var k = vec2<f32>(0.0f, 0.0f);
  for (var s = li; s < S; s = s + WG) { k = kadd(k, ld_x(base + s)); }
  let m1 = wg_sum(li, k.x + k.y) / f32(S);
  k = vec2<f32>(0.0f, 0.0f);
  for (var s = li; s < S; s = s + WG) { k = kadd(k, ld_x(base + s) - m1); }
  let m2 = wg_sum(li, k.x + k.y) / f32(S);
  return vec2<f32>(m1, m2);
}
`;

function instanceNorm(x: KTensor, a: { eps: number }): [KTensor, KTensor] {
  check(x.shape.length >= 3, `instanceNorm: input must be [N, C, ...spatial], got [${x.shape.join(', ')}]`);
  const [N, C, S] = nc('instanceNorm', x);
  const y = allocStorage(N * C * S);
  const rstd = allocStorage(N * C);
  run({
    label: 'instanceNorm',
    src: `${WGSL_REDUCE}${WGSL_ROW_STATS}
fn kmain(wg: u32, li: u32) {
  let base = wg * S;
  let m = row_mean(li, base, S);
  var k = vec2<f32>(0.0f, 0.0f);
  for (var s = li; s < S; s = s + WG) {
    let d = (ld_x(base + s) - m.x) - m.y;
    k = kadd(k, d * d);
  }
  let v = wg_sum(li, k.x + k.y) / f32(S);
  let rs = 1.0f / sqrt(v + EPS);
  for (var s = li; s < S; s = s + WG) { st_y(base + s, ((ld_x(base + s) - m.x) - m.y) * rs); }
  if (li == 0u) { st_r(wg, rs); }
}`,
    tensors: [r('x', x, 'instanceNorm'), w('y', y), w('r', rstd)],
    consts: { S },
    fconsts: { EPS: a.eps },
    workgroups: N * C,
  });
  return [out(x.shape, y), out([N, C], rstd)];
}

function instanceNormGrad(dy: KTensor, y: KTensor, rstd: KTensor): KTensor {
  sameShape('instanceNormGrad', dy, y);
  check(dy.shape.length >= 3, `instanceNormGrad: input must be [N, C, ...spatial]`);
  const [N, C, S] = nc('instanceNormGrad', dy);
  check(numel(rstd.shape) === N * C, `instanceNormGrad: rstd must hold N·C = ${N * C} values`);
  const dx = allocStorage(N * C * S);
  run({
    label: 'instanceNormGrad',
    src: `${WGSL_REDUCE}
fn kmain(wg: u32, li: u32) {
  let base = wg * S;
  var k1 = vec2<f32>(0.0f, 0.0f);
  var k2 = vec2<f32>(0.0f, 0.0f);
  for (var s = li; s < S; s = s + WG) {
    let g = ld_dy(base + s);
    k1 = kadd(k1, g);
    k2 = kadd(k2, g * ld_yy(base + s));
  }
  let mdy = wg_sum(li, k1.x + k1.y) / f32(S);
  let mdyy = wg_sum(li, k2.x + k2.y) / f32(S);
  let rs = ld_r(wg);
  for (var s = li; s < S; s = s + WG) { st_y(base + s, rs * ((ld_dy(base + s) - mdy) - ld_yy(base + s) * mdyy)); }
}`,
    tensors: [r('dy', dy, 'instanceNormGrad'), r('yy', y, 'instanceNormGrad'), r('r', rstd, 'instanceNormGrad'), w('y', dx)],
    consts: { S },
    workgroups: N * C,
  });
  return out(dy.shape, dx);
}

interface LnLayout {
  C: number;
  count: number;
  S: number;
  statShape: number[];
}

function lnLayout(op: string, shape: readonly number[], channelsLast: boolean): LnLayout {
  if (channelsLast) {
    check(shape.length >= 1, `${op}: input must have at least 1 dimension`);
    const C = shape[shape.length - 1]!;
    const statShape = shape.slice(0, -1);
    return { C, count: numel(statShape), S: 1, statShape };
  }
  check(shape.length >= 2, `${op}: channels_first input must be [N, C, ...], got [${shape.join(', ')}]`);
  const [N, C] = shape as [number, number];
  const S = tail(shape, 2);
  return { C, count: N * S, S, statShape: [N, ...shape.slice(2)] };
}

/** Per normalised vector v: base index and stride of its C values (one thread per vector). */
const WGSL_LN_VEC = /* wgsl */ `
fn vbase(v: u32) -> u32 { let n = v / S; return n * C * S + (v - n * S); }
fn vmean(b: u32) -> vec2<f32> {
  var k = vec2<f32>(0.0f, 0.0f);
  for (var c = 0u; c < C; c = c + 1u) { k = kadd(k, ld_x(b + c * S)); }
  let m1 = (k.x + k.y) / f32(C);
  k = vec2<f32>(0.0f, 0.0f);
  for (var c = 0u; c < C; c = c + 1u) { k = kadd(k, ld_x(b + c * S) - m1); }
  return vec2<f32>(m1, (k.x + k.y) / f32(C));
}
`;

const WGSL_KADD = WGSL_REDUCE.replace(/var<workgroup>[^\n]*\n/, '').replace(/\/\/ Sum of v[\s\S]*$/, '');

function layerNorm(x: KTensor, wt: KTensor, b: KTensor, a: { eps: number; channelsLast: boolean }): [KTensor, KTensor, KTensor] {
  const l = lnLayout('layerNorm', x.shape, a.channelsLast);
  check(numel(wt.shape) === l.C && numel(b.shape) === l.C, `layerNorm: weight and bias must be [${l.C}]`);
  const size = numel(x.shape);
  const y = allocStorage(size);
  const mean = allocStorage(l.count);
  const rstd = allocStorage(l.count);
  run({
    label: 'layerNorm',
    src: `${WGSL_KADD}${WGSL_LN_VEC}
fn kmain(wg: u32, li: u32) {
  let v = wg * WG + li;
  if (v >= COUNT) { return; }
  let b = vbase(v);
  let m = vmean(b);
  var k = vec2<f32>(0.0f, 0.0f);
  for (var c = 0u; c < C; c = c + 1u) {
    let d = (ld_x(b + c * S) - m.x) - m.y;
    k = kadd(k, d * d);
  }
  let rs = 1.0f / sqrt((k.x + k.y) / f32(C) + EPS);
  for (var c = 0u; c < C; c = c + 1u) {
    let d = (ld_x(b + c * S) - m.x) - m.y;
    st_y(b + c * S, d * rs * ld_w(c) + ld_b(c));
  }
  st_m(v, m.x + m.y);
  st_r(v, rs);
}`,
    tensors: [r('x', x, 'layerNorm'), r('w', wt, 'layerNorm'), r('b', b, 'layerNorm'), w('y', y), w('m', mean), w('r', rstd)],
    consts: { C: l.C, S: l.S, COUNT: l.count },
    fconsts: { EPS: a.eps },
    workgroups: groups(l.count),
  });
  return [out(x.shape, y), out(l.statShape, mean), out(l.statShape, rstd)];
}

function layerNormGrad(dy: KTensor, x: KTensor, wt: KTensor, mean: KTensor, rstd: KTensor, a: { channelsLast: boolean }): [KTensor, KTensor, KTensor] {
  sameShape('layerNormGrad', dy, x);
  const l = lnLayout('layerNormGrad', x.shape, a.channelsLast);
  check(numel(wt.shape) === l.C, `layerNormGrad: weight must be [${l.C}]`);
  check(numel(mean.shape) === l.count && numel(rstd.shape) === l.count, `layerNormGrad: mean and rstd must hold ${l.count} values`);
  void storageOf(mean, 'layerNormGrad'); // the mean is recomputed (corrected two-pass) from x
  const size = numel(x.shape);
  const dx = allocStorage(size);
  const xhat = allocStorage(size);
  run({
    label: 'layerNormGrad',
    src: `${WGSL_KADD}${WGSL_LN_VEC}
fn kmain(wg: u32, li: u32) {
  let v = wg * WG + li;
  if (v >= COUNT) { return; }
  let b = vbase(v);
  let m = vmean(b);
  let rs = ld_r(v);
  var k1 = vec2<f32>(0.0f, 0.0f);
  var k2 = vec2<f32>(0.0f, 0.0f);
  for (var c = 0u; c < C; c = c + 1u) {
    let i = b + c * S;
    let xh = ((ld_x(i) - m.x) - m.y) * rs;
    let g = ld_dy(i) * ld_w(c);
    st_xh(i, xh);
    k1 = kadd(k1, g);
    k2 = kadd(k2, g * xh);
  }
  let mg = (k1.x + k1.y) / f32(C);
  let mgx = (k2.x + k2.y) / f32(C);
  for (var c = 0u; c < C; c = c + 1u) {
    let i = b + c * S;
    st_y(i, rs * ((ld_dy(i) * ld_w(c) - mg) - ld_xh(i) * mgx));
  }
}`,
    tensors: [r('dy', dy, 'layerNormGrad'), r('x', x, 'layerNormGrad'), r('w', wt, 'layerNormGrad'), r('r', rstd, 'layerNormGrad'), { name: 'xh', s: xhat, mode: 'rw' }, w('y', dx)],
    consts: { C: l.C, S: l.S, COUNT: l.count },
    workgroups: groups(l.count),
  });
  const Nn = l.count / l.S;
  const dwS = channelReduce('layerNormGrad dw', Nn, l.C, l.S, [r('a', dy, 'layerNormGrad'), { name: 'b', s: xhat, mode: 'r' }], 'dot');
  const dbS = channelReduce('layerNormGrad db', Nn, l.C, l.S, [r('a', dy, 'layerNormGrad')], 'sum');
  freeTemp(xhat);
  return [out(x.shape, dx), out([l.C], dwS), out([l.C], dbS)];
}

// ---------------------------------------------------------------------------------------------
// Softmax and losses

function softmax(x: KTensor): KTensor {
  const [N, C, S] = nc('softmax', x);
  const size = N * C * S;
  const y = allocStorage(size);
  run({
    label: 'softmax',
    src: `
fn kmain(wg: u32, li: u32) {
  let v = wg * WG + li;
  if (v >= NS) { return; }
  let n = v / S;
  let b = n * C * S + (v - n * S);
  var mx = ld_x(b);
  for (var c = 1u; c < C; c = c + 1u) { mx = max(mx, ld_x(b + c * S)); }
  var se = 0.0f;
  for (var c = 0u; c < C; c = c + 1u) { se = se + exp(ld_x(b + c * S) - mx); }
  for (var c = 0u; c < C; c = c + 1u) { st_y(b + c * S, exp(ld_x(b + c * S) - mx) / se); }
}`,
    tensors: [r('x', x, 'softmax'), w('y', y)],
    consts: { C, S, NS: N * S },
    workgroups: groups(N * S),
  });
  return out(x.shape, y);
}

function softmaxGrad(dy: KTensor, y: KTensor): KTensor {
  sameShape('softmaxGrad', dy, y);
  const [N, C, S] = nc('softmaxGrad', y);
  const dx = allocStorage(N * C * S);
  run({
    label: 'softmaxGrad',
    src: `
fn kmain(wg: u32, li: u32) {
  let v = wg * WG + li;
  if (v >= NS) { return; }
  let n = v / S;
  let b = n * C * S + (v - n * S);
  var dot = 0.0f;
  for (var c = 0u; c < C; c = c + 1u) { dot = dot + ld_dy(b + c * S) * ld_yy(b + c * S); }
  for (var c = 0u; c < C; c = c + 1u) { st_y(b + c * S, ld_yy(b + c * S) * (ld_dy(b + c * S) - dot)); }
}`,
    tensors: [r('dy', dy, 'softmaxGrad'), r('yy', y, 'softmaxGrad'), w('y', dx)],
    consts: { C, S, NS: N * S },
    workgroups: groups(N * S),
  });
  return out(y.shape, dx);
}

function lossDims(op: string, x: KTensor, target: KTensor): [number, number, number] {
  const [N, C, S] = nc(op, x);
  const ok = target.shape.length === x.shape.length && target.shape[0] === N && target.shape[1] === 1 && target.shape.every((d, i) => i < 2 || d === x.shape[i]);
  check(ok, `${op}: target must be [${[N, 1, ...x.shape.slice(2)].join(', ')}], got [${target.shape.join(', ')}]`);
  return [N, C, S];
}

/** Class index of a float target, clamped into [0, C) (the GPU cannot throw; see README). */
const WGSL_CLASS = /* wgsl */ `
fn class_of(t: f32) -> u32 { return u32(clamp(round(t), 0.0f, f32(C - 1u))); }
`;

function crossEntropy(logits: KTensor, target: KTensor): KTensor {
  const [N, C, S] = lossDims('crossEntropy', logits, target);
  const per = allocStorage(N * S);
  run({
    label: 'crossEntropy terms',
    src: `${WGSL_CLASS}
fn kmain(wg: u32, li: u32) {
  let v = wg * WG + li;
  if (v >= NS) { return; }
  let n = v / S;
  let b = n * C * S + (v - n * S);
  var mx = ld_x(b);
  for (var c = 1u; c < C; c = c + 1u) { mx = max(mx, ld_x(b + c * S)); }
  var se = 0.0f;
  for (var c = 0u; c < C; c = c + 1u) { se = se + exp(ld_x(b + c * S) - mx); }
  let t = class_of(ld_t(v));
  st_y(v, (mx - ld_x(b + t * S)) + log(se));
}`,
    tensors: [r('x', logits, 'crossEntropy'), r('t', target, 'crossEntropy'), w('y', per)],
    consts: { C, S, NS: N * S },
    workgroups: groups(N * S),
  });
  const y = flatSum('crossEntropy', { name: 'a', s: per, mode: 'r' }, N * S, 'tot / f32(NE)');
  freeTemp(per);
  return out([1], y);
}

function crossEntropyGrad(dloss: KTensor, logits: KTensor, target: KTensor): KTensor {
  const [N, C, S] = lossDims('crossEntropyGrad', logits, target);
  const dx = allocStorage(N * C * S);
  run({
    label: 'crossEntropyGrad',
    src: `${WGSL_CLASS}
fn kmain(wg: u32, li: u32) {
  let v = wg * WG + li;
  if (v >= NS) { return; }
  let n = v / S;
  let b = n * C * S + (v - n * S);
  let k = ld_dl(0u) / f32(NS);
  var mx = ld_x(b);
  for (var c = 1u; c < C; c = c + 1u) { mx = max(mx, ld_x(b + c * S)); }
  var se = 0.0f;
  for (var c = 0u; c < C; c = c + 1u) { se = se + exp(ld_x(b + c * S) - mx); }
  let t = class_of(ld_t(v));
  for (var c = 0u; c < C; c = c + 1u) {
    let p = exp(ld_x(b + c * S) - mx) / se;
    var g = p;
    if (c == t) { g = p - 1.0f; }
    st_y(b + c * S, k * g);
  }
}`,
    tensors: [r('dl', dloss, 'crossEntropyGrad'), r('x', logits, 'crossEntropyGrad'), r('t', target, 'crossEntropyGrad'), w('y', dx)],
    consts: { C, S, NS: N * S },
    workgroups: groups(N * S),
  });
  return out(logits.shape, dx);
}

function diceLoss(probs: KTensor, target: KTensor, a: { smoothNr: number; smoothDr: number }): [KTensor, KTensor] {
  const [N, C, S] = lossDims('diceLoss', probs, target);
  const stats = allocStorage(N * C * 3);
  run({
    label: 'diceLoss stats',
    src: `${WGSL_REDUCE}${WGSL_CLASS}
fn kmain(wg: u32, li: u32) {
  let n = wg / C;
  let c = wg - n * C;
  let base = wg * S;
  var kI = vec2<f32>(0.0f, 0.0f);
  var kG = vec2<f32>(0.0f, 0.0f);
  var kP = vec2<f32>(0.0f, 0.0f);
  for (var s = li; s < S; s = s + WG) {
    let p = ld_p(base + s);
    kP = kadd(kP, p);
    if (class_of(ld_t(n * S + s)) == c) {
      kI = kadd(kI, p);
      kG = kadd(kG, 1.0f);
    }
  }
  let I = wg_sum(li, kI.x + kI.y);
  let G = wg_sum(li, kG.x + kG.y);
  let P = wg_sum(li, kP.x + kP.y);
  if (li == 0u) {
    st_y(wg * 3u, I);
    st_y(wg * 3u + 1u, G);
    st_y(wg * 3u + 2u, P);
  }
}`,
    tensors: [r('p', probs, 'diceLoss'), r('t', target, 'diceLoss'), w('y', stats)],
    consts: { C, S },
    workgroups: N * C,
  });
  const loss = allocStorage(1);
  run({
    label: 'diceLoss mean',
    src: `${WGSL_REDUCE}
fn kmain(wg: u32, li: u32) {
  var k = vec2<f32>(0.0f, 0.0f);
  for (var j = li; j < NC; j = j + WG) {
    let f = 1.0f - (2.0f * ld_st(j * 3u) + SNR) / ((ld_st(j * 3u + 1u) + ld_st(j * 3u + 2u)) + SDR);
    k = kadd(k, f);
  }
  let tot = wg_sum(li, k.x + k.y);
  if (li == 0u) { st_y(0u, tot / f32(NC)); }
}`,
    tensors: [{ name: 'st', s: stats, mode: 'r' }, w('y', loss)],
    consts: { NC: N * C },
    fconsts: { SNR: a.smoothNr, SDR: a.smoothDr },
    workgroups: 1,
  });
  return [out([1], loss), out([N, C, 3], stats)];
}

function diceLossGrad(dloss: KTensor, target: KTensor, stats: KTensor, a: { smoothNr: number; smoothDr: number; channels: number }): KTensor {
  const C = a.channels;
  check(target.shape.length >= 2 && target.shape[1] === 1, `diceLossGrad: target must be [N, 1, ...], got [${target.shape.join(', ')}]`);
  const N = target.shape[0]!;
  const S = tail(target.shape, 2);
  check(numel(stats.shape) === N * C * 3, `diceLossGrad: stats must be [${N}, ${C}, 3], got [${stats.shape.join(', ')}]`);
  const size = N * C * S;
  const y = elementwise(
    'diceLossGrad',
    size,
    [r('dl', dloss, 'diceLossGrad'), r('t', target, 'diceLossGrad'), r('st', stats, 'diceLossGrad')],
    `  let s = i % S;
  let nc = i / S;
  let n = nc / C;
  let c = nc - n * C;
  let k = -ld_dl(0u) / f32(N * C);
  let num = 2.0f * ld_st(nc * 3u) + SNR;
  let den = (ld_st(nc * 3u + 1u) + ld_st(nc * 3u + 2u)) + SDR;
  var v = (k * -num) / (den * den);
  if (class_of(ld_t(n * S + s)) == c) { v = (k * (2.0f * den - num)) / (den * den); }`,
    { consts: { S, C, N }, fconsts: { SNR: a.smoothNr, SDR: a.smoothDr }, lib: WGSL_CLASS },
  );
  const shape = [...target.shape];
  shape[1] = C;
  return out(shape, y);
}

// ---------------------------------------------------------------------------------------------
// Copies

function concatChannels(xs: readonly KTensor[]): KTensor {
  check(xs.length > 0, 'concatChannels: no inputs');
  const first = xs[0]!;
  const [N, , S] = nc('concatChannels', first);
  let Ctot = 0;
  for (const t of xs) {
    check(t.shape.length === first.shape.length && t.shape.every((d, i) => i === 1 || d === first.shape[i]), `concatChannels: shapes [${first.shape.join(', ')}] and [${t.shape.join(', ')}] differ outside axis 1`);
    Ctot += t.shape[1]!;
  }
  const y = allocStorage(N * Ctot * S);
  const enc = commandEncoder();
  for (let n = 0; n < N; n++) {
    let c0 = 0;
    for (const t of xs) {
      const C = t.shape[1]!;
      const len = C * S * 4;
      if (len > 0) enc.copyBufferToBuffer(storageOf(t, 'concatChannels').buffer, n * C * S * 4, y.buffer, (n * Ctot + c0) * S * 4, len);
      c0 += C;
    }
  }
  recorded();
  const shape = [...first.shape];
  shape[1] = Ctot;
  return out(shape, y);
}

function sliceChannels(x: KTensor, a: { start: number; end: number }): KTensor {
  const [N, C, S] = nc('sliceChannels', x);
  const { start, end } = a;
  check(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end && end <= C, `sliceChannels: [${start}, ${end}) is not a channel range of [0, ${C})`);
  const k = end - start;
  const y = allocStorage(N * k * S);
  const src = storageOf(x, 'sliceChannels').buffer;
  if (k * S > 0) {
    const enc = commandEncoder();
    for (let n = 0; n < N; n++) enc.copyBufferToBuffer(src, (n * C + start) * S * 4, y.buffer, n * k * S * 4, k * S * 4);
    recorded();
  }
  const shape = [...x.shape];
  shape[1] = k;
  return out(shape, y);
}

// ---------------------------------------------------------------------------------------------
// AdamW

function adamwStep(p: KTensor, g: KTensor, m: KTensor, v: KTensor, a: AdamWAttrs): void {
  const n = numel(p.shape);
  check(numel(g.shape) === n && numel(m.shape) === n && numel(v.shape) === n, 'adamwStep: p, g, m, v must have the same size');
  check(Number.isInteger(a.step) && a.step >= 1, `adamwStep: step must be a positive integer, got ${a.step}`);
  // Python-side scalars in float64, then float32 operands of the tensor ops (as the reference).
  const biasCorrection1 = 1 - a.beta1 ** a.step;
  const biasCorrection2 = 1 - a.beta2 ** a.step;
  const stepSize = a.lr / biasCorrection1;
  const uniforms = [1 - a.lr * a.weightDecay, a.beta1, 1 - a.beta1, a.beta2, 1 - a.beta2, Math.sqrt(biasCorrection2), a.eps, -stepSize];
  const rw = (name: string, t: KTensor): TensorArg => ({ name, s: storageOf(t, 'adamwStep'), mode: 'rw' });
  run({
    label: 'adamwStep',
    src: `
fn kmain(wg: u32, li: u32) {
  let i = wg * WG + li;
  if (i >= NE) { return; }
  let gi = ld_g(i);
  let pi = ld_p(i) * U(0u);
  let mi = fma(gi, U(2u), ld_m(i) * U(1u));
  let vi = fma(U(4u) * gi, gi, ld_v(i) * U(3u));
  let denom = sqrt(vi) / U(5u) + U(6u);
  st_p(i, pi + (U(7u) * mi) / denom);
  st_m(i, mi);
  st_v(i, vi);
}`,
    tensors: [rw('p', p), r('g', g, 'adamwStep'), rw('m', m), rw('v', v)],
    consts: { NE: n },
    uniforms,
    workgroups: groups(n),
  });
}

// ---------------------------------------------------------------------------------------------

export const webgpuKernels: Kernels = {
  conv3d,
  conv3dGradInput,
  conv3dGradWeight,
  sumToChannels(x) {
    const [N, C, S] = nc('sumToChannels', x);
    return out([C], channelReduce('sumToChannels', N, C, S, [r('a', x, 'sumToChannels')], 'sum'));
  },
  instanceNorm,
  instanceNormGrad,
  layerNorm,
  layerNormGrad,
  gelu(x) {
    const n = numel(x.shape);
    return out(x.shape, elementwise('gelu', n, [r('x', x, 'gelu')], '  let t = ld_x(i);\n  let v = t * normal_cdf(t);', { lib: WGSL_NORMAL_CDF }));
  },
  geluGrad(dy, x) {
    sameShape('geluGrad', dy, x);
    const n = numel(x.shape);
    return out(x.shape, elementwise('geluGrad', n, [r('dy', dy, 'geluGrad'), r('x', x, 'geluGrad')], '  let t = ld_x(i);\n  let v = ld_dy(i) * (normal_cdf(t) + t * INV_SQRT_2PI * exp(-0.5f * t * t));', { lib: WGSL_NORMAL_CDF }));
  },
  leakyRelu(x, a) {
    const n = numel(x.shape);
    return out(x.shape, elementwise('leakyRelu', n, [r('x', x, 'leakyRelu')], '  let t = ld_x(i);\n  var v = t * SLOPE;\n  if (t > 0.0f) { v = t; }', { fconsts: { SLOPE: a.slope } }));
  },
  leakyReluGrad(dy, x, a) {
    sameShape('leakyReluGrad', dy, x);
    const n = numel(x.shape);
    return out(x.shape, elementwise('leakyReluGrad', n, [r('dy', dy, 'leakyReluGrad'), r('x', x, 'leakyReluGrad')], '  let g = ld_dy(i);\n  var v = g * SLOPE;\n  if (ld_x(i) > 0.0f) { v = g; }', { fconsts: { SLOPE: a.slope } }));
  },
  add(a, b) {
    sameShape('add', a, b);
    const n = numel(a.shape);
    return out(a.shape, elementwise('add', n, [r('a', a, 'add'), r('b', b, 'add')], '  let v = ld_a(i) + ld_b(i);'));
  },
  scale(x, a) {
    const n = numel(x.shape);
    return out(x.shape, elementwise('scale', n, [r('x', x, 'scale')], '  let v = ld_x(i) * U(0u);', { uniforms: [a.factor] }));
  },
  mulChannel(x, s) {
    const [, C, S] = nc('mulChannel', x);
    check(numel(s.shape) === C, `mulChannel: scale must be [${C}], got [${s.shape.join(', ')}]`);
    const n = numel(x.shape);
    return out(x.shape, elementwise('mulChannel', n, [r('x', x, 'mulChannel'), r('s', s, 'mulChannel')], '  let v = ld_x(i) * ld_s((i / S) % C);', { consts: { S, C } }));
  },
  mulChannelGradScale(dy, x) {
    sameShape('mulChannelGradScale', dy, x);
    const [N, C, S] = nc('mulChannelGradScale', x);
    return out([C], channelReduce('mulChannelGradScale', N, C, S, [r('a', dy, 'mulChannelGradScale'), r('b', x, 'mulChannelGradScale')], 'dot'));
  },
  concatChannels,
  sliceChannels,
  softmax,
  softmaxGrad,
  crossEntropy,
  crossEntropyGrad,
  diceLoss,
  diceLossGrad,
  sum(x) {
    return out([1], flatSum('sum', r('a', x, 'sum'), numel(x.shape)));
  },
  fillFromScalar(s, a) {
    check(numel(s.shape) >= 1, 'fillFromScalar: scalar tensor is empty');
    const n = numel(a.shape);
    return out(a.shape, elementwise('fillFromScalar', n, [r('s', s, 'fillFromScalar')], '  let v = ld_s(0u) * U(0u);', { uniforms: [a.factor] }));
  },
  adamwStep,
};
