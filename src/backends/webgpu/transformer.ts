/**
 * WGSL kernels for the transformer ops: batched GEMM (16×16 shared-memory tiles), strided
 * copies/scatters, roll, broadcasting arithmetic, reductions to a broadcast shape and row
 * gathers/scatters. Index arithmetic is generated per shape with every extent and stride baked in
 * as a literal (pipelines are cached by source; a network uses few shapes). Reductions and the row
 * scatter run without atomics in a fixed order, so results are deterministic.
 */
import { contiguousStrides, sizeOf as numel } from '../../engine/tensor.js';
import type { KTensor } from '../../engine/kernels.js';
import { allocStorage, freeStorage, storageOf, writeStorage, zerosStorage, type GpuStorage } from './device.js';
import { run, WGSL_KADD_ONLY, WGSL_REDUCE, type TensorArg } from './program.js';

function check(cond: boolean, msg: string): asserts cond {
  if (!cond) throw new Error(`webgpu backend: ${msg}`);
}

const WG = 256;
const groups = (n: number) => Math.ceil(n / WG);
const r = (name: string, t: KTensor, op: string): TensorArg => ({ name, s: storageOf(t, op), mode: 'r' });
const w = (name: string, s: GpuStorage): TensorArg => ({ name, s, mode: 'w' });
const out = (shape: readonly number[], s: GpuStorage): KTensor => ({ shape: [...shape], data: s });

/**
 * WGSL that splits the linear index `from` over `shape` (row-major) and accumulates, for every
 * target, Σ_d i_d·strides[d] into a `var` named after it (starting at its base).
 */
function decompose(from: string, shape: readonly number[], targets: { name: string; strides: readonly number[]; base?: string }[]): string {
  let code = `  var rem_${targets[0]!.name} = ${from};\n`;
  const rem = `rem_${targets[0]!.name}`;
  for (const t of targets) code += `  var ${t.name} = ${t.base ?? '0u'};\n`;
  for (let d = shape.length - 1; d >= 0; d--) {
    const n = shape[d]!;
    if (n === 1) continue;
    code += `  { let q = ${rem} % ${n}u; ${rem} = ${rem} / ${n}u;`;
    for (const t of targets) if (t.strides[d]) code += ` ${t.name} = ${t.name} + q * ${t.strides[d]}u;`;
    code += ' }\n';
  }
  return code;
}

/** One thread per output element; `body` sets `v` for element `i`. */
function pointwise(label: string, size: number, inputs: TensorArg[], body: string, y: GpuStorage = allocStorage(size)): GpuStorage {
  run({
    label,
    src: `fn kmain(wg: u32, li: u32) {\n  let i = wg * WG + li;\n  if (i >= NE) { return; }\n${body}\n}\n`,
    tensors: [...inputs, w('y', y)],
    consts: { NE: size },
    workgroups: groups(size),
  });
  return y;
}

function checkStrided(op: string, shape: readonly number[], offset: number, strides: readonly number[], bound: number): void {
  check(
    strides.length === shape.length && strides.every((s) => Number.isInteger(s) && s >= 0) && Number.isInteger(offset) && offset >= 0,
    `${op}: strides and offset must be non-negative integers, one stride per dim`,
  );
  const maxPos = offset + shape.reduce((acc, n, d) => acc + (n - 1) * strides[d]!, 0);
  check(numel(shape) === 0 || maxPos < bound, `${op}: position ${maxPos} is outside a storage of ${bound} values`);
}

export function stridedCopy(x: KTensor, a: { shape: readonly number[]; offset: number; strides: readonly number[] }): KTensor {
  checkStrided('stridedCopy', a.shape, a.offset, a.strides, numel(x.shape));
  const size = numel(a.shape);
  const body = `${decompose('i', a.shape, [{ name: 'src', strides: a.strides, base: `${a.offset}u` }])}  st_y(i, ld_x(src));`;
  return out(a.shape, pointwise('stridedCopy', size, [r('x', x, 'stridedCopy')], body));
}

export function stridedScatter(x: KTensor, a: { shape: readonly number[]; offset: number; strides: readonly number[] }): KTensor {
  const size = numel(a.shape);
  checkStrided('stridedScatter', x.shape, a.offset, a.strides, size);
  const body = `${decompose('i', x.shape, [{ name: 'dst', strides: a.strides, base: `${a.offset}u` }])}  st_y(dst, ld_x(i));`;
  const y = zerosStorage(size);
  run({
    label: 'stridedScatter',
    src: `fn kmain(wg: u32, li: u32) {\n  let i = wg * WG + li;\n  if (i >= NE) { return; }\n${body}\n}\n`,
    tensors: [r('x', x, 'stridedScatter'), w('y', y)],
    consts: { NE: numel(x.shape) },
    workgroups: groups(numel(x.shape)),
  });
  return out(a.shape, y);
}

