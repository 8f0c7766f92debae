/**
 * Every kernel of the contract (src/engine/kernels.ts) in WGSL. All arithmetic is float32:
 * reductions use per-thread Kahan–Babuška accumulation and a pairwise workgroup tree (no atomics,
 * so results are deterministic); norm statistics are two-pass with a corrected mean (mean of
 * x − m₁ added back) so inputs with mean ≈ 100 keep their precision; GELU uses an accurate Φ
 * (math.ts); AdamW follows PyTorch's op order with fma where PyTorch's CPU kernels fuse.
 */
import { sizeOf as numel } from '../../engine/tensor.js';
import type { AdamWAttrs, Kernels, KTensor } from '../../engine/kernels.js';
import { linearGeluComposite } from '../../engine/linear-gelu-composite.js';
import { allocStorage, commandEncoder, freeStorage, recorded, storageOf, type GpuStorage } from './device.js';
import { run, WGSL_KADD_ONLY, WGSL_REDUCE, type TensorArg } from './program.js';
import { WGSL_NORMAL_CDF } from './math.js';
import { attention, attentionGrad } from './attention.js';
import { conv3d, conv3dGradInput, conv3dGradWeight } from './conv.js';
import { broadcastBinary, gatherRows, matmul, roll, scatterAddRows, stridedCopy, stridedScatter, sumToShape } from './transformer.js';

