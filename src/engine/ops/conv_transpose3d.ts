import type { Triple } from '../kernels.js';
import { assertShape, backendOf, runKernel, record, wrap } from '../op.js';
import { shapeString, type Tensor } from '../tensor.js';
import { hasKernel } from '../registry.js';
import { tidy } from '../scope.js';
import { triple } from './conv3d.js';
import { add } from './elementwise.js';
import { channelView, needsGrad } from './group_norm.js';

/**
 * Transposed 3-D convolution, PyTorch `F.conv_transpose3d` semantics with groups 1 and no output
 * padding (weight [Cin, Cout, kd, kh, kw]); output size (n − 1)·s − 2p + k. It is the adjoint of
 * conv3d, so it runs on the conv3d gradient kernels.
 */
export function convTranspose3d(x: Tensor, w: Tensor, opts: { stride?: number | Triple; padding?: number | Triple; bias?: Tensor | null } = {}): Tensor {
  assertShape('convTranspose3d', 'input', x, 5);
  assertShape('convTranspose3d', 'weight', w, 5);
  const stride = triple(opts.stride, 1, 'convTranspose3d: stride');
  const padding = triple(opts.padding, 0, 'convTranspose3d: padding');
  const [n, cin, ...sp] = x.shape as number[];
  const [wcin, cout, ...k] = w.shape as number[];
  if (wcin !== cin) throw new Error(`convTranspose3d: weight ${shapeString(w.shape)} expects ${wcin} input channels, input ${shapeString(x.shape)} has ${cin}`);
  const outSp = sp.map((d, i) => (d - 1) * stride[i]! - 2 * padding[i]! + k[i]!);
  if (outSp.some((d) => d < 1)) throw new Error(`convTranspose3d: output would be empty for input ${shapeString(x.shape)}`);
  const attrs = { stride, padding, groups: 1 };
  const outShape = [n!, cout!, ...outSp];
  const bias = opts.bias ?? null;
  if (bias && (bias.rank !== 1 || bias.size !== cout)) throw new Error(`convTranspose3d: bias ${shapeString(bias.shape)} must have shape [${cout}]`);
  const be = backendOf('convTranspose3d', x, w, bias);
  // Inference with a bias: added as the output is written (one pass fewer), where the backend can.
  if (bias && !needsGrad(x, w, bias) && hasKernel('conv3dGradInputBias', be))
    return wrap(runKernel('conv3dGradInputBias', be, x.info, w.info, bias.info, { ...attrs, inputShape: outShape }), be);
  if (bias) return tidy(() => add(convTranspose3d(x, w, { stride, padding }), channelView(bias, 5)));
  const y = wrap(runKernel('conv3dGradInput', be, x.info, w.info, { ...attrs, inputShape: outShape }), be);
  return record(y, 'convTranspose3d', [x, w], [x, w], (dy, [xs, ws], needs) => [
    needs[0] ? wrap(runKernel('conv3d', be, dy.info, ws!.info, null, attrs), be) : null,
    // dW[ci, co, k] = Σ x[ci, p]·dy[co, p·s + k − pad]: conv3d's weight gradient with the roles of x and dy swapped.
    needs[1] ? wrap(runKernel('conv3dGradWeight', be, dy.info, xs!.info, { ...attrs, weightShape: ws!.shape }), be) : null,
  ]);
}