export function roll(x: KTensor, a: { shifts: readonly number[]; dims: readonly number[] }): KTensor {
  check(a.shifts.length === a.dims.length, 'roll: shifts and dims differ in length');
  const shape = x.shape;
  const st = contiguousStrides(shape);
  const shift = new Array<number>(shape.length).fill(0);
  a.dims.forEach((d, k) => {
    check(Number.isInteger(d) && d >= 0 && d < shape.length, `roll: dim ${d} is not a dimension of [${shape.join(', ')}]`);
    shift[d] = ((a.shifts[k]! % shape[d]!) + shape[d]!) % shape[d]!;
  });
  let code = '  var rem = i;\n  var src = 0u;\n';
  for (let d = shape.length - 1; d >= 0; d--) {
    const n = shape[d]!;
    if (n === 1) continue;
    const q = shift[d] ? `(q + ${n - shift[d]!}u) % ${n}u` : 'q';
    code += `  { let q = rem % ${n}u; rem = rem / ${n}u; src = src + ${q} * ${st[d]}u; }\n`;
  }
  code += '  st_y(i, ld_x(src));';
  return out(shape, pointwise('roll', numel(shape), [r('x', x, 'roll')], code));
}

function broadcastShape(op: string, a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const shape: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    check(da === db || da === 1 || db === 1, `${op}: shapes [${a.join(', ')}] and [${b.join(', ')}] do not broadcast`);
    shape.push(da === 1 ? db : da);
  }
  return shape;
}

/** Strides reading `src` (right-aligned in `shape`), 0 along broadcast dims. */
function broadcastStrides(shape: readonly number[], src: readonly number[]): number[] {
  const st = contiguousStrides(src);
  const lead = shape.length - src.length;
  return shape.map((_, d) => (d < lead || src[d - lead] === 1 ? 0 : st[d - lead]!));
}

export function broadcastBinary(a: KTensor, b: KTensor, attrs: { op: 'add' | 'sub' | 'mul' }): KTensor {
  const shape = broadcastShape('broadcastBinary', a.shape, b.shape);
  const sym = attrs.op === 'add' ? '+' : attrs.op === 'sub' ? '-' : '*';
  const body = `${decompose('i', shape, [
    { name: 'ia', strides: broadcastStrides(shape, a.shape) },
    { name: 'ib', strides: broadcastStrides(shape, b.shape) },
  ])}  st_y(i, ld_a(ia) ${sym} ld_b(ib));`;
  return out(shape, pointwise(`broadcastBinary ${attrs.op}`, numel(shape), [r('a', a, 'broadcastBinary'), r('b', b, 'broadcastBinary')], body));
}

export function sumToShape(x: KTensor, a: { shape: readonly number[] }): KTensor {
  const full = broadcastShape('sumToShape', x.shape, a.shape);
  check(full.length === x.shape.length && full.every((d, i) => d === x.shape[i]), `sumToShape: [${a.shape.join(', ')}] does not broadcast to [${x.shape.join(', ')}]`);
  const xs = contiguousStrides(x.shape);
  const lead = x.shape.length - a.shape.length;
  const reduced = x.shape.map((n, d) => n > 1 && (d < lead || a.shape[d - lead] === 1));
  const keptShape = x.shape.map((n, d) => (reduced[d] ? 1 : n));
  const redShape = x.shape.map((n, d) => (reduced[d] ? n : 1));
  const outN = numel(a.shape);
  const redN = numel(redShape);
  const base = decompose('o', keptShape, [{ name: 'base', strides: xs }]);
  const off = decompose('j', redShape, [{ name: 'off', strides: xs }]);
  const y = allocStorage(outN);
  if (redN <= 64 || outN >= 65536) {
    run({
      label: 'sumToShape (thread per output)',
      src: `${WGSL_KADD_ONLY}
fn kmain(wg: u32, li: u32) {
  let o = wg * WG + li;
  if (o >= NO) { return; }
${base}
  var k = vec2<f32>(0.0f, 0.0f);
  for (var j = 0u; j < NR; j = j + 1u) {
${off}
    k = kadd(k, ld_x(base + off));
  }
  st_y(o, k.x + k.y);
}`,
      tensors: [r('x', x, 'sumToShape'), w('y', y)],
      consts: { NO: outN, NR: redN },
      workgroups: groups(outN),
    });
  } else {
    run({
      label: 'sumToShape (workgroup per output)',
      src: `${WGSL_REDUCE}
fn kmain(wg: u32, li: u32) {
  let o = wg;
${base}
  var k = vec2<f32>(0.0f, 0.0f);
  for (var j = li; j < NR; j = j + WG) {
${off}
    k = kadd(k, ld_x(base + off));
  }
  let tot = wg_sum(li, k.x + k.y);
  if (li == 0u) { st_y(o, tot); }
}`,
      tensors: [r('x', x, 'sumToShape'), w('y', y)],
      consts: { NR: redN },
      workgroups: outN,
    });
  }
  return out(a.shape, y);
}

