/**
 * 3-D convolution and its two gradients as generated WGSL. Shapes are baked into the shader, and
 * the (kh, kw) taps are unrolled in the generated source (at most 7×7 per kd), so the inner loop is
 * straight-line loads and multiply-adds with per-tap validity masks instead of a loop with
 * `continue`s and index divisions (4-20× faster on SwiftShader, and fewer instructions on GPUs):
 *
 * - conv3d: one thread per block of up to 4 output channels of one group and up to 8 consecutive
 *   output positions along w; each input row span and each weight is loaded once for all of them
 *   (4× faster than a thread per output voxel on SwiftShader for 3³ and 7³ depthwise convs).
 * - conv3dGradInput: one thread per block of up to 4 input channels and (stride 1 along w) up to 8
 *   input positions along w, else one input voxel; tap validity includes the stride (only taps with
 *   (i + p − k) divisible by s contribute), so the same kernel serves strided convs and
 *   conv_transpose3d.
 * - conv3dGradWeight: one thread per (o, ci, kd, kh, kw row of taps, part of the (n, od, oh)
 *   rows) walking each output row with a counter (no index divisions in the loop), Kahan-compensated
 *   across rows; a second pass sums the parts in order. No atomics, no barriers: deterministic.
 */
import type { Conv3dAttrs, KTensor } from '../../engine/kernels.js';
import { convGeometry, type ConvGeometry } from '../../engine/conv-geometry.js';
import { allocStorage, context, freeStorage, storageOf } from './device.js';
import { run, WGSL_KADD_ONLY } from './program.js';

function check(cond: boolean, msg: string): asserts cond {
  if (!cond) throw new Error(`webgpu backend: ${msg}`);
}

type Geo = ConvGeometry;

function geometry(op: string, xShape: readonly number[], wShape: readonly number[], a: Conv3dAttrs): Geo {
  return convGeometry('webgpu backend', op, xShape, wShape, a);
}

/** Taps per kd beyond which the (kh, kw) loops stay loops (code size). */
const MAX_UNROLL = 49;

function consts(g: Geo): { consts: Record<string, number>; iconsts: Record<string, number> } {
  return {
    consts: { N: g.N, CIN: g.Cin, COUT: g.Cout, CPG: g.cpg, OPG: g.opg, KD: g.KD, KH: g.KH, KW: g.KW, KK: g.KD * g.KH * g.KW },
    iconsts: { D: g.D, H: g.H, W: g.W, OD: g.OD, OH: g.OH, OW: g.OW, SD: g.sd, SH: g.sh, SW: g.sw, PD: g.pd, PH: g.ph, PW: g.pw },
  };
}