function check(cond: boolean, msg: string): asserts cond {
  if (!cond) throw new Error(`webgpu backend: ${msg}`);
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
/** Rows (reductions) of at most this many values run one per thread instead of one per workgroup. */
const SMALL_ROW = 512;
const groups = (n: number) => Math.ceil(n / WG);

// ---------------------------------------------------------------------------------------------
// Elementwise

/** One thread per element: `body` computes `v` from index `i` (and may use any ld_*). */
function elementwise(
  label: string,
  size: number,
  inputs: TensorArg[],
  body: string,
  extra: { fconsts?: Record<string, number>; consts?: Record<string, number>; uniforms?: number[]; lib?: string } = {},
): GpuStorage {
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
  if (M <= SMALL_ROW) {
    const y = allocStorage(C);
    const term1 = mode === 'sum' ? 'ld_a(idx)' : 'ld_a(idx) * ld_b(idx)';
    run({
      label: `${label} (small)`,
      src: `${WGSL_KADD}
fn kmain(wg: u32, li: u32) {
  let c = wg * WG + li;
  if (c >= C) { return; }
  var k = vec2<f32>(0.0f, 0.0f);
  for (var m = 0u; m < M; m = m + 1u) {
    let n = m / S;
    let idx = (n * C + c) * S + (m - n * S);
    k = kadd(k, ${term1});
  }
  st_y(c, k.x + k.y);
}`,
      tensors: [...ins, w('y', y)],
      consts: { M, S, C },
      workgroups: groups(C),
    });
    return y;
  }
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
  if (S <= SMALL_ROW) {
    run({
      label: 'instanceNorm (small rows)',
      src: `${WGSL_KADD}
fn kmain(wg: u32, li: u32) {
  let row = wg * WG + li;
  if (row >= ROWS) { return; }
  let base = row * S;
  var k = vec2<f32>(0.0f, 0.0f);
  for (var s = 0u; s < S; s = s + 1u) { k = kadd(k, ld_x(base + s)); }
  let m1 = (k.x + k.y) / f32(S);
  k = vec2<f32>(0.0f, 0.0f);
  for (var s = 0u; s < S; s = s + 1u) { k = kadd(k, ld_x(base + s) - m1); }
  let m2 = (k.x + k.y) / f32(S);
  k = vec2<f32>(0.0f, 0.0f);
  for (var s = 0u; s < S; s = s + 1u) {
    let d = (ld_x(base + s) - m1) - m2;
    k = kadd(k, d * d);
  }
  let rs = 1.0f / sqrt((k.x + k.y) / f32(S) + EPS);
  for (var s = 0u; s < S; s = s + 1u) { st_y(base + s, ((ld_x(base + s) - m1) - m2) * rs); }
  st_r(row, rs);
}`,
      tensors: [r('x', x, 'instanceNorm'), w('y', y), w('r', rstd)],
      consts: { S, ROWS: N * C },
      fconsts: { EPS: a.eps },
      workgroups: groups(N * C),
    });
    return [out(x.shape, y), out([N, C], rstd)];
  }
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
    dynamic: { S }, // one pipeline for every row length (see program.ts)
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
  if (S <= SMALL_ROW) {
    run({
      label: 'instanceNormGrad (small rows)',
      src: `${WGSL_KADD}
fn kmain(wg: u32, li: u32) {
  let row = wg * WG + li;
  if (row >= ROWS) { return; }
  let base = row * S;
  var k1 = vec2<f32>(0.0f, 0.0f);
  var k2 = vec2<f32>(0.0f, 0.0f);
  for (var s = 0u; s < S; s = s + 1u) {
    let g = ld_dy(base + s);
    k1 = kadd(k1, g);
    k2 = kadd(k2, g * ld_yy(base + s));
  }
  let mdy = (k1.x + k1.y) / f32(S);
  let mdyy = (k2.x + k2.y) / f32(S);
  let rs = ld_r(row);
  for (var s = 0u; s < S; s = s + 1u) { st_y(base + s, rs * ((ld_dy(base + s) - mdy) - ld_yy(base + s) * mdyy)); }
}`,
      tensors: [r('dy', dy, 'instanceNormGrad'), r('yy', y, 'instanceNormGrad'), r('r', rstd, 'instanceNormGrad'), w('y', dx)],
      consts: { S, ROWS: N * C },
      workgroups: groups(N * C),
    });
    return out(dy.shape, dx);
  }
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
    dynamic: { S }, // one pipeline for every row length (see program.ts)
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

const WGSL_KADD = WGSL_KADD_ONLY;

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
  // x̂ for the dw reduction, in its own pass (fewer bindings per shader than writing it from the dx pass).
  run({
    label: 'layerNormGrad xhat',
    src: `${WGSL_KADD}${WGSL_LN_VEC}
fn kmain(wg: u32, li: u32) {
  let v = wg * WG + li;
  if (v >= COUNT) { return; }
  let b = vbase(v);
  let m = vmean(b);
  let rs = ld_r(v);
  for (var c = 0u; c < C; c = c + 1u) { st_y(b + c * S, ((ld_x(b + c * S) - m.x) - m.y) * rs); }
}`,
    tensors: [r('x', x, 'layerNormGrad'), r('r', rstd, 'layerNormGrad'), w('y', xhat)],
    consts: { C: l.C, S: l.S, COUNT: l.count },
    workgroups: groups(l.count),
  });
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
    k1 = kadd(k1, g);
    k2 = kadd(k2, g * xh);
  }
  let mg = (k1.x + k1.y) / f32(C);
  let mgx = (k2.x + k2.y) / f32(C);
  for (var c = 0u; c < C; c = c + 1u) {
    let i = b + c * S;
    let xh = ((ld_x(i) - m.x) - m.y) * rs;
    st_y(i, rs * ((ld_dy(i) * ld_w(c) - mg) - xh * mgx));
  }
}`,
    tensors: [r('dy', dy, 'layerNormGrad'), r('x', x, 'layerNormGrad'), r('w', wt, 'layerNormGrad'), r('r', rstd, 'layerNormGrad'), w('y', dx)],
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

/**
 * Softmax over contiguous rows (softmaxLast: attention scores, S = 1) of at least this length: one
 * thread per row, or for a few long rows one workgroup per row, so neighbouring threads read
 * neighbouring values, with max and sum by the workgroup tree reductions (see THREAD_ROW_MAX_C).
 */
const ROW_SOFTMAX_MIN = 64;
const WGSL_WG_MAX = /* wgsl */ `
var<workgroup> redmax: array<f32, 256>;
fn wg_max(li: u32, v: f32) -> f32 {
  redmax[li] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s = s >> 1u) {
    if (li < s) { redmax[li] = max(redmax[li], redmax[li + s]); }
    workgroupBarrier();
  }
  let r = redmax[0];
  workgroupBarrier();
  return r;
}
`;

/**
 * With this many rows or more, softmax over contiguous rows runs one thread per row: enough threads
 * for any GPU, and no workgroup barriers, which CPU adapters (SwiftShader) run as coroutine switches
 * costing ~25 µs each per 256-thread workgroup (a row reduction takes about 13 of them).
 */
const THREAD_ROWS_MIN = 4096;
/**
 * Rows up to this long run one thread per row however few they are: the workgroup path's ~12
 * barriers per row cost SwiftShader ~0.3 ms a row (nnFormer's attention backward at the deeper
 * stages, ~4,000 rows of 64, spent 2.6 s per softmax there), and a short row is little work for one
 * thread on a real GPU too. Only long rows (e.g. a whole-volume softmax over tokens) take a workgroup.
 */
const THREAD_ROW_MAX_C = 1024;

function softmaxRowsThread(x: KTensor, rows: number, C: number): GpuStorage {
  const y = allocStorage(rows * C);
  run({
    label: 'softmax rows (thread per row)',
    src: `${WGSL_KADD}
