// TEMPORARY: signatures of the transformer ops agreed in OPS_API.md, until branch i12ops lands them.
import type { Tensor } from '../engine/tensor.js';
const pending = (name: string): never => { throw new Error(`${name}: waiting for the i12ops engine ops`); };
export function linear(_x: Tensor, _w: Tensor, _b: Tensor | null): Tensor { return pending('linear'); }
export function matmul(_a: Tensor, _b: Tensor, _opts?: { transB?: boolean }): Tensor { return pending('matmul'); }
export function permute(_x: Tensor, _perm: readonly number[]): Tensor { return pending('permute'); }
export function mul(_a: Tensor, _b: Tensor): Tensor { return pending('mul'); }
export function addB(_a: Tensor, _b: Tensor): Tensor { return pending('add'); }
export function softmaxLast(_x: Tensor): Tensor { return pending('softmaxLast'); }
export function roll(_x: Tensor, _s: readonly number[], _d: readonly number[]): Tensor { return pending('roll'); }
export function pad(_x: Tensor, _p: readonly (readonly [number, number])[]): Tensor { return pending('pad'); }
export function slice(_x: Tensor, _s: readonly number[], _e: readonly number[], _st?: readonly number[]): Tensor { return pending('slice'); }
export function concat(_xs: readonly Tensor[], _dim: number): Tensor { return pending('concat'); }
export function gatherRows(_t: Tensor, _i: Int32Array, _o?: readonly number[]): Tensor { return pending('gatherRows'); }
export function layerNormLast(_x: Tensor, _w: Tensor | null, _b: Tensor | null, _eps: number): Tensor { return pending('layerNorm'); }
