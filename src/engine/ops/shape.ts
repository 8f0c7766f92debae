import { backendOf, runKernel, record, wrap } from '../op.js';
import { Tensor, shapeString, sizeOf } from '../tensor.js';
import { zeros } from '../creation.js';

/** Same values, new shape; shares storage (no copy). One dimension may be -1. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const known = shape.filter((d) => d !== -1);
  const free = shape.length - known.length;
  let full = [...shape];
  if (free > 1) throw new Error(`reshape: at most one -1 in ${shapeString(shape)}`);
  if (free === 1) {
    const rest = sizeOf(known);
    if (rest === 0 || x.size % rest !== 0) throw new Error(`reshape: cannot reshape ${shapeString(x.shape)} to ${shapeString(shape)}`);
    full = shape.map((d) => (d === -1 ? x.size / rest : d));
  }
  if (sizeOf(full) !== x.size) throw new Error(`reshape: cannot reshape ${shapeString(x.shape)} (${x.size} values) to ${shapeString(shape)}`);
  const y = new Tensor(x.storage.retain(), full);
  const inShape = x.shape;
  return record(y, 'reshape', [x], [], (dy) => [reshape(dy, inShape)]);
}

/** Concatenates along the channel axis (1); all other dimensions must match. */
export function concatChannels(xs: readonly Tensor[]): Tensor {
  if (xs.length === 0) throw new Error('concatChannels: no inputs');
  const ref = xs[0]!;
  for (const t of xs) {
    if (t.rank !== ref.rank || t.rank < 2 || t.shape.some((d, i) => i !== 1 && d !== ref.shape[i])) {
      throw new Error(`concatChannels: shapes ${xs.map((x) => shapeString(x.shape)).join(', ')} differ outside the channel axis`);
    }
  }
  const be = backendOf('concatChannels', ...xs);
  const y = wrap(
    runKernel(
      'concatChannels',
      be,
      xs.map((t) => t.info),
    ),
    be,
  );
  const bounds: number[] = [0];
  for (const t of xs) bounds.push(bounds[bounds.length - 1]! + t.shape[1]!);
  return record(y, 'concatChannels', [...xs], [], (dy, _s, needs) =>
    xs.map((_, i) => (needs[i] ? wrap(runKernel('sliceChannels', be, dy.info, { start: bounds[i]!, end: bounds[i + 1]! }), be) : null)),
  );
}

/** Channels [start, end) along axis 1. */
export function sliceChannels(x: Tensor, start: number, end: number): Tensor {
  const c = x.shape[1];
  if (c === undefined || !Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > c || start >= end) {
    throw new Error(`sliceChannels: range [${start}, ${end}) is not inside the ${c} channels of ${shapeString(x.shape)}`);
  }
  const be = backendOf('sliceChannels', x);
  const y = wrap(runKernel('sliceChannels', be, x.info, { start, end }), be);
  const shape = x.shape;
  return record(y, 'sliceChannels', [x], [], (dy) => {
    const parts: Tensor[] = [];
    const rest = shape.slice(2);
    if (start > 0) parts.push(zeros([shape[0]!, start, ...rest], { backend: be }));
    parts.push(dy);
    if (end < c) parts.push(zeros([shape[0]!, c - end, ...rest], { backend: be }));
    return [
      parts.length === 1
        ? dy
        : wrap(
            runKernel(
              'concatChannels',
              be,
              parts.map((p) => p.info),
            ),
            be,
          ),
    ];
  });
}
