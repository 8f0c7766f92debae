import type { Conv3dAttrs, ConvEpilogueArgs, Triple } from '../kernels.js';
import { assertShape, backendOf, runKernel, record, wrap } from '../op.js';
import { hasKernel } from '../registry.js';
import { isGradEnabled, tidy } from '../scope.js';
import { shapeString, type Tensor } from '../tensor.js';
import { convOutSize } from '../conv-geometry.js';
import { leakyRelu } from './activations.js';
import { batchNormEval, batchNormEvalScale } from './batch_norm.js';
import { add } from './elementwise.js';
import { concatChannels } from './shape.js';

export interface Conv3dOptions {
  stride?: number | Triple;
  padding?: number | Triple;
  groups?: number;
}

export function triple(v: number | Triple | undefined, dflt: number, what: string): Triple {
  const t: Triple = v === undefined ? [dflt, dflt, dflt] : typeof v === 'number' ? [v, v, v] : v;
  if (t.length !== 3 || !t.every((x) => Number.isInteger(x) && x >= 0)) throw new Error(`${what} must be a non-negative integer or three of them, got ${JSON.stringify(v)}`);
  return t;
}

/** Validates a conv3d call and returns its kernel attributes and output shape. */
export function conv3dGeometry(op: string, x: Pick<Tensor, 'shape'>, w: Tensor, opts: Conv3dOptions): { attrs: Conv3dAttrs; outShape: number[] } {
  if (x.shape.length !== 5) throw new Error(`${op}: input must have 5 dimensions, got shape ${shapeString(x.shape)}`);
  assertShape(op, 'weight', w, 5);
  const stride = triple(opts.stride, 1, `${op}: stride`);
  const padding = triple(opts.padding, 0, `${op}: padding`);
  const groups = opts.groups ?? 1;
  if (stride.some((s) => s === 0)) throw new Error(`${op}: stride must be positive`);
  const [n, cin, ...sp] = x.shape as number[];
  const [cout, cinG, ...k] = w.shape as number[];
  if (!Number.isInteger(groups) || groups < 1 || cin! % groups !== 0 || cout! % groups !== 0) {
    throw new Error(`${op}: groups=${groups} must divide input channels ${cin} and output channels ${cout}`);
  }
  if (cinG !== cin! / groups)
    throw new Error(`${op}: weight ${shapeString(w.shape)} expects ${cinG! * groups} input channels (groups=${groups}), input ${shapeString(x.shape)} has ${cin}`);
  const outSp = sp.map((d, i) => convOutSize(d, k[i]!, stride[i]!, padding[i]!));
  if (outSp.some((d) => d < 1)) throw new Error(`${op}: input ${shapeString(x.shape)} is smaller than the kernel ${shapeString(k)} with padding ${shapeString(padding)}`);
  return { attrs: { stride, padding, groups }, outShape: [n!, cout!, ...outSp] };
}

/** 3-D convolution, PyTorch `F.conv3d` semantics (weight [Cout, Cin/groups, kd, kh, kw]). */
export function conv3d(x: Tensor, w: Tensor, bias: Tensor | null = null, opts: Conv3dOptions = {}): Tensor {
  const { attrs } = conv3dGeometry('conv3d', x, w, opts);
  if (bias && (bias.rank !== 1 || bias.shape[0] !== w.shape[0])) throw new Error(`conv3d: bias ${shapeString(bias.shape)} must have shape [${w.shape[0]}]`);
  const be = backendOf('conv3d', x, w, bias);
  const y = wrap(runKernel('conv3d', be, x.info, w.info, bias ? bias.info : null, attrs), be);
  return record(y, 'conv3d', [x, w, bias], [x, w], (dy, [xs, ws], needs) => [
    needs[0] ? wrap(runKernel('conv3dGradInput', be, dy.info, ws!.info, { ...attrs, inputShape: xs!.shape }), be) : null,
    needs[1] ? wrap(runKernel('conv3dGradWeight', be, xs!.info, dy.info, { ...attrs, weightShape: ws!.shape }), be) : null,
    needs[2] ? wrap(runKernel('sumToChannels', be, dy.info), be) : null,
  ]);
}

