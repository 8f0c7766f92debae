/**
 * Fused attention forward in WGSL: one invocation per (batch entry, head, query row), an online
 * softmax in one pass over the keys (running max, rescaled sum and output accumulator in private
 * memory), so there are no workgroup barriers (SwiftShader runs each as a ~25 µs coroutine switch) and
 * no [B, heads, N, M] score buffer. The gradient on this backend is the op's composition of existing
 * kernels (ops/attention.ts), which does materialise the probabilities.
 */
import type { AttentionAttrs, KTensor } from '../../engine/kernels.js';
import { attentionGradComposite } from '../../engine/attention-composite.js';
import { allocStorage, storageOf } from './device.js';
import { run } from './program.js';

const WG = 64;

export function attention(q: KTensor, k: KTensor, v: KTensor, bias: KTensor | null, mask: KTensor | null, a: AttentionAttrs): [KTensor, KTensor] {
  const [B, N, Cq] = q.shape as [number, number, number];
  const [, M, Ck] = k.shape as [number, number, number];
  const Cv = v.shape[2]!;
  const { heads: H, headDim: D } = a;
  const rows = B * H * N;
  const y = allocStorage(B * N * H * D);
  const lse = allocStorage(rows);
  const nW = mask ? mask.shape[0]! : 1;
  const addBias = bias ? '    s = s + ld_bias(bo + j);\n' : '';
  const addMask = mask ? '    s = s + ld_mask(mo + j);\n' : '';
  run({
    label: 'attention (thread per query row)',
    wgSize: WG,
    src: `
fn kmain(wg: u32, li: u32) {
  let row = wg * WG + li;
  if (row >= ROWS) { return; }
  let i = row % N;
  let bh = row / N;
  let h = bh % H;
  let b = bh / H;
  let qo = (b * N + i) * CQ + QCOL + h * D;
  var qv: array<f32, D>;
  var acc: array<f32, D>;
  for (var d = 0u; d < D; d = d + 1u) { qv[d] = ld_q(qo + d) * QSCALE; acc[d] = 0.0f; }
  let bo = (h * N + i) * M;
  let mo = ((b % NW) * N + i) * M;
  var mx = -3.0e38f;
  var se = 0.0f;
  for (var j = 0u; j < M; j = j + 1u) {
    let ko = (b * M + j) * CK + KCOL + h * D;
    var dot = 0.0f;
    for (var d = 0u; d < D; d = d + 1u) { dot = dot + qv[d] * ld_k(ko + d); }
    var s = dot * SSCALE;
${addBias}${addMask}    if (s > mx) {
      let c = exp(mx - s);
      se = se * c;
      for (var d = 0u; d < D; d = d + 1u) { acc[d] = acc[d] * c; }
      mx = s;
    }
    let e = exp(s - mx);
    se = se + e;
    let vo = (b * M + j) * CV + VCOL + h * D;
    for (var d = 0u; d < D; d = d + 1u) { acc[d] = acc[d] + e * ld_v(vo + d); }
  }
  let yo = (b * N + i) * HD + h * D;
  for (var d = 0u; d < D; d = d + 1u) { st_y(yo + d, acc[d] / se); }
  st_lse(row, mx + log(se));
}`,
    tensors: [
      { name: 'q', s: storageOf(q, 'attention'), mode: 'r' },
      { name: 'k', s: storageOf(k, 'attention'), mode: 'r' },
      { name: 'v', s: storageOf(v, 'attention'), mode: 'r' },
      ...(bias ? [{ name: 'bias', s: storageOf(bias, 'attention'), mode: 'r' as const }] : []),
      ...(mask ? [{ name: 'mask', s: storageOf(mask, 'attention'), mode: 'r' as const }] : []),
      { name: 'y', s: y, mode: 'w' },
      { name: 'lse', s: lse, mode: 'w' },
    ],
    consts: { ROWS: rows, N, M, H, D, HD: H * D, CQ: Cq, CK: Ck, CV: Cv, QCOL: a.qCol, KCOL: a.kCol, VCOL: a.vCol, NW: nW },
    fconsts: { QSCALE: a.qScale, SSCALE: a.sScale },
    workgroups: Math.ceil(rows / WG),
  });
  return [
    { shape: [B, N, H * D], data: y },
    { shape: [B, H, N], data: lse },
  ];
}

/** The gradient composed from this backend's matmul/softmax/copy kernels (a fused WGSL backward is future work). */
export function attentionGrad(
  dout: KTensor,
  q: KTensor,
  k: KTensor,
  v: KTensor,
  bias: KTensor | null,
  mask: KTensor | null,
  _out: KTensor,
  _lse: KTensor,
  a: AttentionAttrs & { share: readonly [0, number, number]; needBias: boolean },
): [KTensor, KTensor | null, KTensor | null, KTensor | null] {
  return attentionGradComposite('webgpu', dout, q, k, v, bias, mask, a);
}
