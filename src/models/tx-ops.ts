// The transformer ops agreed in OPS_API.md, now landed in the engine (branch i12ops); kept as a shim so the
// models' imports stay unchanged.
import type { Tensor } from '../engine/tensor.js';
import { add, layerNorm } from '../engine/ops/index.js';
export { linear, matmul, permute, mul, softmaxLast, roll, pad, slice, concat, gatherRows } from '../engine/ops/index.js';
export function addB(a: Tensor, b: Tensor): Tensor { return add(a, b); }
export function layerNormLast(x: Tensor, w: Tensor | null, b: Tensor | null, eps: number): Tensor { return layerNorm(x, w, b, { eps, channelsLast: true }); }
