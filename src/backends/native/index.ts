/**
 * The native CPU backend: C++ kernels (native/) with runtime AVX-512 / AVX2+FMA / portable dispatch,
 * a thread pool (UXNET_THREADS, default: all cores) and an in-order execution queue off the JS main
 * thread. Kernels enqueue work and return handles at once; `read()` resolves when the values are ready,
 * `readSync()` blocks. Registers itself with priority 10 (the default backend) only when the addon loads;
 * otherwise it prints one warning and the reference backend stays the default.
 */
import { sizeOf as numel } from '../../engine/tensor.js';
import type { Backend } from '../../engine/backend.js';
import type { AdamWAttrs, AttentionAttrs, Conv3dAttrs, Kernels, KTensor } from '../../engine/kernels.js';
import { registerBackend, registerKernels } from '../../engine/registry.js';
import { loadAddon, OP, type NativeAddon, type NativeHandle } from './addon.js';

export const NATIVE_PRIORITY = 10;

function tail(shape: readonly number[], from: number): number {
  let n = 1;
  for (let i = from; i < shape.length; i++) n *= shape[i]!;
  return n;
}

function check(cond: boolean, msg: string): asserts cond {
  if (!cond) throw new Error(`native backend: ${msg}`);
}

function sameShape(op: string, a: KTensor, b: KTensor): void {
  check(a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]), `${op}: shapes [${a.shape.join(', ')}] and [${b.shape.join(', ')}] differ`);
}

function h(t: KTensor): NativeHandle {
  const d = t.data;
  check(typeof d === 'object' && d !== null && !(d instanceof Float32Array), 'tensor data is not a native storage handle (tensor from another backend?)');
  return d as NativeHandle;
}

function out(shape: readonly number[], data: NativeHandle): KTensor {
  return { shape: [...shape], data };
}

function nc(op: string, x: KTensor): [number, number, number] {
  check(x.shape.length >= 2, `${op}: input must be [N, C, ...], got [${x.shape.join(', ')}]`);
  return [x.shape[0]!, x.shape[1]!, tail(x.shape, 2)];
}

/** [N, Cin, Cout, G, in×3, out×3, k×3, s×3, p×3] for the native conv drivers. */
function convParams(N: number, Cin: number, Cout: number, a: Conv3dAttrs, inSp: readonly number[], outSp: readonly number[], k: readonly number[]): number[] {
  return [N, Cin, Cout, a.groups, ...inSp, ...outSp, ...k, ...a.stride, ...a.padding];
}

function outSize(n: number, k: number, s: number, p: number): number {
  return Math.floor((n + 2 * p - k) / s) + 1;
}

/** [B, N, M, Cq, Ck, Cv, H, D, qCol, kCol, vCol, nW, qScale, sScale, hasBias, hasMask] (native/addon.cc attnFrom). */
function attnParams(q: KTensor, k: KTensor, v: KTensor, bias: KTensor | null, mask: KTensor | null, a: AttentionAttrs): number[] {
  check(q.shape.length === 3 && k.shape.length === 3 && v.shape.length === 3, 'attention: q, k and v must be 3-D');
  const [B, N, Cq] = q.shape as [number, number, number];
  const [, M, Ck] = k.shape as [number, number, number];
  const Cv = v.shape[2]!;
  const width = a.heads * a.headDim;
  check(a.qCol + width <= Cq && a.kCol + width <= Ck && a.vCol + width <= Cv, 'attention: head columns outside q, k or v');
  if (bias) check(numel(bias.shape) === a.heads * N * M, 'attention: bias size');
  const nW = mask ? mask.shape[0]! : 1;
  if (mask) check(numel(mask.shape) === nW * N * M && B % nW === 0, 'attention: mask size');
  return [B, N, M, Cq, Ck, Cv, a.heads, a.headDim, a.qCol, a.kCol, a.vCol, nW, a.qScale, a.sScale, bias ? 1 : 0, mask ? 1 : 0];
}

