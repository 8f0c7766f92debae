import type { KTensor } from '../kernels.js';
import { backendOf, record, wrap, runKernel } from '../op.js';
import { contiguousStrides, shapeString, sizeOf, type Tensor } from '../tensor.js';

/**
 * Copies that rearrange values: permute, roll, pad, strided slice, concat along any dim and row
 * gathers. Each gradient is the adjoint rearrangement.
 */

/** A dimension index in [0, rank), accepting negative values counted from the end. */
function axis(op: string, d: number, rank: number): number {
  if (!Number.isInteger(d) || d < -rank || d >= rank) throw new Error(`${op}: dim ${d} is out of range for a rank-${rank} tensor`);
  return d < 0 ? d + rank : d;
}

function view(t: Tensor, shape: readonly number[]): KTensor {
  return { shape, data: t.info.data };
}

/** torch `x.permute(perm).contiguous()`: output dim i is input dim perm[i]. */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  const p = perm.map((d) => axis('permute', d, x.rank));
  if (p.length !== x.rank || new Set(p).size !== p.length) throw new Error(`permute: ${shapeString(perm)} is not a permutation of the ${x.rank} dims of ${shapeString(x.shape)}`);
  const be = backendOf('permute', x);
  const st = contiguousStrides(x.shape);
  const y = wrap(runKernel('stridedCopy', be, x.info, { shape: p.map((d) => x.shape[d]!), offset: 0, strides: p.map((d) => st[d]!) }), be);
  const inv = new Array<number>(p.length);
  p.forEach((d, i) => {
    inv[d] = i;
  });
  return record(y, 'permute', [x], [], (dy) => [permute(dy, inv)]);
}

/** torch.roll(x, shifts, dims): values shift towards higher indices and wrap around. */
export function roll(x: Tensor, shifts: readonly number[], dims: readonly number[]): Tensor {
  if (shifts.length !== dims.length || dims.length === 0)
    throw new Error(`roll: shifts ${shapeString(shifts)} and dims ${shapeString(dims)} must be non-empty and of equal length`);
  const total = new Array<number>(x.rank).fill(0);
  dims.forEach((d, k) => {
    const s = shifts[k]!;
    if (!Number.isInteger(s)) throw new Error(`roll: shift ${s} is not an integer`);
    total[axis('roll', d, x.rank)]! += s;
  });
  const used = total.map((s, d) => [((s % x.shape[d]!) + x.shape[d]!) % x.shape[d]!, d] as const).filter(([s]) => s !== 0);
  const be = backendOf('roll', x);
  const y =
    used.length === 0
      ? wrap(runKernel('scale', be, x.info, { factor: 1 }), be)
      : wrap(runKernel('roll', be, x.info, { shifts: used.map(([s]) => s), dims: used.map(([, d]) => d) }), be);
  return record(y, 'roll', [x], [], (dy) => [
    used.length === 0
      ? dy
      : roll(
          dy,
          used.map(([s]) => -s),
          used.map(([, d]) => d),
        ),
  ]);
}

/** Zero padding: pads[d] = [before, after] for every dim d (non-negative). */
export function pad(x: Tensor, pads: readonly (readonly [number, number])[]): Tensor {
  if (pads.length !== x.rank || !pads.every((p) => p.length === 2 && p.every((v) => Number.isInteger(v) && v >= 0))) {
    throw new Error(`pad: pads ${JSON.stringify(pads)} must hold one [before, after] pair of non-negative integers per dim of ${shapeString(x.shape)}`);
  }
  const be = backendOf('pad', x);
  const shape = x.shape.map((n, d) => n + pads[d]![0] + pads[d]![1]);
  const strides = contiguousStrides(shape);
  const offset = pads.reduce((acc, p, d) => acc + p[0] * strides[d]!, 0);
  const xShape = x.shape;
  const y = wrap(runKernel('stridedScatter', be, x.info, { shape, offset, strides }), be);
  return record(y, 'pad', [x], [], (dy) => [wrap(runKernel('stridedCopy', be, dy.info, { shape: xShape, offset, strides }), be)]);
}

/**
 * Strided slice along every dim, Python semantics: x[starts[0]:ends[0]:steps[0], ...]. Negative
 * starts/ends count from the end and out-of-range bounds clamp (pass Infinity for "to the end");
 * steps are positive (default 1). Dims beyond the given arrays are kept whole.
 */
