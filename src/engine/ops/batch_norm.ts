import { tensor } from '../creation.js';
import { backendOf } from '../op.js';
import { noGrad, tidy } from '../scope.js';
import { shapeString, type Tensor } from '../tensor.js';
import { add, mul, mulChannel, scale, sub } from './elementwise.js';
import { channelView, needsGrad } from './group_norm.js';
import { leakyRelu } from './activations.js';
import { runKernel, wrap } from '../op.js';
import { hasKernel } from '../registry.js';
import { instanceNorm } from './instance_norm.js';
import { permute } from './layout.js';
import { meanDim } from './reduce.js';
import { reshape } from './shape.js';

function checkInput(op: string, x: Tensor, c: number | null): void {
  if (x.rank < 3) throw new Error(`${op}: input must be [N, C, ...spatial], got ${shapeString(x.shape)}`);
  if (c !== null && x.shape[1] !== c) throw new Error(`${op}: input ${shapeString(x.shape)} has ${x.shape[1]} channels, the statistics ${c}`);
}

/** [N, C, ...] → [C, N·positions] (channel-major), so that per-channel batch statistics are a row reduction. */
function channelRows(x: Tensor): Tensor {
  const perm = [1, 0, ...x.shape.slice(2).map((_, i) => i + 2)];
  return reshape(permute(x, perm), [x.shape[1]!, -1]);
}

/**
 * `nn.BatchNorm3d` in training mode: every channel normalised with the statistics of the whole batch
 * (over N and all positions, biased variance, eps inside the root), then γ_c·x̂ + β_c. Returns the output
 * and, outside autograd, the batch mean and the **unbiased** variance (what PyTorch folds into the running
 * statistics). The normalisation is instance normalisation of the [1, C, N·positions] view, so it runs
 * with its gradient on every backend.
 */
export function batchNormTrain(x: Tensor, w: Tensor | null, b: Tensor | null, opts: { eps?: number } = {}): { y: Tensor; mean: Tensor; varUnbiased: Tensor } {
  checkInput('batchNormTrain', x, w ? w.size : null);
  const c = x.shape[1]!;
  const m = x.size / c;
  if (m <= 1) throw new Error(`batchNormTrain: expected more than 1 value per channel when training, got input ${shapeString(x.shape)}`);
  const stats = noGrad(() =>
    tidy(() => {
      const rows = channelRows(x);
      const mu = meanDim(rows, 1, true);
      const d = sub(rows, mu);
      return { mean: reshape(mu, [c]), varUnbiased: reshape(scale(meanDim(mul(d, d), 1), m / (m - 1)), [c]) };
    }),
  );
  const y = tidy(() => {
    const perm = [1, 0, ...x.shape.slice(2).map((_, i) => i + 2)];
    const normed = reshape(
      instanceNorm(reshape(permute(x, perm), [1, c, m]), { eps: opts.eps ?? 1e-5 }),
      perm.map((p) => x.shape[p]!),
    );
    let out = permute(normed, perm);
    if (w) out = mulChannel(out, w);
    if (b) out = add(out, channelView(b, x.rank));
    return out;
  });
  return { y, ...stats };
}

/** Eval-mode BatchNorm as x·invStd + shift per channel (float32, what batchNormEval and fused kernels use). */
export function batchNormEvalScale(runningMean: Float32Array, runningVar: Float32Array, eps: number): { invStd: Float32Array; shift: Float32Array } {
  const c = runningMean.length;
  const invStd = new Float32Array(c);
  const shift = new Float32Array(c);
  for (let i = 0; i < c; i++) {
    // PyTorch's CPU kernel computes invstd = 1/sqrt(var + eps) and then (x − mean)·invstd.
    invStd[i] = 1 / Math.sqrt(runningVar[i]! + eps);
    shift[i] = -runningMean[i]! * invStd[i]!;
  }
  return { invStd, shift };
}

/**
 * `nn.BatchNorm3d` in eval mode: y = (x − running_mean_c)/√(running_var_c + eps)·γ_c + β_c. The running
 * statistics are host values (constants here); γ and β get gradients. `relu` applies ReLU to y and
 * `residual` is then added (post-activation residual blocks), fused into one pass on inference.
 */
export function batchNormEval(
  x: Tensor,
  runningMean: Float32Array,
  runningVar: Float32Array,
  w: Tensor | null,
  b: Tensor | null,
  opts: { eps?: number; relu?: boolean; residual?: Tensor } = {},
): Tensor {
  const c = runningMean.length;
  checkInput('batchNormEval', x, c);
  if (runningVar.length !== c) throw new Error(`batchNormEval: running_var has ${runningVar.length} values for ${c} channels`);
  const { invStd: inv, shift } = batchNormEvalScale(runningMean, runningVar, opts.eps ?? 1e-5);
  const res = opts.residual ?? null;
  if (res && (res.rank !== x.rank || res.shape.some((d, i) => d !== x.shape[i])))
    throw new Error(`batchNormEval: residual ${shapeString(res.shape)} must have the input's shape ${shapeString(x.shape)}`);
  const be = backendOf('batchNormEval', x, w, b, res);
  const relu = opts.relu ?? false;
  if (!needsGrad(x, w, b, res) && hasKernel('batchNormEvalAct', be))
    return wrap(runKernel('batchNormEvalAct', be, x.info, w?.info ?? null, b?.info ?? null, res?.info ?? null, { invStd: inv, shift, relu }), be);
  return tidy(() => {
    let out = add(mulChannel(x, tensor(inv, [c], { backend: be })), tensor(shift, [1, c, ...x.shape.slice(2).map(() => 1)], { backend: be }));
    if (w) out = mulChannel(out, w);
    if (b) out = add(out, channelView(b, x.rank));
    if (relu) out = leakyRelu(out, 0);
    return res ? add(out, res) : out;
  });
}
