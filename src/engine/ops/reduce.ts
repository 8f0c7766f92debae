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
