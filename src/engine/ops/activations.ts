import { backendOf, runKernel, record, wrap } from '../op.js';
import type { Tensor } from '../tensor.js';

/** GELU with the exact erf form (PyTorch's default, approximate='none'). */
export function gelu(x: Tensor): Tensor {
  const be = backendOf('gelu', x);
  return record(wrap(runKernel('gelu', be, x.info), be), 'gelu', [x], [x], (dy, [xs]) => [wrap(runKernel('geluGrad', be, dy.info, xs!.info), be)]);
}

/** LeakyReLU; its gradient at exactly 0 is the slope, as in PyTorch. */
export function leakyRelu(x: Tensor, slope = 0.01): Tensor {
  const be = backendOf('leakyRelu', x);
  return record(wrap(runKernel('leakyRelu', be, x.info, { slope }), be), 'leakyRelu', [x], [x], (dy, [xs]) => [
    wrap(runKernel('leakyReluGrad', be, dy.info, xs!.info, { slope }), be),
  ]);
}

/** Softmax over the channel axis (1). */
export function softmax(x: Tensor): Tensor {
  if (x.rank < 2) throw new Error('softmax: input needs a channel axis (rank >= 2)');
  const be = backendOf('softmax', x);
  const y = wrap(runKernel('softmax', be, x.info), be);
  return record(y, 'softmax', [x], [y], (dy, [ys]) => [wrap(runKernel('softmaxGrad', be, dy.info, ys!.info), be)]);
}

/** Softmax over the last dim (attention rows): the channel softmax on an [rows, C, 1] view. */
export function softmaxLast(x: Tensor): Tensor {
  if (x.rank < 1) throw new Error('softmaxLast: input needs at least one dimension');
  const be = backendOf('softmaxLast', x);
  const c = x.shape[x.rank - 1]!;
  const v = [x.size / c, c, 1];
  const shape = x.shape;
  const yk = runKernel('softmax', be, { shape: v, data: x.info.data });
  const y = wrap({ shape, data: yk.data }, be);
  return record(y, 'softmaxLast', [x], [y], (dy, [ys]) => {
    const g = runKernel('softmaxGrad', be, { shape: v, data: dy.info.data }, { shape: v, data: ys!.info.data });
    return [wrap({ shape, data: g.data }, be)];
  });
}

/** ReLU (its gradient at exactly 0 is 0, as in PyTorch): LeakyReLU with slope 0. */
export function relu(x: Tensor): Tensor {
  return leakyRelu(x, 0);
}