export function makeNativeKernels(addon: NativeAddon): Kernels {
  const op = (code: number, ins: NativeHandle[], sizes: number[], params: number[]): NativeHandle[] => addon.op(code, ins, sizes, params);
  // Row indices travel as a float32 buffer (exact below 2^24): one memcpy instead of a JS array of numbers.
  const withIndex = <T>(index: Int32Array, fn: (ix: NativeHandle) => T): T => {
    const ix = addon.upload(Float32Array.from(index));
    try {
      return fn(ix);
    } finally {
      addon.free(ix); // queued work keeps its own reference
    }
  };
  // conv3dGradInput, with the transposed conv's bias added in the same pass when given.
  const gradInput = (dy: KTensor, w: KTensor, bias: KTensor | null, a: Conv3dAttrs & { inputShape: readonly number[] }): KTensor => {
    const inShape = a.inputShape;
    check(dy.shape.length === 5 && w.shape.length === 5 && inShape.length === 5, 'conv3dGradInput: 5-D tensors expected');
    const [N, Cout, ...osp] = dy.shape as number[];
    const [wCout, CinG, ...k] = w.shape as number[];
    const Cin = inShape[1]!;
    const isp = inShape.slice(2);
    check(wCout === Cout && CinG! * a.groups === Cin && inShape[0] === N, 'conv3dGradInput: channel mismatch');
    check(
      isp.every((d, i) => outSize(d, k[i]!, a.stride[i]!, a.padding[i]!) === osp[i]),
      'conv3dGradInput: dy spatial size does not match inputShape',
    );
    const ins = bias ? [h(dy), h(w), h(bias)] : [h(dy), h(w)];
    const [dx] = op(bias ? OP.conv3dGradInputBias : OP.conv3dGradInput, ins, [numel(inShape)], convParams(N!, Cin, Cout!, a, isp, osp, k));
    return out(inShape, dx!);
  };
  return {
    matmul(a, b, bias, at) {
      check(a.shape.length === 3 && b.shape.length === 3, 'matmul: a and b must be 3-D');
      const [B, a1, a2] = a.shape as [number, number, number];
      const [Bb, b1, b2] = b.shape as [number, number, number];
      const M = at.transA ? a2 : a1;
      const K = at.transA ? a1 : a2;
      const N = at.transB ? b1 : b2;
      check((at.transB ? b2 : b1) === K, `matmul: inner dimensions differ (${K} and ${at.transB ? b2 : b1})`);
      check(Bb === B || Bb === 1, `matmul: batch sizes ${B} and ${Bb} differ`);
      if (bias) check(numel(bias.shape) === N, `matmul: bias must have ${N} values`);
      const ins = [h(a), h(b)];
      if (bias) ins.push(h(bias));
      const [y] = op(OP.matmul, ins, [B * M * N], [B, M, N, K, at.transA ? 1 : 0, at.transB ? 1 : 0, Bb === 1 && B > 1 ? 1 : 0, bias ? 1 : 0]);
      return out([B, M, N], y!);
    },
    // The GEMM with its GELU epilogue (native/gemm.cc): each output block gets GELU while still in cache.
    linearGelu(x, w, bias, a) {
      check(x.shape.length === 2 && w.shape.length === 2, 'linearGelu: x and w must be 2-D');
      const [M, K] = x.shape as [number, number];
      const [N, Kw] = w.shape as [number, number];
      check(Kw === K, `linearGelu: inner dimensions differ (${K} and ${Kw})`);
      if (bias) check(numel(bias.shape) === N, `linearGelu: bias must have ${N} values`);
      const ins = [h(x), h(w)];
      if (bias) ins.push(h(bias));
      const sizes = a.keepPre ? [M * N, M * N] : [M * N];
      const [y, pre] = op(OP.matmul, ins, sizes, [1, M, N, K, 0, 1, 0, bias ? 1 : 0, 1, a.keepPre ? 1 : 0]);
      return [out([M, N], y!), pre ? out([M, N], pre) : null];
    },
    stridedCopy(x, a) {
      checkStrided('stridedCopy', a.shape, a.offset, a.strides, numel(x.shape));
      return out(a.shape, op(OP.stridedCopy, [h(x)], [numel(a.shape)], [a.shape.length, ...a.shape, ...a.strides, a.offset])[0]!);
    },
    stridedScatter(x, a) {
      const size = numel(a.shape);
      checkStrided('stridedScatter', x.shape, a.offset, a.strides, size);
      return out(a.shape, op(OP.stridedScatter, [h(x)], [size], [x.shape.length, ...x.shape, ...a.strides, a.offset, size])[0]!);
    },
    roll(x, a) {
      check(a.shifts.length === a.dims.length, 'roll: shifts and dims differ in length');
      const shift = x.shape.map(() => 0);
      a.dims.forEach((d, k) => {
        check(Number.isInteger(d) && d >= 0 && d < x.shape.length, `roll: dim ${d} is not a dimension of [${x.shape.join(', ')}]`);
        const n = x.shape[d]!;
        shift[d] = ((a.shifts[k]! % n) + n) % n;
      });
      return out(x.shape, op(OP.roll, [h(x)], [numel(x.shape)], [x.shape.length, ...x.shape, ...shift])[0]!);
    },
    broadcastBinary(a, b, at) {
      const shape = broadcastShape('broadcastBinary', a.shape, b.shape);
      const code = at.op === 'add' ? 0 : at.op === 'sub' ? 1 : 2;
      return out(
        shape,
        op(OP.broadcastBinary, [h(a), h(b)], [numel(shape)], [code, shape.length, ...shape, ...broadcastStrides(shape, a.shape), ...broadcastStrides(shape, b.shape)])[0]!,
      );
    },
    sumToShape(x, a) {
      const full = broadcastShape('sumToShape', x.shape, a.shape);
      check(full.length === x.shape.length && full.every((d, i) => d === x.shape[i]), `sumToShape: [${a.shape.join(', ')}] does not broadcast to [${x.shape.join(', ')}]`);
      const size = numel(a.shape);
      return out(a.shape, op(OP.sumToShape, [h(x)], [size], [x.shape.length, ...x.shape, ...broadcastStrides(x.shape, a.shape), size])[0]!);
    },
    gatherRows(table, a) {
      check(table.shape.length === 2, `gatherRows: table must be [R, C], got [${table.shape.join(', ')}]`);
      const [R, C] = table.shape as [number, number];
      checkIndex(a.index, R, 'gatherRows');
      const n = a.index.length;
      return out(
        [n, C],
        withIndex(a.index, (ix) => op(OP.gatherRows, [h(table), ix], [n * C], [n, C])[0]!),
      );
    },
    scatterAddRows(dy, a) {
      const n = a.index.length;
      check(dy.shape.length === 2 && dy.shape[0] === n, `scatterAddRows: dy must be [${n}, C], got [${dy.shape.join(', ')}]`);
      const C = dy.shape[1]!;
      checkIndex(a.index, a.rows, 'scatterAddRows');
      return out(
        [a.rows, C],
        withIndex(a.index, (ix) => op(OP.scatterAddRows, [h(dy), ix], [a.rows * C], [n, C, a.rows])[0]!),
      );
    },
    attention(q, k, v, bias, mask, a) {
      const p = attnParams(q, k, v, bias, mask, a);
      const [B, N] = q.shape as [number, number];
      const ins = [h(q), h(k), h(v)];
      if (bias) ins.push(h(bias));
      if (mask) ins.push(h(mask));
      const [y, l] = op(OP.attention, ins, [B * N * a.heads * a.headDim, B * a.heads * N], p);
      return [out([B, N, a.heads * a.headDim], y!), out([B, a.heads, N], l!)];
    },
    attentionGrad(dout, q, k, v, bias, mask, o, lse, a) {
      const p = attnParams(q, k, v, bias, mask, a);
      const ins = [h(dout), h(q), h(k), h(v), h(o), h(lse)];
      if (bias) ins.push(h(bias));
      if (mask) ins.push(h(mask));
      const N = q.shape[1]!;
      const M = k.shape[1]!;
      const sizes = [numel(q.shape)];
      if (a.share[1] === 1) sizes.push(numel(k.shape));
      if (a.share[2] === 2) sizes.push(numel(v.shape));
      if (a.needBias) sizes.push(a.heads * N * M);
      const g = op(OP.attentionGrad, ins, sizes, [...p, a.share[1], a.share[2], a.needBias ? 1 : 0]);
      let i = 0;
      const dq = out(q.shape, g[i++]!);
      const dk = a.share[1] === 1 ? out(k.shape, g[i++]!) : null;
      const dv = a.share[2] === 2 ? out(v.shape, g[i++]!) : null;
      const db = a.needBias ? out([a.heads, N, M], g[i]!) : null;
      return [dq, dk, dv, db];
    },
    conv3dFused(xs, w, bias, ep, a) {
      const res = ep?.res ?? null;
      const bn = ep?.bn ?? null;
      const [x0] = xs;
      check(x0 !== undefined && w.shape.length === 5 && xs.every((x) => x.shape.length === 5), 'conv3dFused: inputs and weight must be 5-D');
      const [N, , ...sp] = x0.shape as number[];
      check(
        xs.every((x) => x.shape[0] === N && x.shape.slice(2).every((d, i) => d === sp[i])),
        'conv3dFused: inputs differ outside the channel axis',
      );
      const cs = xs.map((x) => x.shape[1]!);
      const Cin = cs.reduce((s, c) => s + c, 0);
      const [Cout, CinG, ...k] = w.shape as number[];
      check(Cin % a.groups === 0 && Cout! % a.groups === 0 && CinG === Cin / a.groups, 'conv3dFused: channel/groups mismatch');
      const o = sp.map((d, i) => outSize(d, k[i]!, a.stride[i]!, a.padding[i]!));
      check(
        o.every((d) => d >= 1),
        'conv3dFused: empty output',
      );
      if (bias) check(numel(bias.shape) === Cout, 'conv3dFused: bias size');
      const shape = [N!, Cout!, ...o];
      if (res) check(res.shape.length === 5 && res.shape.every((d, i) => d === shape[i]), 'conv3dFused: residual shape');
      const ins = [...xs.map(h), h(w)];
      if (bias) ins.push(h(bias));
      if (res) ins.push(h(res));
      if (bn) {
        check(bn.invStd.length === Cout && bn.shift.length === Cout, 'conv3dFused: batch norm statistics size');
        for (const t of [bn.w, bn.b]) if (t) check(numel(t.shape) === Cout, 'conv3dFused: batch norm affine size');
        for (const t of [bn.w, bn.b]) if (t) ins.push(h(t));
      }
      const flags = [res ? 1 : 0, bn ? 1 : 0, ep?.relu ? 1 : 0, bn?.w ? 1 : 0, bn?.b ? 1 : 0];
      const stats = bn ? [...bn.invStd, ...bn.shift] : [];
      const [y] = op(OP.conv3dFused, ins, [numel(shape)], [...convParams(N!, Cin, Cout!, a, sp, o, k), bias ? 1 : 0, xs.length, ...cs, ...flags, ...stats]);
      return out(shape, y!);
    },
    groupNormAct(x, w, b, a) {
      const [N, C, S] = nc('groupNormAct', x);
      check(Number.isInteger(a.groups) && a.groups >= 1 && C % a.groups === 0, `groupNormAct: ${C} channels cannot be split into ${a.groups} groups`);
      if (w) check(numel(w.shape) === C, 'groupNormAct: weight size');
      if (b) check(numel(b.shape) === C, 'groupNormAct: bias size');
      const ins = [h(x)];
      if (w) ins.push(h(w));
      if (b) ins.push(h(b));
      const [y] = op(OP.groupNormAct, ins, [N * C * S], [N, C, S, a.groups, a.eps, w ? 1 : 0, b ? 1 : 0, a.relu ? 1 : 0]);
      return out(x.shape, y!);
    },
    batchNormEvalAct(x, w, b, res, a) {
      const [N, C, S] = nc('batchNormEvalAct', x);
      check(a.invStd.length === C && a.shift.length === C, 'batchNormEvalAct: statistics size');
      if (w) check(numel(w.shape) === C, 'batchNormEvalAct: weight size');
      if (b) check(numel(b.shape) === C, 'batchNormEvalAct: bias size');
      if (res) sameShape('batchNormEvalAct', x, res);
      const ins = [h(x)];
      for (const t of [w, b, res]) if (t) ins.push(h(t));
      const params = [N, C, S, w ? 1 : 0, b ? 1 : 0, res ? 1 : 0, a.relu ? 1 : 0, ...a.invStd, ...a.shift];
      const [y] = op(OP.batchNormEvalAct, ins, [N * C * S], params);
      return out(x.shape, y!);
    },
    conv3d(x, w, bias, a) {
      check(x.shape.length === 5 && w.shape.length === 5, 'conv3d: input and weight must be 5-D');
      const [N, Cin, ...sp] = x.shape as number[];
      const [Cout, CinG, ...k] = w.shape as number[];
      check(Cin! % a.groups === 0 && Cout! % a.groups === 0 && CinG === Cin! / a.groups, 'conv3d: channel/groups mismatch');
      const o = sp.map((d, i) => outSize(d, k[i]!, a.stride[i]!, a.padding[i]!));
      check(
        o.every((d) => d >= 1),
        'conv3d: empty output',
      );
      if (bias) check(numel(bias.shape) === Cout, 'conv3d: bias size');
      const shape = [N!, Cout!, ...o];
      const ins = [h(x), h(w)];
      if (bias) ins.push(h(bias));
      const [y] = op(OP.conv3d, ins, [numel(shape)], [...convParams(N!, Cin!, Cout!, a, sp, o, k), bias ? 1 : 0]);
      return out(shape, y!);
    },
    conv3dGradInputBias(dy, w, bias, a) {
      check(numel(bias.shape) === a.inputShape[1], 'conv3dGradInputBias: bias size');
      return gradInput(dy, w, bias, a);
    },
    conv3dGradInput(dy, w, a) {
      return gradInput(dy, w, null, a);
    },
    conv3dGradWeight(x, dy, a) {
      const ws = a.weightShape;
      check(x.shape.length === 5 && dy.shape.length === 5 && ws.length === 5, 'conv3dGradWeight: 5-D tensors expected');
      const [N, Cin, ...isp] = x.shape as number[];
      const [N2, Cout, ...osp] = dy.shape as number[];
      const k = ws.slice(2);
      check(N === N2 && ws[0] === Cout && ws[1]! * a.groups === Cin, 'conv3dGradWeight: channel mismatch');
      check(
        isp.every((d, i) => outSize(d, k[i]!, a.stride[i]!, a.padding[i]!) === osp[i]),
        'conv3dGradWeight: dy spatial size does not match',
      );
      const [dw] = op(OP.conv3dGradWeight, [h(x), h(dy)], [numel(ws)], convParams(N!, Cin!, Cout!, a, isp, osp, k));
      return out(ws, dw!);
    },
    sumToChannels(x) {
      const [N, C, S] = nc('sumToChannels', x);
      return out([C], op(OP.sumToChannels, [h(x)], [C], [N, C, S])[0]!);
    },
    instanceNorm(x, a) {
      check(x.shape.length >= 3, 'instanceNorm: input must be [N, C, ...spatial]');
      const [N, C, S] = nc('instanceNorm', x);
      const [y, r] = op(OP.instanceNorm, [h(x)], [N * C * S, N * C], [N * C, S, a.eps]);
      return [out(x.shape, y!), out([N, C], r!)];
    },
    instanceNormGrad(dy, y, rstd) {
      sameShape('instanceNormGrad', dy, y);
      const [N, C, S] = nc('instanceNormGrad', dy);
      check(numel(rstd.shape) === N * C, 'instanceNormGrad: rstd size');
      return out(dy.shape, op(OP.instanceNormGrad, [h(dy), h(y), h(rstd)], [N * C * S], [N * C, S])[0]!);
    },
    layerNorm(x, w, b, a) {
      const { outer, C, S, statShape } = lnLayout(x.shape, a.channelsLast);
      check(numel(w.shape) === C && numel(b.shape) === C, `layerNorm: weight and bias must be [${C}]`);
      const cnt = numel(statShape);
      const [y, m, r] = op(OP.layerNorm, [h(x), h(w), h(b)], [numel(x.shape), cnt, cnt], [outer, C, S, a.channelsLast ? 1 : 0, a.eps]);
      return [out(x.shape, y!), out(statShape, m!), out(statShape, r!)];
    },
    layerNormGrad(dy, x, w, mean, rstd, a) {
      sameShape('layerNormGrad', dy, x);
      const { outer, C, S, statShape } = lnLayout(x.shape, a.channelsLast);
      const cnt = numel(statShape);
      check(numel(w.shape) === C && numel(mean.shape) === cnt && numel(rstd.shape) === cnt, 'layerNormGrad: parameter sizes');
      const [dx, dw, db] = op(OP.layerNormGrad, [h(dy), h(x), h(w), h(mean), h(rstd)], [numel(x.shape), C, C], [outer, C, S, a.channelsLast ? 1 : 0]);
      return [out(x.shape, dx!), out([C], dw!), out([C], db!)];
    },
    gelu(x) {
      const n = numel(x.shape);
      return out(x.shape, op(OP.gelu, [h(x)], [n], [n])[0]!);
    },
    geluGrad(dy, x) {
      sameShape('geluGrad', dy, x);
      const n = numel(x.shape);
      return out(x.shape, op(OP.geluGrad, [h(dy), h(x)], [n], [n])[0]!);
    },
    leakyRelu(x, a) {
      const n = numel(x.shape);
      return out(x.shape, op(OP.leakyRelu, [h(x)], [n], [n, a.slope])[0]!);
    },
    leakyReluGrad(dy, x, a) {
      sameShape('leakyReluGrad', dy, x);
      const n = numel(x.shape);
      return out(x.shape, op(OP.leakyReluGrad, [h(dy), h(x)], [n], [n, a.slope])[0]!);
    },
    add(a, b) {
      sameShape('add', a, b);
      const n = numel(a.shape);
      return out(a.shape, op(OP.add, [h(a), h(b)], [n], [n])[0]!);
    },
    scale(x, a) {
      const n = numel(x.shape);
      return out(x.shape, op(OP.scale, [h(x)], [n], [n, a.factor])[0]!);
    },
    mulChannel(x, s) {
      const [N, C, S] = nc('mulChannel', x);
      check(numel(s.shape) === C, `mulChannel: scale must be [${C}]`);
      return out(x.shape, op(OP.mulChannel, [h(x), h(s)], [N * C * S], [N, C, S])[0]!);
    },
    mulChannelGradScale(dy, x) {
      sameShape('mulChannelGradScale', dy, x);
      const [N, C, S] = nc('mulChannelGradScale', x);
      return out([C], op(OP.mulChannelGradScale, [h(dy), h(x)], [C], [N, C, S])[0]!);
    },
    concatChannels(xs) {
      check(xs.length > 0, 'concatChannels: no inputs');
      const first = xs[0]!;
      const [N, , S] = nc('concatChannels', first);
      let Ct = 0;
      for (const t of xs) {
        check(t.shape.length === first.shape.length && t.shape.every((d, i) => i === 1 || d === first.shape[i]), 'concatChannels: shapes differ outside axis 1');
        Ct += t.shape[1]!;
      }
      const shape = [...first.shape];
      shape[1] = Ct;
      return out(shape, op(OP.concatChannels, xs.map(h), [N * Ct * S], [N, S, ...xs.map((t) => t.shape[1]!)])[0]!);
    },
    sliceChannels(x, a) {
      const [N, C, S] = nc('sliceChannels', x);
      const { start, end } = a;
      check(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start <= end && end <= C, `sliceChannels: [${start}, ${end}) is not a channel range of [0, ${C})`);
      const shape = [...x.shape];
      shape[1] = end - start;
      return out(shape, op(OP.sliceChannels, [h(x)], [N * (end - start) * S], [N, C, S, start, end])[0]!);
    },
    softmax(x) {
      const [N, C, S] = nc('softmax', x);
      return out(x.shape, op(OP.softmax, [h(x)], [N * C * S], [N, C, S])[0]!);
    },
    softmaxGrad(dy, y) {
      sameShape('softmaxGrad', dy, y);
      const [N, C, S] = nc('softmaxGrad', y);
      return out(y.shape, op(OP.softmaxGrad, [h(dy), h(y)], [N * C * S], [N, C, S])[0]!);
    },
    crossEntropy(logits, target) {
      const [N, C, S] = lossDims('crossEntropy', logits, target);
      return out([1], op(OP.crossEntropy, [h(logits), h(target)], [1], [N, C, S])[0]!);
    },
    crossEntropyGrad(dloss, logits, target) {
      const [N, C, S] = lossDims('crossEntropyGrad', logits, target);
      return out(logits.shape, op(OP.crossEntropyGrad, [h(dloss), h(logits), h(target)], [N * C * S], [N, C, S])[0]!);
    },
    diceLoss(probs, target, a) {
      const [N, C, S] = lossDims('diceLoss', probs, target);
      const [l, st] = op(OP.diceLoss, [h(probs), h(target)], [1, N * C * 3], [N, C, S, a.smoothNr, a.smoothDr]);
      return [out([1], l!), out([N, C, 3], st!)];
    },
    diceLossGrad(dloss, target, stats, a) {
      check(target.shape.length >= 2 && target.shape[1] === 1, 'diceLossGrad: target must be [N, 1, ...]');
      const N = target.shape[0]!;
      const C = a.channels;
      const S = tail(target.shape, 2);
      check(numel(stats.shape) === N * C * 3, `diceLossGrad: stats must be [${N}, ${C}, 3]`);
      const shape = [...target.shape];
      shape[1] = C;
      return out(shape, op(OP.diceLossGrad, [h(dloss), h(target), h(stats)], [N * C * S], [N, C, S, a.smoothNr, a.smoothDr])[0]!);
    },
    sum(x) {
      const n = numel(x.shape);
      return out([1], op(OP.sum, [h(x)], [1], [n])[0]!);
    },
    fillFromScalar(s, a) {
      check(numel(s.shape) >= 1, 'fillFromScalar: scalar tensor is empty');
      const n = numel(a.shape);
      return out(a.shape, op(OP.fillFromScalar, [h(s)], [n], [n, a.factor])[0]!);
    },
    adamwStep(p, g, m, v, a: AdamWAttrs) {
      const n = numel(p.shape);
      check(numel(g.shape) === n && numel(m.shape) === n && numel(v.shape) === n, 'adamwStep: p, g, m, v must have the same size');
      check(Number.isInteger(a.step) && a.step >= 1, `adamwStep: step must be a positive integer, got ${a.step}`);
      op(OP.adamwStep, [h(p), h(g), h(m), h(v)], [], [n, a.lr, a.beta1, a.beta2, a.eps, a.weightDecay, a.step]);
    },
  };
}

