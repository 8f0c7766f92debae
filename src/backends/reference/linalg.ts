import type { KTensor } from '../../engine/kernels.js';
import { alloc, check, f32, out } from './memory.js';

/**
 * Batched matrix products and row gathers, written as the definitions: every dot product
 * accumulates in float64 and rounds once, so the other backends' GEMMs are checked against the
 * exact product rounded to float32.
 */

export function matmul(a: KTensor, b: KTensor, bias: KTensor | null, attrs: { transA: boolean; transB: boolean }): KTensor {
  check(a.shape.length === 3 && b.shape.length === 3, `matmul: a and b must be 3-D, got [${a.shape.join(', ')}] and [${b.shape.join(', ')}]`);
  const [B, a1, a2] = a.shape as [number, number, number];
  const [Bb, b1, b2] = b.shape as [number, number, number];
  const M = attrs.transA ? a2 : a1;
  const K = attrs.transA ? a1 : a2;
  const N = attrs.transB ? b1 : b2;
  const Kb = attrs.transB ? b2 : b1;
  check(Kb === K, `matmul: inner dimensions differ (${K} and ${Kb})`);
  check(Bb === B || Bb === 1, `matmul: batch sizes ${B} and ${Bb} differ`);
  const ad = f32(a);
  const bd = f32(b);
  const biasd = bias ? f32(bias) : null;
  if (biasd) check(biasd.length === N, `matmul: bias must have ${N} values, got ${biasd.length}`);
  // Element (i, k) of op(a) and (k, n) of op(b) as strides into the batch slice.
  const [asi, ask] = attrs.transA ? [1, M] : [K, 1];
  const [bsk, bsn] = attrs.transB ? [1, K] : [N, 1];
  const y = alloc(B * M * N);
  const acc = new Float64Array(N);
  for (let bi = 0; bi < B; bi++) {
    const ao = bi * M * K;
    const bo = Bb === 1 ? 0 : bi * K * N;
    for (let i = 0; i < M; i++) {
      if (biasd) for (let n = 0; n < N; n++) acc[n] = biasd[n]!;
      else acc.fill(0);
      for (let k = 0; k < K; k++) {
        const av = ad[ao + i * asi + k * ask]!;
        if (av === 0) continue;
        const bk = bo + k * bsk;
        for (let n = 0; n < N; n++) acc[n] += av * bd[bk + n * bsn]!;
      }
      y.set(acc, (bi * M + i) * N);
    }
  }
  return out([B, M, N], y);
}

function checkIndex(index: Int32Array, rows: number, op: string): void {
  for (let i = 0; i < index.length; i++) check(index[i]! >= 0 && index[i]! < rows, `${op}: index ${index[i]} at position ${i} is not a row of [0, ${rows})`);
}

export function gatherRows(table: KTensor, a: { index: Int32Array }): KTensor {
  check(table.shape.length === 2, `gatherRows: table must be [R, C], got [${table.shape.join(', ')}]`);
  const [R, C] = table.shape as [number, number];
  const idx = a.index;
  checkIndex(idx, R, 'gatherRows');
  const td = f32(table);
  const y = alloc(idx.length * C);
  for (let r = 0; r < idx.length; r++) y.set(td.subarray(idx[r]! * C, idx[r]! * C + C), r * C);
  return out([idx.length, C], y);
}

export function scatterAddRows(dy: KTensor, a: { index: Int32Array; rows: number }): KTensor {
  const idx = a.index;
  const n = idx.length;
  check(dy.shape.length === 2 && dy.shape[0] === n, `scatterAddRows: dy must be [${n}, C], got [${dy.shape.join(', ')}]`);
  const C = dy.shape[1]!;
  checkIndex(idx, a.rows, 'scatterAddRows');
  const dyd = f32(dy);
  const acc = new Float64Array(a.rows * C);
  for (let r = 0; r < n; r++) {
    const o = idx[r]! * C;
    for (let c = 0; c < C; c++) acc[o + c] += dyd[r * C + c]!;
  }
  const y = alloc(a.rows * C);
  y.set(acc);
  return out([a.rows, C], y);
}
