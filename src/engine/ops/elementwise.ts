import { backendOf, record, wrap, runKernel } from '../op.js';
import { shapeString, type Tensor } from '../tensor.js';

/** Gradient of a broadcast operand: dy summed over the dims it was stretched along. */
function reduceTo(dy: Tensor, shape: readonly number[], be: string): Tensor {
  if (dy.rank === shape.length && dy.shape.every((d, i) => d === shape[i])) return dy;
  return wrap(runKernel('sumToShape', be, dy.info, { shape }), be);
}

function checkBroadcast(op: string, a: Tensor, b: Tensor): void {
  const rank = Math.max(a.rank, b.rank);
  for (let i = 1; i <= rank; i++) {
    const da = a.shape[a.rank - i] ?? 1;
    const db = b.shape[b.rank - i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`${op}: shapes ${shapeString(a.shape)} and ${shapeString(b.shape)} do not broadcast`);
  }
}

function sameShape(a: Tensor, b: Tensor): boolean {
  return a.rank === b.rank && a.shape.every((d, i) => d === b.shape[i]);
}

/** a + b with numpy/PyTorch broadcasting (residual connections, biases, attention masks). */
export function add(a: Tensor, b: Tensor): Tensor {
  const be = backendOf('add', a, b);
  if (sameShape(a, b)) return record(wrap(runKernel('add', be, a.info, b.info), be), 'add', [a, b], [], (dy) => [dy, dy]);
  checkBroadcast('add', a, b);
  const sa = a.shape;
  const sb = b.shape;
  return record(wrap(runKernel('broadcastBinary', be, a.info, b.info, { op: 'add' }), be), 'add', [a, b], [], (dy, _s, needs) => [
    needs[0] ? reduceTo(dy, sa, be) : null,
    needs[1] ? reduceTo(dy, sb, be) : null,
  ]);
}

/** a − b with broadcasting. */
export function sub(a: Tensor, b: Tensor): Tensor {
  checkBroadcast('sub', a, b);
  const be = backendOf('sub', a, b);
  const sa = a.shape;
  const sb = b.shape;
  return record(wrap(runKernel('broadcastBinary', be, a.info, b.info, { op: 'sub' }), be), 'sub', [a, b], [], (dy, _s, needs) => {
    if (!needs[1]) return [needs[0] ? reduceTo(dy, sa, be) : null, null];
    const gb = reduceTo(dy, sb, be);
    const neg = wrap(runKernel('scale', be, gb.info, { factor: -1 }), be);
    if (gb !== dy) gb.dispose();
    return [needs[0] ? reduceTo(dy, sa, be) : null, neg];
  });
}

/** a · b elementwise with broadcasting (dropout masks, gates). */
export function mul(a: Tensor, b: Tensor): Tensor {
  checkBroadcast('mul', a, b);
  const be = backendOf('mul', a, b);
  const y = wrap(runKernel('broadcastBinary', be, a.info, b.info, { op: 'mul' }), be);
  return record(y, 'mul', [a, b], [a, b], (dy, [as, bs], needs) => {
    const grad = (other: Tensor, shape: readonly number[]): Tensor => {
      const full = wrap(runKernel('broadcastBinary', be, dy.info, other.info, { op: 'mul' }), be);
      const g = reduceTo(full, shape, be);
      if (g !== full) full.dispose();
      return g;
    };
    return [needs[0] ? grad(bs!, as!.shape) : null, needs[1] ? grad(as!, bs!.shape) : null];
  });
}

/** x · factor for a constant factor. */
export function scale(x: Tensor, factor: number): Tensor {
  const be = backendOf('scale', x);
  return record(wrap(runKernel('scale', be, x.info, { factor }), be), 'scale', [x], [], (dy) => [wrap(runKernel('scale', be, dy.info, { factor }), be)]);
}

/** y[n, c, ...] = x[n, c, ...] · s[c]: the ux_block layer scale γ. */
export function mulChannel(x: Tensor, s: Tensor): Tensor {
  if (x.rank < 2 || s.rank !== 1 || s.shape[0] !== x.shape[1])
    throw new Error(`mulChannel: scale ${shapeString(s.shape)} must have shape [${x.shape[1]}] for input ${shapeString(x.shape)}`);
  const be = backendOf('mulChannel', x, s);
  return record(wrap(runKernel('mulChannel', be, x.info, s.info), be), 'mulChannel', [x, s], [x, s], (dy, [xs, ss], needs) => [
    needs[0] ? wrap(runKernel('mulChannel', be, dy.info, ss!.info), be) : null,
    needs[1] ? wrap(runKernel('mulChannelGradScale', be, dy.info, xs!.info), be) : null,
  ]);
}
