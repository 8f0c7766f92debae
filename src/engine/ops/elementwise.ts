import { assertSameShape, backendOf, runKernel, record, wrap } from '../op.js';
import { shapeString, type Tensor } from '../tensor.js';

/** a + b for tensors of identical shape (residual connections). */
export function add(a: Tensor, b: Tensor): Tensor {
  assertSameShape('add', a, b);
  const be = backendOf('add', a, b);
  return record(wrap(runKernel('add', be, a.info, b.info), be), 'add', [a, b], [], (dy) => [dy, dy]);
}

/** x · factor for a constant factor. */
export function scale(x: Tensor, factor: number): Tensor {
  const be = backendOf('scale', x);
  return record(wrap(runKernel('scale', be, x.info, { factor }), be), 'scale', [x], [], (dy) => [wrap(runKernel('scale', be, dy.info, { factor }), be)]);
}

/** y[n, c, ...] = x[n, c, ...] · s[c]: the ux_block layer scale γ. */
export function mulChannel(x: Tensor, s: Tensor): Tensor {
  if (x.rank < 2 || s.rank !== 1 || s.shape[0] !== x.shape[1]) throw new Error(`mulChannel: scale ${shapeString(s.shape)} must have shape [${x.shape[1]}] for input ${shapeString(x.shape)}`);
  const be = backendOf('mulChannel', x, s);
  return record(wrap(runKernel('mulChannel', be, x.info, s.info), be), 'mulChannel', [x, s], [x, s], (dy, [xs, ss], needs) => [
    needs[0] ? wrap(runKernel('mulChannel', be, dy.info, ss!.info), be) : null,
    needs[1] ? wrap(runKernel('mulChannelGradScale', be, dy.info, xs!.info), be) : null,
  ]);
}