const TILE = 16;

export function matmul(a: KTensor, b: KTensor, bias: KTensor | null, attrs: { transA: boolean; transB: boolean }): KTensor {
  check(a.shape.length === 3 && b.shape.length === 3, `matmul: a and b must be 3-D, got [${a.shape.join(', ')}] and [${b.shape.join(', ')}]`);
  const [B, a1, a2] = a.shape as [number, number, number];
  const [Bb, b1, b2] = b.shape as [number, number, number];
  const M = attrs.transA ? a2 : a1;
  const K = attrs.transA ? a1 : a2;
  const N = attrs.transB ? b1 : b2;
  check((attrs.transB ? b2 : b1) === K, `matmul: inner dimensions differ (${K} and ${attrs.transB ? b2 : b1})`);
  check(Bb === B || Bb === 1, `matmul: batch sizes ${B} and ${Bb} differ`);
  if (bias) check(numel(bias.shape) === N, `matmul: bias must have ${N} values`);
  const [asi, ask] = attrs.transA ? [1, M] : [K, 1];
  const [bsk, bsn] = attrs.transB ? [1, K] : [N, 1];
  const y = allocStorage(B * M * N);
  const tensors = [r('a', a, 'matmul'), r('b', b, 'matmul')];
  if (bias) tensors.push(r('bias', bias, 'matmul'));
  const consts = { M, N, K, ASI: asi, ASK: ask, BSK: bsk, BSN: bsn };
  if (N <= SKINNY || K <= SKINNY) {
    const nb = Math.ceil(N / 4);
    run({
      label: 'matmul (skinny)',
      src: matmulSkinny(Bb === 1, !!bias),
      tensors: [...tensors, w('y', y)],
      consts: { ...consts, NB: nb, NT: B * M * nb },
      workgroups: groups(B * M * nb),
    });
    return out([B, M, N], y);
  }
  if (M >= 64 && N >= 64) {
    const tm = Math.ceil(M / 64);
    const tn = Math.ceil(N / 64);
    // Sizes at run time: one pipeline per (shared B, bias) instead of one per shape (see program.ts).
    run({ label: 'matmul 64x64', src: matmulBlocked(Bb === 1, !!bias), tensors: [...tensors, w('y', y)], dynamic: { ...consts, TM: tm, TN: tn }, workgroups: B * tm * tn });
    return out([B, M, N], y);
  }
  const tm = Math.ceil(M / TILE);
  const tn = Math.ceil(N / TILE);
  run({
    label: 'matmul',
    src: `
var<workgroup> As: array<f32, 256>;
var<workgroup> Bs: array<f32, 256>;
fn kmain(wg: u32, li: u32) {
  let tn = wg % TN;
  let t2 = wg / TN;
  let tm = t2 % TM;
  let bi = t2 / TM;
  let ly = li / 16u;
  let lx = li % 16u;
  let m = tm * 16u + ly;
  let n = tn * 16u + lx;
  let ao = bi * M * K;
  let bo = ${Bb === 1 ? '0u' : 'bi * K * N'};
  var acc = 0.0f;
  for (var k0 = 0u; k0 < K; k0 = k0 + 16u) {
    let ka = k0 + lx;
    var av = 0.0f;
    if (m < M && ka < K) { av = ld_a(ao + m * ASI + ka * ASK); }
    As[ly * 16u + lx] = av;
    // B tile: thread (ly, lx) loads row k0+ly, column n.
    let kb = k0 + ly;
    var bv = 0.0f;
    if (kb < K && n < N) { bv = ld_b(bo + kb * BSK + n * BSN); }
    Bs[ly * 16u + lx] = bv;
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk = kk + 1u) { acc = fma(As[ly * 16u + kk], Bs[kk * 16u + lx], acc); }
    workgroupBarrier();
  }
  if (m < M && n < N) { st_y((bi * M + m) * N + n, acc${bias ? ' + ld_bias(n)' : ''}); }
}`,
    tensors: [...tensors, w('y', y)],
    dynamic: { ...consts, TM: tm, TN: tn },
    workgroups: B * tm * tn,
  });
  return out([B, M, N], y);
}

