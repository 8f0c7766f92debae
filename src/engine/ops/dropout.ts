import { tensor } from '../creation.js';
import { backendOf } from '../op.js';
import { tidy } from '../scope.js';
import { shapeString, type Tensor } from '../tensor.js';
import { mul, scale } from './elementwise.js';

/**
 * `F.dropout3d` with a given keep-mask: mask [N, C] of 0/1, y[n, c] = x[n, c]·mask[n, c]/(1 − p) (whole
 * channels dropped). The gradient flows through the same mask. In float32 1/(1 − 0.2) is exactly 1.25.
 */
export function dropoutChannels(x: Tensor, mask: Float32Array, p: number): Tensor {
  if (x.rank < 3) throw new Error(`dropoutChannels: input must be [N, C, ...spatial], got ${shapeString(x.shape)}`);
  const [n, c] = x.shape as [number, number];
  if (mask.length !== n * c) throw new Error(`dropoutChannels: a mask of ${mask.length} values for input ${shapeString(x.shape)} (needs N·C = ${n * c})`);
  return maskedScale(x, mask, [n, c, ...x.shape.slice(2).map(() => 1)], p);
}

/**
 * timm's `DropPath` (stochastic depth) with a given keep-mask: one flag per sample, y[b] = x[b]·mask[b]/(1 − p).
 */
export function dropPath(x: Tensor, mask: Float32Array, p: number): Tensor {
  const b = x.shape[0]!;
  if (mask.length !== b) throw new Error(`dropPath: a mask of ${mask.length} values for a batch of ${b}`);
  return maskedScale(x, mask, [b, ...x.shape.slice(1).map(() => 1)], p);
}

/** `nn.Dropout` with a given elementwise keep-mask (x.size values of 0/1): y = x·mask/(1 − p). */
export function dropout(x: Tensor, mask: Float32Array, p: number): Tensor {
  if (mask.length !== x.size) throw new Error(`dropout: a mask of ${mask.length} values for input ${shapeString(x.shape)}`);
  return maskedScale(x, mask, [...x.shape], p);
}

function maskedScale(x: Tensor, mask: Float32Array, shape: number[], p: number): Tensor {
  if (!(p >= 0 && p < 1)) throw new Error(`dropout probability must be in [0, 1), got ${p}`);
  for (const v of mask) if (v !== 0 && v !== 1) throw new Error(`dropout masks hold 0 or 1, got ${v}`);
  const be = backendOf('dropout', x);
  // The scale is a float32 constant like PyTorch's (1/(1 − p) rounded once), applied after the mask.
  const k = Math.fround(1 / (1 - p));
  return tidy(() => scale(mul(x, tensor(mask, shape, { backend: be })), k));
}

/** A keep-mask of `n` Bernoulli(1 − p) flags drawn from `uniform` (a seeded U[0, 1) source). */
export function bernoulliKeepMask(n: number, p: number, uniform: () => number): Float32Array {
  const m = new Float32Array(n);
  for (let i = 0; i < n; i++) m[i] = uniform() >= p ? 1 : 0;
  return m;
}
