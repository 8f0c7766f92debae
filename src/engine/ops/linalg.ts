import type { KTensor } from '../kernels.js';
import { backendOf, record, wrap, runKernel } from '../op.js';
import { hasKernel } from '../registry.js';
import { isGradEnabled } from '../scope.js';
import { gelu } from './activations.js';
import { shapeString, sizeOf, type Tensor } from '../tensor.js';

/** A kernel-level view of t's storage under another shape of the same size (no copy). */
function view(t: Tensor, shape: readonly number[]): KTensor {
  return { shape, data: t.info.data };
}

/** One batched GEMM call; the result is relabelled to `outShape` (same size). */
function mm(be: string, a: KTensor, b: KTensor, bias: Tensor | null, transA: boolean, transB: boolean, outShape: readonly number[]): Tensor {
  const y = runKernel('matmul', be, a, b, bias ? bias.info : null, { transA, transB });
  return wrap({ shape: outShape, data: y.data }, be);
}

/**
 * nn.Linear: y = x·wᵀ + b for x [..., in], w [out, in] (PyTorch's layout), b [out] or null -> [..., out].
 * All leading dims are one GEMM of (rows × in)·(in × out).
 */
export function linear(x: Tensor, w: Tensor, b: Tensor | null = null): Tensor {
  if (w.rank !== 2) throw new Error(`linear: weight must be [out, in], got ${shapeString(w.shape)}`);
  const [outF, inF] = w.shape as [number, number];
  if (x.rank < 1 || x.shape[x.rank - 1] !== inF) throw new Error(`linear: input ${shapeString(x.shape)} must end in ${inF} features for weight ${shapeString(w.shape)}`);
  if (b && (b.rank !== 1 || b.shape[0] !== outF)) throw new Error(`linear: bias ${shapeString(b.shape)} must have shape [${outF}]`);
  const be = backendOf('linear', x, w, b);
  const rows = x.size / inF;
  const outShape = [...x.shape.slice(0, -1), outF];
  const y = mm(be, view(x, [1, rows, inF]), view(w, [1, outF, inF]), b, false, true, outShape);
  return record(y, 'linear', [x, w, b], [x, w], (dy, [xs, ws], needs) => [
    needs[0] ? mm(be, view(dy, [1, rows, outF]), view(ws!, [1, outF, inF]), null, false, false, xs!.shape) : null,
    needs[1] ? mm(be, view(dy, [1, rows, outF]), view(xs!, [1, rows, inF]), null, true, false, [outF, inF]) : null,
    needs[2] ? wrap(runKernel('sumToShape', be, view(dy, [rows, outF]), { shape: [outF] }), be) : null,
  ]);
}

/**
 * gelu(linear(x, w, b)) (the Linear→GELU of transformer MLPs) as one kernel where the backend has it: the
 * GELU runs on each GEMM output block while it is in cache instead of in a second pass over the whole
 * activation. Same values and gradients as the composition. The pre-activation is kept only when a
 * gradient will be taken (as the unfused gelu would save it); a backend without the kernel (the ONNX
 * tracer) gets the two ops.
 */
