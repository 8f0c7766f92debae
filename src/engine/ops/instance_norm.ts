import { backendOf, runKernel, record, wrap } from '../op.js';
import { shapeString, type Tensor } from '../tensor.js';

/**
 * InstanceNorm3d without affine parameters (MONAI's "instance" norm): statistics per (n, c) over
 * the spatial axes, biased variance, always from the input (train and eval alike).
 */
export function instanceNorm(x: Tensor, opts: { eps?: number } = {}): Tensor {
  const eps = opts.eps ?? 1e-5;
  if (x.rank < 3) throw new Error(`instanceNorm: input must be [N, C, ...spatial], got ${shapeString(x.shape)}`);
  const spatial = x.shape.slice(2).reduce((a, b) => a * b, 1);
  if (spatial <= 1) throw new Error(`instanceNorm: needs more than one spatial element per channel, got input ${shapeString(x.shape)}`);
  const be = backendOf('instanceNorm', x);
  const [yk, rk] = runKernel('instanceNorm', be, x.info, { eps });
  const y = wrap(yk, be);
  const rstd = wrap(rk, be);
  const out = record(y, 'instanceNorm', [x], [y, rstd], (dy, [ys, rs]) => [wrap(runKernel('instanceNormGrad', be, dy.info, ys!.info, rs!.info), be)]);
  rstd.dispose();
  return out;
}
