import type { Conv3dAttrs } from './kernels.js';

/** Sizes a conv3d kernel needs, derived once from the input/weight shapes and attributes. */
export interface ConvGeometry {
  N: number;
  Cin: number;
  Cout: number;
  D: number;
  H: number;
  W: number;
  KD: number;
  KH: number;
  KW: number;
  OD: number;
  OH: number;
  OW: number;
  /** input channels per group (= weight dim 1) */
  cpg: number;
  /** output channels per group */
  opg: number;
  sd: number;
  sh: number;
  sw: number;
  pd: number;
  ph: number;
  pw: number;
}

/** PyTorch's output size: floor((n + 2p − k) / s) + 1. */
export function convOutSize(n: number, k: number, s: number, p: number): number {
  return Math.floor((n + 2 * p - k) / s) + 1;
}

/**
 * Validates a conv3d call at the kernel level and returns its geometry; every backend shares it so
 * they agree on sizes and on the messages for malformed calls. `where` prefixes errors (the backend).
 */
export function convGeometry(where: string, op: string, xShape: readonly number[], wShape: readonly number[], a: Conv3dAttrs): ConvGeometry {
  const check = (cond: boolean, msg: string) => {
    if (!cond) throw new Error(`${where}: ${op}: ${msg}`);
  };
  check(xShape.length === 5, `input must be [N, C, D, H, W], got [${xShape.join(', ')}]`);
  check(wShape.length === 5, `weight must be [Cout, Cin/groups, kd, kh, kw], got [${wShape.join(', ')}]`);
  const [N, Cin, D, H, W] = xShape as [number, number, number, number, number];
  const [Cout, cpg, KD, KH, KW] = wShape as [number, number, number, number, number];
  const G = a.groups;
  check(Number.isInteger(G) && G >= 1, `groups must be a positive integer, got ${G}`);
  check(Cin % G === 0 && Cout % G === 0, `channels ${Cin} -> ${Cout} are not divisible by groups ${G}`);
  check(cpg === Cin / G, `weight dim 1 is ${cpg}, expected Cin/groups = ${Cin / G}`);
  const [sd, sh, sw] = a.stride;
  const [pd, ph, pw] = a.padding;
  check(sd >= 1 && sh >= 1 && sw >= 1, 'stride must be >= 1');
  check(pd >= 0 && ph >= 0 && pw >= 0, 'padding must be >= 0');
  const OD = convOutSize(D, KD, sd, pd);
  const OH = convOutSize(H, KH, sh, ph);
  const OW = convOutSize(W, KW, sw, pw);
  check(OD >= 1 && OH >= 1 && OW >= 1, `kernel [${KD}, ${KH}, ${KW}] does not fit padded input [${D}, ${H}, ${W}]`);
  return { N, Cin, Cout, D, H, W, KD, KH, KW, OD, OH, OW, cpg, opg: Cout / G, sd, sh, sw, pd, ph, pw };
}