function block(n: number): number {
  return n % 4 === 0 ? 4 : n % 2 === 0 ? 2 : 1;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/**
 * WGSL pieces shared by the conv kernels. Every kernel gives thread i one (n, channel block,
 * depth, row, w position or block of positions); these generate that decomposition, the per-thread
 * accumulators and the guarded stores, so the kernels differ only in what they sum.
 */

/** Splits thread index i, innermost first: `w` (count `wCount`, a u32 expression), then rows, depth, the channel block of `chans / B`, n. */
function unflattenThread(v: { w: string; wCount: string; h: string; hCount: string; d: string; dCount: string; cb: string; chans: string }): string {
  return `  let ${v.w} = i32(i % ${v.wCount});
  var t = i / ${v.wCount};
  let ${v.h} = i32(t % u32(${v.hCount}));
  t = t / u32(${v.hCount});
  let ${v.d} = i32(t % u32(${v.dCount}));
  t = t / u32(${v.dCount});
  let ${v.cb} = t % (${v.chans} / B);
  let n = t / (${v.chans} / B);`;
}

/** Accumulators a{j}_{p} of a thread's channels j and w positions p. */
function blockedAccumulators(J: number[], PP: number[], init: (j: number) => string): string {
  return J.map((j) => PP.map((p) => `  var a${j}_${p} = ${init(j)};`).join('\n')).join('\n');
}

/** Stores a{j}_{p} at ob0 + j·spatial + p, skipping positions past the row's end (`start + p < limit`). */
function blockedStores(J: number[], PP: number[], start: string, limit: string, spatial: number): string {
  return PP.map((p) => `  if (${start} + ${p} < ${limit}) {\n${J.map((j) => `    st_y(ob0 + ${j * spatial + p}u, a${j}_${p});`).join('\n')}\n  }`).join('\n');
}

/** Stores a{j} of a thread's channels j at ob0 + j·spatial (one position per thread). */
function channelStores(J: number[], spatial: number): string {
  return J.map((j) => `  st_y(ob0 + ${j * spatial}u, a${j});`).join('\n');
}

/** conv3d: the loop over a group's input channels and kd taps, with `xr` the input row at (id, ih0, iw0) and `wr` the weights; `taps` sums the (kh, kw) taps. */
function forwardChannelDepthLoop(taps: string): string {
  return `  for (var ci = 0u; ci < CPG; ci = ci + 1u) {
    let xc = i32((n * CIN + grp * CPG + ci) * u32(D));
    let wc = (o0 * CPG + ci) * KK;
    for (var kd = 0; kd < i32(KD); kd = kd + 1) {
      let id = id0 + kd;
      if (id < 0 || id >= D) { continue; }
      let xr = ((xc + id) * H + ih0) * W + iw0;
      let wr = wc + u32(kd) * KH * KW;
${taps}    }
  }`;
}

/**
 * conv3dGradInput: for each tap k along axis `a` (h or w), the dy index q{a}{k} input position i{a}
 * reads and whether it is valid (in range and, strided, on the stride).
 */
function gradInputAxisTaps(a: 'h' | 'w', K: number, stride: number): string {
  const A = a.toUpperCase();
  let s = '';
  for (let k = 0; k < K; k++) {
    s += `  let t${a}${k} = i${a} + P${A} - ${k};\n`;
    s +=
      stride === 1
        ? `  let q${a}${k} = t${a}${k};\n  let v${a}${k} = t${a}${k} >= 0 && t${a}${k} < O${A};\n`
        : `  let q${a}${k} = t${a}${k} / S${A};\n  let v${a}${k} = t${a}${k} >= 0 && t${a}${k} % S${A} == 0 && q${a}${k} < O${A};\n`;
  }
  return s;
}

/** conv3dGradInput: the loop over output channels and kd taps, with `dr` the start of the dy plane and `wr` of the weights; `taps` sums the (kh, kw) taps. */
function gradInputChannelDepthLoop(g: Geo, taps: string): string {
  return `  for (var o = grp * OPG; o < (grp + 1u) * OPG; o = o + 1u) {
    let dc = i32((n * COUT + o) * u32(OD));
    let wc = (o * CPG + ci0) * KK;
    for (var kd = 0; kd < i32(KD); kd = kd + 1) {
      let td = id + PD - kd;
${g.sd === 1 ? '      if (td < 0 || td >= OD) { continue; }\n      let dr = (dc + td) * OH * OW;' : '      if (td < 0 || td % SD != 0 || td / SD >= OD) { continue; }\n      let dr = (dc + td / SD) * OH * OW;'}
      let wr = wc + u32(kd) * KH * KW;
${taps}    }
  }`;
}

/** Output positions along w per thread in the unrolled conv3d: each input row span is loaded once for all of them. */
const OW_BLOCK = 8;

export function conv3d(x: KTensor, wt: KTensor, bias: KTensor | null, a: Conv3dAttrs): KTensor {
  const g = geometry('conv3d', x.shape, wt.shape, a);
  if (bias) check(bias.shape.length === 1 && bias.shape[0] === g.Cout, `conv3d: bias must be [${g.Cout}], got [${bias.shape.join(', ')}]`);
  if (g.KH * g.KW <= MAX_UNROLL) return conv3dRowBlocked(x, wt, bias, g);
  // Larger (kh, kw) windows: one thread per output voxel and channel block, taps as loops.
  const B = block(g.opg);
  const spatial = g.OD * g.OH * g.OW;
  const threads = g.N * (g.Cout / B) * spatial;
  const y = allocStorage(g.N * g.Cout * spatial);
  const J = range(B);
  const taps = `      for (var kh = 0; kh < i32(KH); kh = kh + 1) {
        let ih = ih0 + kh;
        if (ih < 0 || ih >= H) { continue; }
        for (var kw = 0; kw < i32(KW); kw = kw + 1) {
          let iw = iw0 + kw;
          if (iw < 0 || iw >= W) { continue; }
          let xv = ld_x(u32(xr + kh * W + kw));
${J.map((j) => `          a${j} = a${j} + ld_w(wr + ${j * g.cpg * g.KD * g.KH * g.KW}u + u32(kh) * KW + u32(kw)) * xv;`).join('\n')}
        }
      }\n`;
  const { consts: uc, iconsts } = consts(g);
  run({
    label: 'conv3d',
    src: `
fn kmain(wg: u32, li: u32) {
  let i = wg * WG + li;
  if (i >= NT) { return; }
${unflattenThread({ w: 'ow', wCount: 'u32(OW)', h: 'oh', hCount: 'OH', d: 'od', dCount: 'OD', cb: 'ob', chans: 'COUT' })}
  let o0 = ob * B;
  let grp = o0 / OPG;
  let id0 = od * SD - PD;
  let ih0 = oh * SH - PH;
  let iw0 = ow * SW - PW;
${J.map((j) => `  var a${j} = ${bias ? `ld_b(o0 + ${j}u)` : '0.0f'};`).join('\n')}
${forwardChannelDepthLoop(taps)}
  let ob0 = ((n * COUT + o0) * u32(OD) + u32(od)) * u32(OH * OW) + u32(oh * OW + ow);
${channelStores(J, spatial)}
}`,
    tensors: [
      { name: 'x', s: storageOf(x, 'conv3d'), mode: 'r' },
      { name: 'w', s: storageOf(wt, 'conv3d'), mode: 'r' },
      ...(bias ? [{ name: 'b', s: storageOf(bias, 'conv3d'), mode: 'r' as const }] : []),
      { name: 'y', s: y, mode: 'w' },
    ],
    consts: { ...uc, NT: threads, B },
    iconsts,
    workgroups: Math.ceil(threads / 256),
  });
  return { shape: [g.N, g.Cout, g.OD, g.OH, g.OW], data: y };
}

/**
 * conv3d with the (kh, kw) taps unrolled: one thread per block of up to 4 output channels and up to
 * OW_BLOCK consecutive output positions along w. For each (ci, kd, kh) the thread loads the input row
 * span its positions cover once (OW_BLOCK·sw + KW − sw values, masked at the borders) and each weight
 * once, then does every multiply-add from registers: about 3× fewer loads than a thread per output,
 * which is what a CPU adapter (SwiftShader gathers every load) and a GPU's memory system pay for.
 * Each output still sums its taps in (ci, kd, kh, kw) order, so values equal a thread per output's.
 */
function conv3dRowBlocked(x: KTensor, wt: KTensor, bias: KTensor | null, g: Geo): KTensor {
  const B = block(g.opg);
  const P = Math.min(OW_BLOCK, g.OW);
  const owBlocks = Math.ceil(g.OW / P);
  const spatial = g.OD * g.OH * g.OW;
  const threads = g.N * (g.Cout / B) * g.OD * g.OH * owBlocks;
  const y = allocStorage(g.N * g.Cout * spatial);
  const span = (P - 1) * g.sw + g.KW;
  const J = range(B);
  const PP = range(P);
  let body = '';
  for (let kh = 0; kh < g.KH; kh++) {
    body += '      {\n';
    for (let s = 0; s < span; s++) body += `        let x${s} = select(0.0f, ld_x(u32(max(xr + ${kh * g.W + s}, 0))), vh${kh} && vw${s});\n`;
    for (let kw = 0; kw < g.KW; kw++) {
      for (const j of J) {
        body += `        { let wv = ld_w(wr + ${j * g.cpg * g.KD * g.KH * g.KW + kh * g.KW + kw}u);`;
        for (const p of PP) body += ` a${j}_${p} = a${j}_${p} + wv * x${p * g.sw + kw};`;
        body += ' }\n';
      }
    }
    body += '      }\n';
  }
  const masks =
    range(g.KH)
      .map((kh) => `  let vh${kh} = ih0 + ${kh} >= 0 && ih0 + ${kh} < H;`)
      .join('\n') +
    '\n' +
    range(span)
      .map((s) => `  let vw${s} = iw0 + ${s} >= 0 && iw0 + ${s} < W;`)
      .join('\n');
  const { consts: uc, iconsts } = consts(g);
  run({
    label: 'conv3d',
    src: `
fn kmain(wg: u32, li: u32) {
  let i = wg * WG + li;
  if (i >= NT) { return; }
${unflattenThread({ w: 'owb', wCount: 'OWB', h: 'oh', hCount: 'OH', d: 'od', dCount: 'OD', cb: 'ob', chans: 'COUT' })}
  let o0 = ob * B;
  let grp = o0 / OPG;
  let ow0 = owb * ${P};
  let id0 = od * SD - PD;
  let ih0 = oh * SH - PH;
  let iw0 = ow0 * SW - PW;
${masks}
${blockedAccumulators(J, PP, (j) => (bias ? `ld_b(o0 + ${j}u)` : '0.0f'))}
${forwardChannelDepthLoop(body)}
  let ob0 = ((n * COUT + o0) * u32(OD) + u32(od)) * u32(OH * OW) + u32(oh * OW + ow0);
${blockedStores(J, PP, 'ow0', 'OW', spatial)}
}`,
    tensors: [
      { name: 'x', s: storageOf(x, 'conv3d'), mode: 'r' },
      { name: 'w', s: storageOf(wt, 'conv3d'), mode: 'r' },
      ...(bias ? [{ name: 'b', s: storageOf(bias, 'conv3d'), mode: 'r' as const }] : []),
      { name: 'y', s: y, mode: 'w' },
    ],
    consts: { ...uc, NT: threads, B, OWB: owBlocks },
    iconsts,
    workgroups: Math.ceil(threads / 256),
  });
  return { shape: [g.N, g.Cout, g.OD, g.OH, g.OW], data: y };
}

export function conv3dGradInput(dy: KTensor, wt: KTensor, a: Conv3dAttrs & { inputShape: readonly number[] }): KTensor {
  const g = geometry('conv3dGradInput', a.inputShape, wt.shape, a);
  const want = [g.N, g.Cout, g.OD, g.OH, g.OW];
  check(
    dy.shape.length === 5 && want.every((v, i) => dy.shape[i] === v),
    `conv3dGradInput: dy must be [${want.join(', ')}] for input [${a.inputShape.join(', ')}], got [${dy.shape.join(', ')}]`,
  );
  const unroll = g.KH * g.KW <= MAX_UNROLL;
  if (unroll && g.sw === 1) return conv3dGradInputRowBlocked(dy, wt, g, a.inputShape);
  const B = block(g.cpg);
  const spatial = g.D * g.H * g.W;
  const threads = g.N * (g.Cin / B) * spatial;
  const dx = allocStorage(g.N * g.Cin * spatial);
  const J = range(B);
  const K = g.KD * g.KH * g.KW;
  let body: string;
  if (unroll) {
    // Output row/column of each tap computed once per thread; with stride 1 no division or modulo
    // at all (integer division is scalar, hence slow, on CPU implementations).
    const masks = gradInputAxisTaps('h', g.KH, g.sh) + gradInputAxisTaps('w', g.KW, g.sw);
    let taps = '';
    for (let kh = 0; kh < g.KH; kh++) {
      for (let kw = 0; kw < g.KW; kw++) {
        const t = kh * g.KW + kw;
        taps += `        { let dv = select(0.0f, ld_dy(u32(max(dr + qh${kh} * OW + qw${kw}, 0))), vh${kh} && vw${kw});\n`;
        for (const j of J) taps += `          a${j} = a${j} + ld_w(wr + ${j * K + t}u) * dv;\n`;
        taps += '        }\n';
      }
    }
    body = `${masks}
${gradInputChannelDepthLoop(g, taps)}`;
  } else {
    body = `
  for (var o = grp * OPG; o < (grp + 1u) * OPG; o = o + 1u) {
    let dc = i32((n * COUT + o) * u32(OD));
    let wc = (o * CPG + ci0) * KK;
    for (var kd = 0; kd < i32(KD); kd = kd + 1) {
      let td = id + PD - kd;
      if (td < 0 || td % SD != 0 || td / SD >= OD) { continue; }
      for (var kh = 0; kh < i32(KH); kh = kh + 1) {
        let th = ih + PH - kh;
        if (th < 0 || th % SH != 0 || th / SH >= OH) { continue; }
        for (var kw = 0; kw < i32(KW); kw = kw + 1) {
          let tw = iw + PW - kw;
          if (tw < 0 || tw % SW != 0 || tw / SW >= OW) { continue; }
          let dv = ld_dy(u32(((dc + td / SD) * OH + th / SH) * OW + tw / SW));
          let wr = wc + (u32(kd) * KH + u32(kh)) * KW + u32(kw);
${J.map((j) => `          a${j} = a${j} + ld_w(wr + ${j * K}u) * dv;`).join('\n')}
        }
      }
    }
  }`;
  }
  const { consts: uc, iconsts } = consts(g);
  run({
    label: 'conv3dGradInput',
    src: `
fn kmain(wg: u32, li: u32) {
  let i = wg * WG + li;
  if (i >= NT) { return; }
${unflattenThread({ w: 'iw', wCount: 'u32(W)', h: 'ih', hCount: 'H', d: 'id', dCount: 'D', cb: 'cb', chans: 'CIN' })}
  let c0 = cb * B;
  let grp = c0 / CPG;
  let ci0 = c0 - grp * CPG;
${J.map((j) => `  var a${j} = 0.0f;`).join('\n')}
${body}
  let ob0 = ((n * CIN + c0) * u32(D) + u32(id)) * u32(H * W) + u32(ih * W + iw);
${channelStores(J, spatial)}
}`,
    tensors: [
      { name: 'dy', s: storageOf(dy, 'conv3dGradInput'), mode: 'r' },
      { name: 'w', s: storageOf(wt, 'conv3dGradInput'), mode: 'r' },
      { name: 'y', s: dx, mode: 'w' },
    ],
    consts: { ...uc, NT: threads, B },
    iconsts,
    workgroups: Math.ceil(threads / 256),
  });
  return { shape: [...a.inputShape], data: dx };
}

/**
 * conv3dGradInput of a conv with stride 1 along w and unrolled (kh, kw) taps, blocked like conv3d:
 * one thread per block of up to 4 input channels and up to OW_BLOCK consecutive input positions
 * along w, loading each dy row span (OW_BLOCK + KW − 1 values) and each weight once for all of them.
 * Each value sums its taps in the (o, kd, kh, kw) order of a thread per voxel.
 */
function conv3dGradInputRowBlocked(dy: KTensor, wt: KTensor, g: Geo, inputShape: readonly number[]): KTensor {
  const B = block(g.cpg);
  const P = Math.min(OW_BLOCK, g.W);
  const wBlocks = Math.ceil(g.W / P);
  const spatial = g.D * g.H * g.W;
  const threads = g.N * (g.Cin / B) * g.D * g.H * wBlocks;
  const dx = allocStorage(g.N * g.Cin * spatial);
  const J = range(B);
  const PP = range(P);
  const K = g.KD * g.KH * g.KW;
  const span = P + g.KW - 1;
  // dy column of position p and tap kw: iw0 + p + PW − kw = qb + (p − kw + KW − 1).
  let masks = `  let qb = iw0 + PW - ${g.KW - 1};\n`;
  masks += gradInputAxisTaps('h', g.KH, g.sh);
  for (let q = 0; q < span; q++) masks += `  let vw${q} = qb + ${q} >= 0 && qb + ${q} < OW;\n`;
  let taps = '';
  for (let kh = 0; kh < g.KH; kh++) {
    taps += '        {\n';
    for (let q = 0; q < span; q++) taps += `          let d${q} = select(0.0f, ld_dy(u32(max(dr + qh${kh} * OW + qb + ${q}, 0))), vh${kh} && vw${q});\n`;
    for (let kw = 0; kw < g.KW; kw++) {
      for (const j of J) {
        taps += `          { let wv = ld_w(wr + ${j * K + kh * g.KW + kw}u);`;
        for (const p of PP) taps += ` a${j}_${p} = a${j}_${p} + wv * d${p - kw + g.KW - 1};`;
        taps += ' }\n';
      }
    }
    taps += '        }\n';
  }
  const { consts: uc, iconsts } = consts(g);
  run({
    label: 'conv3dGradInput',
    src: `
fn kmain(wg: u32, li: u32) {
  let i = wg * WG + li;
  if (i >= NT) { return; }
${unflattenThread({ w: 'wb', wCount: 'WB', h: 'ih', hCount: 'H', d: 'id', dCount: 'D', cb: 'cb', chans: 'CIN' })}
  let c0 = cb * B;
  let grp = c0 / CPG;
  let ci0 = c0 - grp * CPG;
  let iw0 = wb * ${P};
${blockedAccumulators(J, PP, () => '0.0f')}
${masks}
${gradInputChannelDepthLoop(g, taps)}
  let ob0 = ((n * CIN + c0) * u32(D) + u32(id)) * u32(H * W) + u32(ih * W + iw0);
${blockedStores(J, PP, 'iw0', 'W', spatial)}
}`,
    tensors: [
      { name: 'dy', s: storageOf(dy, 'conv3dGradInput'), mode: 'r' },
      { name: 'w', s: storageOf(wt, 'conv3dGradInput'), mode: 'r' },
      { name: 'y', s: dx, mode: 'w' },
    ],
    consts: { ...uc, NT: threads, B, WB: wBlocks },
    iconsts,
    workgroups: Math.ceil(threads / 256),
  });
  return { shape: [...inputShape], data: dx };
}

/** Taps per thread in conv3dGradWeight (a whole kw row when KW ≤ this). */
const MAX_ROW_TAPS = 8;
/** conv3dGradWeight splits the (n, od, oh) rows into parts until about this many threads run. */
const GRAD_WEIGHT_THREADS = 65536;

/**
 * dL/dw without workgroup memory or barriers: one thread per (o, ci, kd, kh, block of kw taps,
 * part of the (n, od, oh) rows). Along each row the thread walks ow with a plain counter (no index
 * divisions in the loop) and accumulates its kw taps (blocked sum per row, Kahan–Babuška across rows);
 * with more than one part, a second pass sums the parts of each weight in order (Kahan again).
 * Deterministic, and far cheaper on CPU implementations (SwiftShader) than per-position index
 * arithmetic with workgroup reductions.
 */
export function conv3dGradWeight(x: KTensor, dy: KTensor, a: Conv3dAttrs & { weightShape: readonly number[] }): KTensor {
  const g = geometry('conv3dGradWeight', x.shape, a.weightShape, a);
  const want = [g.N, g.Cout, g.OD, g.OH, g.OW];
  check(
    dy.shape.length === 5 && want.every((v, i) => dy.shape[i] === v),
    `conv3dGradWeight: dy must be [${want.join(', ')}] for input [${x.shape.join(', ')}], got [${dy.shape.join(', ')}]`,
  );
  const nw = g.Cout * g.cpg * g.KD * g.KH * g.KW;
  const TW = g.KW <= MAX_ROW_TAPS ? g.KW : 1;
  const KWB = g.KW / TW;
  const combos = g.Cout * g.cpg * g.KD * g.KH * KWB;
  const R = g.N * g.OD * g.OH;
  // The partial sums stay within one binding window (always, on real adapters), so splitting rows
  // never adds bindings beyond those of x, dy and dw.
  let parts = Math.max(1, Math.min(256, Math.ceil(GRAD_WEIGHT_THREADS / combos), Math.floor(R / 4), Math.floor(context().chunkElems / nw)));
  const RPP = Math.ceil(R / parts);
  parts = Math.ceil(R / RPP);
  const dw = allocStorage(nw);
  const partial = parts > 1 ? allocStorage(nw * parts) : dw;
  const J = range(TW);
  const { consts: uc, iconsts } = consts(g);
  // Stride 1 along w: the TW x values of one output position are the previous position's shifted by
  // one, so each step loads one new x value (not TW) and moves the rest along in registers.
  const X = (iw: string) => `select(0.0f, ld_x(u32(max(xr + ${iw}, 0))), ${iw} >= 0 && ${iw} < W)`;
  const slidingRow = `${J.slice(0, -1)
    .map((j) => `      var x${j} = ${X(`kw0 + ${j}`)};`)
    .join('\n')}
      var x${TW - 1} = 0.0f;
      for (var ow = 0; ow < OW; ow = ow + 1) {
        let dv = ld_dy(dr + u32(ow));
        let il = ow + kw0 + ${TW - 1};
        x${TW - 1} = ${X('il')};
${J.map((j) => `        b${j} = b${j} + dv * x${j};`).join('\n')}
${J.slice(0, -1)
  .map((j) => `        x${j} = x${j + 1};`)
  .join('\n')}
      }`;
  const stridedRow = `      for (var ow = 0; ow < OW; ow = ow + 1) {
        let dv = ld_dy(dr + u32(ow));
        let iw = ow * SW + kw0;
${J.map((j) => `        b${j} = b${j} + dv * ${X(`iw + ${j}`)};`).join('\n')}
      }`;
  const store = parts > 1 ? J.map((j) => `  st_y((wb + ${j}u) * PARTS + part, s${j}.x + s${j}.y);`).join('\n') : J.map((j) => `  st_y(wb + ${j}u, s${j}.x + s${j}.y);`).join('\n');
  run({
    label: 'conv3dGradWeight',
    src: `${WGSL_KADD_ONLY}
fn kmain(wg: u32, li: u32) {
  let i = wg * WG + li;
  if (i >= NT) { return; }
  let part = i % PARTS;
  let q = i / PARTS;
  let kwb = q % KWB;
  var t = q / KWB;
  let kh = i32(t % KH);
  t = t / KH;
  let kd = i32(t % KD);
  t = t / KD;
  let ci = t % CPG;
  let o = t / CPG;
  let grp = o / OPG;
  let wb = (q / KWB) * KW + kwb * TW;
  let kw0 = i32(kwb * TW) - PW;
${J.map((j) => `  var s${j} = vec2<f32>(0.0f, 0.0f);`).join('\n')}
  let r0 = part * RPP;
  let r1 = min(R, r0 + RPP);
  var oh = i32(r0 % u32(OH));
  var rr = r0 / u32(OH);
  var od = i32(rr % u32(OD));
  var n = rr / u32(OD);
  for (var r = r0; r < r1; r = r + 1u) {
    let id = od * SD - PD + kd;
    let ih = oh * SH - PH + kh;
    if (id >= 0 && id < D && ih >= 0 && ih < H) {
      let dr = (((n * COUT + o) * u32(OD) + u32(od)) * u32(OH) + u32(oh)) * u32(OW);
      let xr = (i32((n * CIN + grp * CPG + ci) * u32(D)) + id) * H * W + ih * W;
${J.map((j) => `      var b${j} = 0.0f;`).join('\n')}
${g.sw === 1 ? slidingRow : stridedRow}
${J.map((j) => `      s${j} = kadd(s${j}, b${j});`).join('\n')}
    }
    oh = oh + 1;
    if (oh == OH) {
      oh = 0;
      od = od + 1;
      if (od == OD) { od = 0; n = n + 1u; }
    }
  }
${store}
}`,
    tensors: [
      { name: 'x', s: storageOf(x, 'conv3dGradWeight'), mode: 'r' },
      { name: 'dy', s: storageOf(dy, 'conv3dGradWeight'), mode: 'r' },
      { name: 'y', s: partial, mode: 'w' },
    ],
    consts: { ...uc, NT: combos * parts, PARTS: parts, KWB, TW, R, RPP },
    iconsts,
    workgroups: Math.ceil((combos * parts) / 256),
  });
  if (parts > 1) {
    run({
      label: 'conv3dGradWeight (parts)',
      src: `${WGSL_KADD_ONLY}
fn kmain(wg: u32, li: u32) {
  let i = wg * WG + li;
  if (i >= NW) { return; }
  var k = vec2<f32>(0.0f, 0.0f);
  for (var p = 0u; p < PARTS; p = p + 1u) { k = kadd(k, ld_p(i * PARTS + p)); }
  st_y(i, k.x + k.y);
}`,
      tensors: [
        { name: 'p', s: partial, mode: 'r' },
        { name: 'y', s: dw, mode: 'w' },
      ],
      consts: { NW: nw, PARTS: parts },
      workgroups: Math.ceil(nw / 256),
    });
    freeStorage(partial);
  }
  return { shape: [...a.weightShape], data: dw };
}
