import { backendOf, runKernel, wrap } from '../op.js';
import { hasKernel } from '../registry.js';
import { isGradEnabled } from '../scope.js';
import { shapeString, type Tensor } from '../tensor.js';
import { leakyRelu } from './activations.js';
import { add, mulChannel } from './elementwise.js';
import { instanceNorm } from './instance_norm.js';
import { reshape } from './shape.js';

/**
 * `nn.GroupNorm(groups, C)` on [N, C, ...]: channels split into `groups` contiguous groups, each (n, group)
 * normalised over its channels and all positions (biased variance, eps inside the root), then the
 * per-channel affine γ_c·x̂ + β_c. Same in training and eval. A group is one instance-norm "channel" of
 * the view [N, groups, C/groups·positions], so it runs (with its gradient) on every backend's
 * instance-norm kernels.
 */
export function groupNorm(x: Tensor, groups: number, w: Tensor | null, b: Tensor | null, opts: { eps?: number; relu?: boolean } = {}): Tensor {
  if (x.rank < 3) throw new Error(`groupNorm: input must be [N, C, ...spatial], got ${shapeString(x.shape)}`);
  const c = x.shape[1]!;
  if (!Number.isInteger(groups) || groups < 1 || c % groups !== 0) throw new Error(`groupNorm: ${c} channels cannot be split into ${groups} groups`);
  if (w && (w.rank !== 1 || w.size !== c)) throw new Error(`groupNorm: weight ${shapeString(w.shape)} must have shape [${c}]`);
  if (b && (b.rank !== 1 || b.size !== c)) throw new Error(`groupNorm: bias ${shapeString(b.shape)} must have shape [${c}]`);
  const eps = opts.eps ?? 1e-5;
  const relu = opts.relu ?? false;
  const rest = x.size / (x.shape[0]! * groups);
  if (rest <= 1) throw new Error(`groupNorm: needs more than one value per group, got input ${shapeString(x.shape)} with ${groups} groups`);
  const be = backendOf('groupNorm', x, w, b);
  // Inference (nothing to differentiate): one fused pass where the backend has it; same values.
  if (!needsGrad(x, w, b) && hasKernel('groupNormAct', be)) return wrap(runKernel('groupNormAct', be, x.info, w?.info ?? null, b?.info ?? null, { groups, eps, relu }), be);
  let y = reshape(instanceNorm(reshape(x, [x.shape[0]!, groups, rest]), { eps }), x.shape);
  if (w) y = mulChannel(y, w);
  if (b) y = add(y, channelView(b, x.rank));
  return relu ? leakyRelu(y, 0) : y;
}

/** Whether an op on these inputs records a gradient (the fused inference kernels have none). */
export function needsGrad(...ts: (Tensor | null)[]): boolean {
  return isGradEnabled() && ts.some((t) => t?.requiresGrad);
}

/** A per-channel vector [C] viewed as [1, C, 1, ...] to broadcast over an [N, C, ...] tensor. */
export function channelView(v: Tensor, rank: number): Tensor {
  return reshape(v, [1, v.size, ...new Array<number>(rank - 2).fill(1)]);
}
