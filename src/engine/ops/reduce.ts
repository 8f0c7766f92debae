import { backendOf, runKernel, record, wrap } from '../op.js';
import type { Tensor } from '../tensor.js';

/** Sum of all elements, shape [1]. */
export function sum(x: Tensor): Tensor {
  const be = backendOf('sum', x);
  const shape = x.shape;
  return record(wrap(runKernel('sum', be, x.info), be), 'sum', [x], [], (dy) => [wrap(runKernel('fillFromScalar', be, dy.info, { shape, factor: 1 }), be)]);
}

/** Mean of all elements, shape [1]. */
export function mean(x: Tensor): Tensor {
  const be = backendOf('mean', x);
  const shape = x.shape;
  const n = x.size;
  const s = runKernel('sum', be, x.info);
  const y = wrap(runKernel('scale', be, s, { factor: 1 / n }), be);
  wrap(s, be).dispose();
  return record(y, 'mean', [x], [], (dy) => [wrap(runKernel('fillFromScalar', be, dy.info, { shape, factor: 1 / n }), be)]);
}

/** Mean over one dim (negative counts from the end); keepDim leaves it as size 1. */
export function meanDim(x: Tensor, dim: number, keepDim = false): Tensor {
  if (!Number.isInteger(dim) || dim < -x.rank || dim >= x.rank) throw new Error(`meanDim: dim ${dim} is out of range for shape [${x.shape.join(', ')}]`);
  const d = dim < 0 ? dim + x.rank : dim;
  const be = backendOf('meanDim', x);
  const n = x.shape[d]!;
  const kept = x.shape.map((v, i) => (i === d ? 1 : v));
  const outShape = keepDim ? kept : x.shape.filter((_, i) => i !== d);
  const s = runKernel('sumToShape', be, x.info, { shape: kept });
  const yk = runKernel('scale', be, s, { factor: 1 / n });
  wrap(s, be).dispose();
  const y = wrap({ shape: outShape, data: yk.data }, be);
  const xShape = x.shape;
  // Broadcasting dy back is a strided copy reading the kept-shape gradient with stride 0 along d.
  const strides: number[] = [];
  let acc = 1;
  for (let i = kept.length - 1; i >= 0; i--) {
    strides[i] = i === d ? 0 : acc;
    acc *= kept[i]!;
  }
  return record(y, 'meanDim', [x], [], (dy) => {
    const full = wrap(runKernel('stridedCopy', be, dy.info, { shape: xShape, offset: 0, strides }), be);
    return [wrap(runKernel('scale', be, full.info, { factor: 1 / n }), be)];
  });
}