fn kmain(wg: u32, li: u32) {
  let row = wg * WG + li;
  if (row >= ROWS) { return; }
  let b = row * C;
  var mx = ld_x(b);
  for (var c = 1u; c < C; c = c + 1u) { mx = max(mx, ld_x(b + c)); }
  var k = vec2<f32>(0.0f, 0.0f);
  for (var c = 0u; c < C; c = c + 1u) { k = kadd(k, exp(ld_x(b + c) - mx)); }
  let se = k.x + k.y;
  for (var c = 0u; c < C; c = c + 1u) { st_y(b + c, exp(ld_x(b + c) - mx) / se); }
}`,
    tensors: [r('x', x, 'softmax'), w('y', y)],
    consts: { C, ROWS: rows },
    workgroups: groups(rows),
  });
  return y;
}

function softmaxRowsGradThread(dy: KTensor, y: KTensor, rows: number, C: number): GpuStorage {
  const dx = allocStorage(rows * C);
  run({
    label: 'softmaxGrad rows (thread per row)',
    src: `${WGSL_KADD}
fn kmain(wg: u32, li: u32) {
  let row = wg * WG + li;
  if (row >= ROWS) { return; }
  let b = row * C;
  var k = vec2<f32>(0.0f, 0.0f);
  for (var c = 0u; c < C; c = c + 1u) { k = kadd(k, ld_dy(b + c) * ld_yy(b + c)); }
  let dot = k.x + k.y;
  for (var c = 0u; c < C; c = c + 1u) { st_y(b + c, ld_yy(b + c) * (ld_dy(b + c) - dot)); }
}`,
    tensors: [r('dy', dy, 'softmaxGrad'), r('yy', y, 'softmaxGrad'), w('y', dx)],
    consts: { C, ROWS: rows },
    workgroups: groups(rows),
  });
  return dx;
}

function softmaxRows(x: KTensor, rows: number, C: number): GpuStorage {
  if (rows >= THREAD_ROWS_MIN || C <= THREAD_ROW_MAX_C) return softmaxRowsThread(x, rows, C);
  const y = allocStorage(rows * C);
  run({
    label: 'softmax rows',
    src: `${WGSL_REDUCE}${WGSL_WG_MAX}
