import type { KTensor } from './kernels.js';
import { runKernel, wrap } from './op.js';

/**
 * `linearGelu` from the matmul and gelu kernels, for backends without a fused GEMM epilogue (reference,
 * webgpu); the pre-activation is freed at once unless the caller keeps it for the gradient.
 */
export function linearGeluComposite(be: string, x: KTensor, w: KTensor, bias: KTensor | null, keepPre: boolean): [KTensor, KTensor | null] {
  const [M, K] = x.shape as [number, number];
  const N = w.shape[0]!;
  const pre = runKernel('matmul', be, { shape: [1, M, K], data: x.data }, { shape: [1, N, K], data: w.data }, bias, { transA: false, transB: true });
  const flat = { shape: [M, N], data: pre.data };
  const y = runKernel('gelu', be, flat);
  if (keepPre) return [y, flat];
  wrap(flat, be).dispose();
  return [y, null];
}