/** What conv3dConcat applies to the conv's output: eval BatchNorm (running statistics), ReLU, a residual. */
export interface ConvEpilogueOptions {
  bnEval?: { runningMean: Float32Array; runningVar: Float32Array; eps: number; w: Tensor | null; b: Tensor | null };
  relu?: boolean;
  residual?: Tensor;
}

/**
 * conv3d(concatChannels(xs), w, bias), then BatchNorm(eval) (+ ReLU) (+ residual) when asked: on inference,
 * where the backend has the fused kernel, the convolution reads every input in place (the concatenation is
 * never written: a decoder's skip concatenation) and applies the rest as it stores its output (no passes of
 * their own); otherwise (and whenever a gradient is recorded) the composition, with the same values.
 */
export function conv3dConcat(xs: readonly Tensor[], w: Tensor, bias: Tensor | null = null, opts: Conv3dOptions & ConvEpilogueOptions = {}): Tensor {
  if (xs.length === 0) throw new Error('conv3dConcat: no inputs');
  const res = opts.residual ?? null;
  const bn = opts.bnEval ?? null;
  const relu = opts.relu ?? false;
  const be = backendOf('conv3dConcat', ...xs, w, bias, res, bn?.w, bn?.b);
  const grad = isGradEnabled() && [...xs, w, bias, res, bn?.w, bn?.b].some((t) => t?.requiresGrad);
  if (grad || !hasKernel('conv3dFused', be)) {
    const y = conv3d(xs.length === 1 ? xs[0]! : concatChannels(xs), w, bias, opts);
    if (bn) return tidy(() => batchNormEval(y, bn.runningMean, bn.runningVar, bn.w, bn.b, { eps: bn.eps, relu, residual: res ?? undefined }));
    if (!relu && !res) return y;
    return tidy(() => {
      const a = relu ? leakyRelu(y, 0) : y;
      return res ? add(a, res) : a;
    });
  }
  const ref = xs[0]!;
  for (const t of xs)
    if (t.rank !== 5 || t.shape.some((d, i) => i !== 1 && d !== ref.shape[i]))
      throw new Error(`conv3dConcat: shapes ${xs.map((x) => shapeString(x.shape)).join(', ')} differ outside the channel axis`);
  const cin = xs.reduce((s, t) => s + t.shape[1]!, 0);
  // Validate against the concatenation's shape (geometry only; nothing is allocated).
  const { attrs, outShape } = conv3dGeometry('conv3dConcat', { shape: [ref.shape[0]!, cin, ...ref.shape.slice(2)] }, w, opts);
  if (bias && (bias.rank !== 1 || bias.shape[0] !== w.shape[0])) throw new Error(`conv3dConcat: bias ${shapeString(bias.shape)} must have shape [${w.shape[0]}]`);
  if (res && (res.rank !== 5 || res.shape.some((d, i) => d !== outShape[i])))
    throw new Error(`conv3dConcat: residual ${shapeString(res.shape)} must have the output's shape ${shapeString(outShape)}`);
  const cout = outShape[1]!;
  let bnArgs: ConvEpilogueArgs['bn'] = null;
  if (bn) {
    if (bn.runningMean.length !== cout || bn.runningVar.length !== cout) throw new Error(`conv3dConcat: batch norm statistics must have ${cout} channels`);
    for (const t of [bn.w, bn.b]) if (t && (t.rank !== 1 || t.size !== cout)) throw new Error(`conv3dConcat: batch norm affine ${shapeString(t.shape)} must have shape [${cout}]`);
    bnArgs = { ...batchNormEvalScale(bn.runningMean, bn.runningVar, bn.eps), w: bn.w?.info ?? null, b: bn.b?.info ?? null };
  }
  const ep = bn || relu || res ? { bn: bnArgs, relu, res: res ? res.info : null } : null;
  return wrap(
    runKernel(
      'conv3dFused',
      be,
      xs.map((t) => t.info),
      w.info,
      bias ? bias.info : null,
      ep,
      attrs,
    ),
    be,
  );
}