export function slice(x: Tensor, starts: readonly number[], ends: readonly number[], steps?: readonly number[]): Tensor {
  if (starts.length !== ends.length || starts.length > x.rank || (steps && steps.length !== starts.length)) {
    throw new Error(
      `slice: starts ${shapeString(starts)}, ends ${shapeString(ends)}${steps ? ` and steps ${shapeString(steps)}` : ''} must have equal lengths of at most the rank of ${shapeString(x.shape)}`,
    );
  }
  const st = contiguousStrides(x.shape);
  const shape: number[] = [];
  const strides: number[] = [];
  let offset = 0;
  for (let d = 0; d < x.rank; d++) {
    const n = x.shape[d]!;
    const step = d < starts.length ? (steps?.[d] ?? 1) : 1;
    if (!Number.isInteger(step) || step < 1) throw new Error(`slice: step ${step} for dim ${d} must be a positive integer`);
    const clamp = (v: number, what: string): number => {
      if (Number.isNaN(v) || (!Number.isInteger(v) && Number.isFinite(v))) throw new Error(`slice: ${what} ${v} for dim ${d} is not an integer`);
      return Math.min(n, Math.max(0, v < 0 ? v + n : v));
    };
    const a = d < starts.length ? clamp(starts[d]!, 'start') : 0;
    const b = d < starts.length ? clamp(ends[d]!, 'end') : n;
    const len = Math.max(0, Math.ceil((b - a) / step));
    if (len === 0) throw new Error(`slice: dim ${d} of ${shapeString(x.shape)} would be empty (${starts[d]}:${ends[d]}:${step})`);
    shape.push(len);
    strides.push(st[d]! * step);
    offset += a * st[d]!;
  }
  const be = backendOf('slice', x);
  const xShape = x.shape;
  const y = wrap(runKernel('stridedCopy', be, x.info, { shape, offset, strides }), be);
  return record(y, 'slice', [x], [], (dy) => [wrap(runKernel('stridedScatter', be, dy.info, { shape: xShape, offset, strides }), be)]);
}

/** Concatenation along any dim (all other dims equal). */
export function concat(xs: readonly Tensor[], dim: number): Tensor {
  if (xs.length === 0) throw new Error('concat: no inputs');
  const ref = xs[0]!;
  const d = axis('concat', dim, ref.rank);
  for (const t of xs) {
    if (t.rank !== ref.rank || t.shape.some((n, i) => i !== d && n !== ref.shape[i])) {
      throw new Error(`concat: shapes ${xs.map((x) => shapeString(x.shape)).join(', ')} differ outside dim ${d}`);
    }
  }
  const be = backendOf('concat', ...xs);
  // [outer, C_i, inner] views turn any dim into the channel axis of the existing kernels.
  const outer = sizeOf(ref.shape.slice(0, d));
  const inner = sizeOf(ref.shape.slice(d + 1));
  const bounds: number[] = [0];
  for (const t of xs) bounds.push(bounds[bounds.length - 1]! + t.shape[d]!);
  const total = bounds[bounds.length - 1]!;
  const shape = [...ref.shape];
  shape[d] = total;
  const yk = runKernel(
    'concatChannels',
    be,
    xs.map((t) => view(t, [outer, t.shape[d]!, inner])),
  );
  const y = wrap({ shape, data: yk.data }, be);
  const shapes = xs.map((t) => t.shape);
  return record(y, 'concat', [...xs], [], (dy, _s, needs) =>
    shapes.map((s, i) => {
      if (!needs[i]) return null;
      const g = runKernel('sliceChannels', be, view(dy, [outer, total, inner]), { start: bounds[i]!, end: bounds[i + 1]! });
      return wrap({ shape: s, data: g.data }, be);
    }),
  );
}

/**
 * Row lookup: table [R, C], index values in [0, R) -> [index.length, C], or `outShape` of the same
 * size. The gradient adds each output row back into its table row (repeated indices accumulate).
 */
export function gatherRows(table: Tensor, index: Int32Array, outShape?: readonly number[]): Tensor {
  if (table.rank !== 2) throw new Error(`gatherRows: table must be [R, C], got ${shapeString(table.shape)}`);
  const [R, C] = table.shape as [number, number];
  if (index.length === 0) throw new Error('gatherRows: index is empty');
  for (let i = 0; i < index.length; i++) {
    if (index[i]! < 0 || index[i]! >= R) throw new Error(`gatherRows: index[${i}] = ${index[i]} is not a row of the ${R}-row table`);
  }
  const shape = outShape ? [...outShape] : [index.length, C];
  if (sizeOf(shape) !== index.length * C) throw new Error(`gatherRows: outShape ${shapeString(shape)} does not hold ${index.length} rows of ${C}`);
  const be = backendOf('gatherRows', table);
  // The index is captured by the backward closure: callers must not modify it afterwards.
  const yk = runKernel('gatherRows', be, table.info, { index });
  return record(wrap({ shape, data: yk.data }, be), 'gatherRows', [table], [], (dy) => [
    wrap(runKernel('scatterAddRows', be, view(dy, [index.length, C]), { index, rows: R }), be),
  ]);
}