/**
 * Products with at most this many columns or this inner length (attention q·kᵀ, attention·v and
 * their gradients: N or K = head dim) run one thread per row and block of 4 columns, without
 * workgroup memory: there is little reuse for tiles to exploit, a 16×16 tile would leave most of its
 * threads idle when N is small, and the tiled kernels' barriers cost SwiftShader ~25 µs each per
 * workgroup (a SwinUNETR forward spent 84 of its 316 s of kernel CPU time in tiled matmuls).
 */
const SKINNY = 16;

/** One thread per (batch, row, 4 columns): a K-long loop of vec4 fma in k order. Columns past N read column N−1 and are not stored. */
function matmulSkinny(sharedB: boolean, hasBias: boolean): string {
  return `
fn kmain(wg: u32, li: u32) {
  let t = wg * WG + li;
  if (t >= NT) { return; }
  let nb = t % NB;
  let t2 = t / NB;
  let m = t2 % M;
  let bi = t2 / M;
  let n0 = nb * 4u;
  let ao = bi * M * K + m * ASI;
  let bo = ${sharedB ? '0u' : 'bi * K * N'} + n0 * BSN;
  let o1 = (min(n0 + 1u, N - 1u) - n0) * BSN;
  let o2 = (min(n0 + 2u, N - 1u) - n0) * BSN;
  let o3 = (min(n0 + 3u, N - 1u) - n0) * BSN;
  var acc = vec4<f32>(0.0f);
  for (var k = 0u; k < K; k = k + 1u) {
    let bk = bo + k * BSK;
    acc = fma(vec4<f32>(ld_a(ao + k * ASK)), vec4<f32>(ld_b(bk), ld_b(bk + o1), ld_b(bk + o2), ld_b(bk + o3)), acc);
  }
  let yo = (bi * M + m) * N + n0;
  for (var j = 0u; j < 4u; j = j + 1u) {
    if (n0 + j < N) { st_y(yo + j, acc[j]${hasBias ? ' + ld_bias(n0 + j)' : ''}); }
  }
}`;
}

/**
 * 64×64 output tile per workgroup, each of the 256 threads accumulating a 4×4 block in registers;
 * A and B move through workgroup memory in K slices of 16 (k-major, so the inner loop reads
 * 4 consecutive floats of each).
 */
function matmulBlocked(sharedB: boolean, hasBias: boolean): string {
  return `
var<workgroup> As: array<f32, 1024>;
var<workgroup> Bs: array<f32, 1024>;
fn kmain(wg: u32, li: u32) {
  let tn = wg % TN;
  let t2 = wg / TN;
  let tm = t2 % TM;
  let bi = t2 / TM;
  let tx = li % 16u;
  let ty = li / 16u;
  let ao = bi * M * K;
  let bo = ${sharedB ? '0u' : 'bi * K * N'};
  var acc: array<vec4<f32>, 4>;
  for (var i = 0u; i < 4u; i = i + 1u) { acc[i] = vec4<f32>(0.0f); }
  for (var k0 = 0u; k0 < K; k0 = k0 + 16u) {
    for (var l = 0u; l < 4u; l = l + 1u) {
      let e = li + l * 256u;
      let row = e / 16u;
      let kk = e % 16u;
      let m = tm * 64u + row;
      let k = k0 + kk;
      var av = 0.0f;
      if (m < M && k < K) { av = ld_a(ao + m * ASI + k * ASK); }
      As[kk * 64u + row] = av;
      let kb = e / 64u;
      let col = e % 64u;
      let n = tn * 64u + col;
      let k2 = k0 + kb;
      var bv = 0.0f;
      if (n < N && k2 < K) { bv = ld_b(bo + k2 * BSK + n * BSN); }
      Bs[kb * 64u + col] = bv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk = kk + 1u) {
      let ab = kk * 64u + ty * 4u;
      let bb = kk * 64u + tx * 4u;
      let bv = vec4<f32>(Bs[bb], Bs[bb + 1u], Bs[bb + 2u], Bs[bb + 3u]);
      acc[0] = fma(vec4<f32>(As[ab]), bv, acc[0]);
      acc[1] = fma(vec4<f32>(As[ab + 1u]), bv, acc[1]);
      acc[2] = fma(vec4<f32>(As[ab + 2u]), bv, acc[2]);
      acc[3] = fma(vec4<f32>(As[ab + 3u]), bv, acc[3]);
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i = i + 1u) {
    let m = tm * 64u + ty * 4u + i;
    if (m >= M) { break; }
    for (var j = 0u; j < 4u; j = j + 1u) {
      let n = tn * 64u + tx * 4u + j;
      if (n < N) { st_y((bi * M + m) * N + n, acc[i][j]${hasBias ? ' + ld_bias(n)' : ''}); }
    }
  }
}`;
}