export function linearGelu(x: Tensor, w: Tensor, b: Tensor | null = null): Tensor {
  const be = backendOf('linearGelu', x, w, b);
  if (!hasKernel('linearGelu', be)) return gelu(linear(x, w, b));
  if (w.rank !== 2) throw new Error(`linearGelu: weight must be [out, in], got ${shapeString(w.shape)}`);
  const [outF, inF] = w.shape as [number, number];
  if (x.rank < 1 || x.shape[x.rank - 1] !== inF) throw new Error(`linearGelu: input ${shapeString(x.shape)} must end in ${inF} features for weight ${shapeString(w.shape)}`);
  if (b && (b.rank !== 1 || b.shape[0] !== outF)) throw new Error(`linearGelu: bias ${shapeString(b.shape)} must have shape [${outF}]`);
  const rows = x.size / inF;
  const outShape = [...x.shape.slice(0, -1), outF];
  const keepPre = isGradEnabled() && [x, w, b].some((t) => t?.requiresGrad);
  const [yk, prek] = runKernel('linearGelu', be, view(x, [rows, inF]), view(w, [outF, inF]), b ? b.info : null, { keepPre });
  const y = wrap({ shape: outShape, data: yk.data }, be);
  if (!prek) return y;
  const pre = wrap({ shape: [rows, outF], data: prek.data }, be);
  const out = record(y, 'linearGelu', [x, w, b], [x, w, pre], (dy, [xs, ws, ps], needs) => {
    const dh = wrap(runKernel('geluGrad', be, view(dy, [rows, outF]), ps!.info), be);
    try {
      return [
        needs[0] ? mm(be, view(dh, [1, rows, outF]), view(ws!, [1, outF, inF]), null, false, false, xs!.shape) : null,
        needs[1] ? mm(be, view(dh, [1, rows, outF]), view(xs!, [1, rows, inF]), null, true, false, [outF, inF]) : null,
        needs[2] ? wrap(runKernel('sumToShape', be, view(dh, [rows, outF]), { shape: [outF] }), be) : null,
      ];
    } finally {
      dh.dispose();
    }
  });
  pre.dispose(); // the autograd node holds its own alias
  return out;
}

/**
 * Batched matrix product: a [...B, M, K] · b [...B, K, N] (b [...B, N, K] with transB) -> [...B, M, N].
 * b has either a's leading batch dims or none (rank 2: one matrix shared by every batch entry).
 */
export function matmul(a: Tensor, b: Tensor, opts: { transB?: boolean } = {}): Tensor {
  const transB = opts.transB ?? false;
  if (a.rank < 2 || b.rank < 2) throw new Error(`matmul: operands need at least 2 dimensions, got ${shapeString(a.shape)} and ${shapeString(b.shape)}`);
  const batch = a.shape.slice(0, -2);
  const [M, K] = a.shape.slice(-2) as [number, number];
  const [b1, b2] = b.shape.slice(-2) as [number, number];
  const [Kb, N] = transB ? [b2, b1] : [b1, b2];
  if (Kb !== K) throw new Error(`matmul: ${shapeString(a.shape)} and ${shapeString(b.shape)}${transB ? ' (transB)' : ''} differ in the inner dimension (${K} vs ${Kb})`);
  const shared = b.rank === 2;
  if (!shared && (b.rank !== a.rank || b.shape.slice(0, -2).some((d, i) => d !== batch[i]))) {
    throw new Error(`matmul: batch dimensions of ${shapeString(a.shape)} and ${shapeString(b.shape)} differ (b must have a's batch dims or be 2-D)`);
  }
  const be = backendOf('matmul', a, b);
  const B = sizeOf(batch);
  const Bb = shared ? 1 : B;
  const aView = (t: Tensor) => view(t, [B, M, K]);
  const bView = (t: Tensor) => view(t, [Bb, b1, b2]);
  const y = mm(be, aView(a), bView(b), null, false, transB, [...batch, M, N]);
  return record(y, 'matmul', [a, b], [a, b], (dy, [as, bs], needs) => {
    const dyv = view(dy, [B, M, N]);
    let db: Tensor | null = null;
    if (needs[1]) {
      // With a shared b, every batch entry's contribution sums into one matrix: one GEMM over all rows.
      const dyb = shared ? view(dy, [1, B * M, N]) : dyv;
      const ab = shared ? view(as!, [1, B * M, K]) : aView(as!);
      db = transB ? mm(be, dyb, ab, null, true, false, bs!.shape) : mm(be, ab, dyb, null, true, false, bs!.shape);
    }
    return [needs[0] ? mm(be, dyv, bView(bs!), null, false, !transB, as!.shape) : null, db];
  });
}
