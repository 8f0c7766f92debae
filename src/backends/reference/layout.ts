import type { KTensor } from '../../engine/kernels.js';
import { contiguousStrides } from '../../engine/tensor.js';
import { alloc, check, f32, numel, out } from './memory.js';

/**
 * Index-mapping kernels (strided copies, roll) and broadcasting arithmetic. Each output position's
 * source is a sum of per-dimension offsets, so one odometer over the output drives them all.
 */

/** Calls fn(linear, Σ_d tables[d][i_d]) for every index of `shape` in row-major order. */
function walk(shape: readonly number[], tables: readonly (readonly number[])[], fn: (linear: number, src: number) => void, offset = 0): void {
  const rank = shape.length;
  const total = numel(shape);
  if (total === 0) return;
  if (rank === 0) {
    fn(0, offset);
    return;
  }
  const idx = new Array<number>(rank).fill(0);
  const last = tables[rank - 1]!;
  const inner = shape[rank - 1]!;
  let base = offset;
  for (let d = 0; d < rank - 1; d++) base += tables[d]![0]!;
  for (let lin = 0; lin < total; lin += inner) {
    for (let j = 0; j < inner; j++) fn(lin + j, base + last[j]!);
    // advance the outer odometer
    let d = rank - 2;
    while (d >= 0) {
      const t = tables[d]!;
      base -= t[idx[d]!]!;
      if (++idx[d]! < shape[d]!) {
        base += t[idx[d]!]!;
        break;
      }
      idx[d] = 0;
      base += t[0]!;
      d--;
    }
  }
}

function linearTables(shape: readonly number[], strides: readonly number[]): number[][] {
  return shape.map((n, d) => Array.from({ length: n }, (_, i) => i * strides[d]!));
}

function checkStrided(op: string, xSize: number, shape: readonly number[], offset: number, strides: readonly number[], bound: number): void {
  check(strides.length === shape.length, `${op}: ${strides.length} strides for a rank-${shape.length} index space`);
  check(
    shape.every((d) => Number.isInteger(d) && d >= 0) && strides.every((s) => Number.isInteger(s) && s >= 0) && Number.isInteger(offset) && offset >= 0,
    `${op}: shape, strides and offset must be non-negative integers`,
  );
  if (numel(shape) === 0) return;
  const maxPos = offset + shape.reduce((acc, n, d) => acc + (n - 1) * strides[d]!, 0);
  check(maxPos < bound, `${op}: position ${maxPos} is outside a storage of ${bound} values (x has ${xSize})`);
}

export function stridedCopy(x: KTensor, a: { shape: readonly number[]; offset: number; strides: readonly number[] }): KTensor {
  const xd = f32(x);
  checkStrided('stridedCopy', xd.length, a.shape, a.offset, a.strides, xd.length);
  const y = alloc(numel(a.shape));
  walk(
    a.shape,
    linearTables(a.shape, a.strides),
    (i, s) => {
      y[i] = xd[s]!;
    },
    a.offset,
  );
  return out(a.shape, y);
}

export function stridedScatter(x: KTensor, a: { shape: readonly number[]; offset: number; strides: readonly number[] }): KTensor {
  const xd = f32(x);
  const size = numel(a.shape);
  checkStrided('stridedScatter', xd.length, x.shape, a.offset, a.strides, size);
  const y = alloc(size);
  walk(
    x.shape,
    linearTables(x.shape, a.strides),
    (i, s) => {
      y[s] = xd[i]!;
    },
    a.offset,
  );
  return out(a.shape, y);
}

export function roll(x: KTensor, a: { shifts: readonly number[]; dims: readonly number[] }): KTensor {
  check(a.shifts.length === a.dims.length, 'roll: shifts and dims differ in length');
  const xd = f32(x);
  const st = contiguousStrides(x.shape);
  const shift = new Array<number>(x.shape.length).fill(0);
  for (let k = 0; k < a.dims.length; k++) {
    const d = a.dims[k]!;
    check(Number.isInteger(d) && d >= 0 && d < x.shape.length, `roll: dim ${d} is not a dimension of [${x.shape.join(', ')}]`);
    shift[d] = a.shifts[k]!;
  }
  const tables = x.shape.map((n, d) => Array.from({ length: n }, (_, i) => ((((i - shift[d]!) % n) + n) % n) * st[d]!));
  const y = alloc(xd.length);
  walk(x.shape, tables, (i, s) => {
    y[i] = xd[s]!;
  });
  return out(x.shape, y);
}

export function broadcastShape(op: string, a: readonly number[], b: readonly number[]): number[] {
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

/** Per-dimension offset tables reading `src` (right-aligned in `shape`) with stride 0 on broadcast dims. */
function broadcastTables(shape: readonly number[], src: readonly number[]): number[][] {
  const st = contiguousStrides(src);
  const lead = shape.length - src.length;
  return shape.map((n, d) => {
    const sd = d - lead;
    const stride = sd < 0 || src[sd] === 1 ? 0 : st[sd]!;
    return Array.from({ length: n }, (_, i) => i * stride);
  });
}

export function broadcastBinary(a: KTensor, b: KTensor, attrs: { op: 'add' | 'sub' | 'mul' }): KTensor {
  const shape = broadcastShape('broadcastBinary', a.shape, b.shape);
  const ad = f32(a);
  const bd = f32(b);
  const bt = broadcastTables(shape, b.shape);
  const bIndex = new Int32Array(numel(shape));
  walk(shape, bt, (i, s) => {
    bIndex[i] = s;
  });
  const y = alloc(bIndex.length);
  const op = attrs.op;
  walk(shape, broadcastTables(shape, a.shape), (i, s) => {
    const u = ad[s]!;
    const v = bd[bIndex[i]!]!;
    y[i] = op === 'add' ? u + v : op === 'sub' ? u - v : u * v;
  });
  return out(shape, y);
}

export function sumToShape(x: KTensor, a: { shape: readonly number[] }): KTensor {
  const full = broadcastShape('sumToShape', x.shape, a.shape);
  check(full.length === x.shape.length && full.every((d, i) => d === x.shape[i]), `sumToShape: [${a.shape.join(', ')}] does not broadcast to [${x.shape.join(', ')}]`);
  const xd = f32(x);
  const acc = new Float64Array(numel(a.shape));
  walk(x.shape, broadcastTables(x.shape, a.shape), (i, s) => {
    acc[s] += xd[i]!;
  });
  const y = alloc(acc.length);
  y.set(acc);
  return out(a.shape, y);
}