function checkStrided(op: string, shape: readonly number[], offset: number, strides: readonly number[], bound: number): void {
  check(
    strides.length === shape.length && strides.every((s) => Number.isInteger(s) && s >= 0) && Number.isInteger(offset) && offset >= 0,
    `${op}: strides and offset must be non-negative integers, one stride per dim`,
  );
  const maxPos = offset + shape.reduce((acc, n, d) => acc + (n - 1) * strides[d]!, 0);
  check(numel(shape) === 0 || maxPos < bound, `${op}: position ${maxPos} is outside a storage of ${bound} values`);
}

function checkIndex(index: Int32Array, rows: number, op: string): void {
  check(rows <= 1 << 24, `${op}: tables of more than 2^24 rows are not supported`);
  for (let i = 0; i < index.length; i++) check(index[i]! >= 0 && index[i]! < rows, `${op}: index ${index[i]} at position ${i} is not a row of [0, ${rows})`);
}

function broadcastShape(op: string, a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const shape: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    check(da === db || da === 1 || db === 1, `${op}: shapes [${a.join(', ')}] and [${b.join(', ')}] do not broadcast`);
    shape.push(da === 1 ? db : da);
  }
  return shape;
}

/** Strides reading `src` (right-aligned in `shape`), 0 along broadcast dims. */
function broadcastStrides(shape: readonly number[], src: readonly number[]): number[] {
  const st: number[] = new Array<number>(src.length);
  let acc = 1;
  for (let d = src.length - 1; d >= 0; d--) {
    st[d] = acc;
    acc *= src[d]!;
  }
  const lead = shape.length - src.length;
  return shape.map((_, d) => (d < lead || src[d - lead] === 1 ? 0 : st[d - lead]!));
}