fn kmain(wg: u32, li: u32) {
  let b = wg * C;
  var mx = -3.0e38f;
  for (var c = li; c < C; c = c + WG) { mx = max(mx, ld_x(b + c)); }
  mx = wg_max(li, mx);
  var k = vec2<f32>(0.0f, 0.0f);
  for (var c = li; c < C; c = c + WG) { k = kadd(k, exp(ld_x(b + c) - mx)); }
  let se = wg_sum(li, k.x + k.y);
  for (var c = li; c < C; c = c + WG) { st_y(b + c, exp(ld_x(b + c) - mx) / se); }
}`,
    tensors: [r('x', x, 'softmax'), w('y', y)],
    consts: { C },
    workgroups: rows,
  });
  return y;
}

function softmaxRowsGrad(dy: KTensor, y: KTensor, rows: number, C: number): GpuStorage {
  if (rows >= THREAD_ROWS_MIN || C <= THREAD_ROW_MAX_C) return softmaxRowsGradThread(dy, y, rows, C);
  const dx = allocStorage(rows * C);
  run({
    label: 'softmaxGrad rows',
    src: `${WGSL_REDUCE}
fn kmain(wg: u32, li: u32) {
  let b = wg * C;
  var k = vec2<f32>(0.0f, 0.0f);
  for (var c = li; c < C; c = c + WG) { k = kadd(k, ld_dy(b + c) * ld_yy(b + c)); }
  let dot = wg_sum(li, k.x + k.y);
  for (var c = li; c < C; c = c + WG) { st_y(b + c, ld_yy(b + c) * (ld_dy(b + c) - dot)); }
}`,
    tensors: [r('dy', dy, 'softmaxGrad'), r('yy', y, 'softmaxGrad'), w('y', dx)],
    consts: { C },
    workgroups: rows,
  });
  return dx;
}

function softmax(x: KTensor): KTensor {
  const [N, C, S] = nc('softmax', x);
  if (S === 1 && C >= ROW_SOFTMAX_MIN) return out(x.shape, softmaxRows(x, N, C));
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
  if (S === 1 && C >= ROW_SOFTMAX_MIN) return out(y.shape, softmaxRowsGrad(dy, y, N, C));
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
    check(
      t.shape.length === first.shape.length && t.shape.every((d, i) => i === 1 || d === first.shape[i]),
      `concatChannels: shapes [${first.shape.join(', ')}] and [${t.shape.join(', ')}] differ outside axis 1`,
    );
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
    return out(
      x.shape,
      elementwise(
        'geluGrad',
        n,
        [r('dy', dy, 'geluGrad'), r('x', x, 'geluGrad')],
        '  let t = ld_x(i);\n  let v = ld_dy(i) * (normal_cdf(t) + t * INV_SQRT_2PI * exp(-0.5f * t * t));',
        { lib: WGSL_NORMAL_CDF },
      ),
    );
  },
  leakyRelu(x, a) {
    const n = numel(x.shape);
    return out(
      x.shape,
      elementwise('leakyRelu', n, [r('x', x, 'leakyRelu')], '  let t = ld_x(i);\n  var v = t * SLOPE;\n  if (t > 0.0f) { v = t; }', { fconsts: { SLOPE: a.slope } }),
    );
  },
  leakyReluGrad(dy, x, a) {
    sameShape('leakyReluGrad', dy, x);
    const n = numel(x.shape);
    return out(
      x.shape,
      elementwise('leakyReluGrad', n, [r('dy', dy, 'leakyReluGrad'), r('x', x, 'leakyReluGrad')], '  let g = ld_dy(i);\n  var v = g * SLOPE;\n  if (ld_x(i) > 0.0f) { v = g; }', {
        fconsts: { SLOPE: a.slope },
      }),
    );
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
  matmul,
  linearGelu: (x, w, bias, a) => linearGeluComposite('webgpu', x, w, bias, a.keepPre),
  stridedCopy,
  stridedScatter,
  roll,
  broadcastBinary,
  sumToShape,
  gatherRows,
  scatterAddRows,
  attention,
  attentionGrad,
};