function uploadFloats(values: ArrayLike<number>): GpuStorage {
  const s = allocStorage(Math.max(1, values.length));
  writeStorage(s, Float32Array.from(values));
  return s;
}

function checkIndex(index: Int32Array, rows: number, op: string): void {
  check(rows <= 1 << 24 && index.length <= 1 << 24, `${op}: index or table too large for float32 row numbers`);
  for (let i = 0; i < index.length; i++) check(index[i]! >= 0 && index[i]! < rows, `${op}: index ${index[i]} at position ${i} is not a row of [0, ${rows})`);
}

export function gatherRows(table: KTensor, a: { index: Int32Array }): KTensor {
  check(table.shape.length === 2, `gatherRows: table must be [R, C], got [${table.shape.join(', ')}]`);
  const [R, C] = table.shape as [number, number];
  checkIndex(a.index, R, 'gatherRows');
  const idx = uploadFloats(a.index);
  const size = a.index.length * C;
  const y = pointwise(
    'gatherRows',
    size,
    [r('t', table, 'gatherRows'), { name: 'idx', s: idx, mode: 'r' }],
    `  let row = u32(ld_idx(i / ${C}u));\n  st_y(i, ld_t(row * ${C}u + i % ${C}u));`,
  );
  freeStorage(idx);
  return out([a.index.length, C], y);
}

export function scatterAddRows(dy: KTensor, a: { index: Int32Array; rows: number }): KTensor {
  const n = a.index.length;
  check(dy.shape.length === 2 && dy.shape[0] === n, `scatterAddRows: dy must be [${n}, C], got [${dy.shape.join(', ')}]`);
  const C = dy.shape[1]!;
  checkIndex(a.index, a.rows, 'scatterAddRows');
  // Per-row position lists (CSR) built on the host: each output element sums its own rows in index
  // order, so there are no write conflicts and the result does not depend on scheduling.
  const offs = new Int32Array(a.rows + 1);
  for (let i = 0; i < n; i++) offs[a.index[i]! + 1]!++;
  for (let r0 = 0; r0 < a.rows; r0++) offs[r0 + 1]! += offs[r0]!;
  const fill = offs.slice(0, a.rows);
  const pos = new Int32Array(n);
  for (let i = 0; i < n; i++) pos[fill[a.index[i]!]!++] = i;
  const offS = uploadFloats(offs);
  const posS = uploadFloats(pos);
  const size = a.rows * C;
  const body = `  let row = i / ${C}u;
  let c = i % ${C}u;
  var k = vec2<f32>(0.0f, 0.0f);
  for (var j = u32(ld_offs(row)); j < u32(ld_offs(row + 1u)); j = j + 1u) { k = kadd(k, ld_dy(u32(ld_pos(j)) * ${C}u + c)); }
  st_y(i, k.x + k.y);`;
  const y = allocStorage(size);
  run({
    label: 'scatterAddRows',
    src: `${WGSL_KADD_ONLY}\nfn kmain(wg: u32, li: u32) {\n  let i = wg * WG + li;\n  if (i >= NE) { return; }\n${body}\n}\n`,
    tensors: [r('dy', dy, 'scatterAddRows'), { name: 'offs', s: offS, mode: 'r' }, { name: 'pos', s: posS, mode: 'r' }, w('y', y)],
    consts: { NE: size },
    workgroups: groups(size),
  });
  freeStorage(offS);
  freeStorage(posS);
  return out([a.rows, C], y);
}