function lnLayout(shape: readonly number[], channelsLast: boolean): { outer: number; C: number; S: number; statShape: number[] } {
  if (channelsLast) {
    check(shape.length >= 1, 'layerNorm: input must have at least 1 dimension');
    const C = shape[shape.length - 1]!;
    const statShape = shape.slice(0, -1);
    return { outer: numel(statShape), C, S: 1, statShape };
  }
  check(shape.length >= 2, 'layerNorm: channels_first input must be [N, C, ...]');
  return { outer: shape[0]!, C: shape[1]!, S: tail(shape, 2), statShape: [shape[0]!, ...shape.slice(2)] };
}

function lossDims(op: string, x: KTensor, target: KTensor): [number, number, number] {
  const [N, C, S] = nc(op, x);
  const ok = target.shape.length === x.shape.length && target.shape[0] === N && target.shape[1] === 1 && target.shape.every((d, i) => i < 2 || d === x.shape[i]);
  check(ok, `${op}: target must be [${[N, 1, ...x.shape.slice(2)].join(', ')}], got [${target.shape.join(', ')}]`);
  return [N, C, S];
}

export function makeNativeBackend(addon: NativeAddon): Backend {
  return {
    name: 'native',
    upload: (data: Float32Array) => addon.upload(data),
    zeros: (size: number) => addon.zeros(size),
    read: (handle: unknown, size: number) => addon.read(handle as NativeHandle, size),
    readSync: (handle: unknown, size: number) => addon.readSync(handle as NativeHandle, size),
    free: (handle: unknown) => addon.free(handle as NativeHandle),
    write: (handle: unknown, data: Float32Array) => addon.write(handle as NativeHandle, data),
  };
}

const loaded = loadAddon();

/** The loaded addon, or null (then `nativeLoadError` says why). */
export const nativeAddon: NativeAddon | null = typeof loaded === 'string' ? null : loaded;
export const nativeLoadError: string | null = typeof loaded === 'string' ? loaded : null;

/** ISA and thread count of the native backend, or null when it did not load. */
export function nativeInfo(): { isa: string; threads: number } | null {
  return nativeAddon ? nativeAddon.info() : null;
}

/** Waits for every queued native kernel (benchmarks). No-op when the addon is not loaded. */
export function nativeSync(): void {
  nativeAddon?.sync();
}

if (nativeAddon) {
  registerBackend(makeNativeBackend(nativeAddon), NATIVE_PRIORITY);
  registerKernels('native', makeNativeKernels(nativeAddon));
} else if (process.env.UXNET_NATIVE !== '0' && process.env.UXNET_NATIVE !== 'off') {
  process.emitWarning(`native CPU backend unavailable (${nativeLoadError}); using the reference backend`, { code: 'UXNET_NO_NATIVE' });
}
