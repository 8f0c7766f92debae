/**
 * ONNX export by tracing: the model runs its ordinary forward pass on a recording backend
 * ('onnx-trace') whose kernels emit ONNX nodes instead of computing. The graph is therefore exactly the
 * sequence of kernels our engine runs, independent of the module tree. Parameters become initializers
 * named by their (official PyTorch) state-dict keys. Spatial dims (and the batch) are symbolic, so the
 * exported model accepts any valid input size. Opset 17.
 */
import type { Backend } from '../engine/backend.js';
import type { Kernels, KTensor } from '../engine/kernels.js';
import { hasBackend, registerBackend, registerKernels, getBackendName, setBackend } from '../engine/registry.js';
import { tensor } from '../engine/creation.js';
import { noGrad } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
import { encodeOnnxModel, floatTensor, int64Tensor, ONNX_FLOAT, type OnnxAttr, type OnnxNode, type OnnxTensor } from './onnx-proto.js';

export const ONNX_OPSET = 17;
const TRACE = 'onnx-trace';

interface TraceHandle {
  id: number;
  /** host values for constants (uploads, zeros, parameters); undefined for traced intermediates */
  data?: Float32Array;
  name?: string;
  /** set for outputs that exist in our kernels but have no ONNX counterpart (e.g. instance-norm rstd) */
  unsupported?: string;
  /**
   * The value's shape in the ONNX graph. Ops hand kernels reshaped views of a storage (linear's
   * [1, rows, in], softmaxLast's [rows, C, 1], concat's [outer, C, inner]); when a kernel asks for a
   * shape other than this, `ref` emits a Reshape. Unset for the dynamic input: UX-Net never views it.
   */
  shape?: readonly number[];
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

class TraceState {
  nodes: OnnxNode[] = [];
  initializers: OnnxTensor[] = [];
  emitted = new Set<TraceHandle>();
  names = new Map<TraceHandle, string>();
  counter = 0;
  constCounter = 0;
  input: TraceHandle | null = null;
  private reshaped = new Map<string, string>();

  fresh(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }
  /** The graph name of a kernel input, emitting an initializer for constants on first use. */
  ref(t: KTensor): string {
    const h = t.data as TraceHandle;
    if (h.unsupported) throw new Error(`ONNX export: ${h.unsupported} is used by the graph but has no ONNX counterpart`);
    let name: string;
    if (h === this.input) name = h.name!;
    else if (h.data) {
      if (!this.emitted.has(h)) {
        h.name ??= `const_${this.constCounter++}`;
        h.shape ??= [...t.shape];
        this.initializers.push(floatTensor(h.name, h.shape, h.data));
        this.emitted.add(h);
      }
      name = h.name!;
    } else {
      if (!h.name) throw new Error('ONNX export: internal error, a traced value has no name');
      name = h.name;
    }
    if (!h.shape || sameShape(h.shape, t.shape)) return name;
    const key = `${name}|${t.shape.join(',')}`;
    let r = this.reshaped.get(key);
    if (!r) {
      r = this.fresh('view');
      this.node('Reshape', [name, this.ints(t.shape)], [r]);
      this.reshaped.set(key, r);
    }
    return r;
  }
  out(shape: readonly number[], prefix: string): KTensor {
    const h: TraceHandle = { id: ++handleIds, name: this.fresh(prefix), shape: [...shape] };
    return { shape: [...shape], data: h };
  }
  node(opType: string, inputs: string[], outputs: string[], attrs?: OnnxAttr[]): void {
    this.nodes.push({ opType, inputs, outputs, attrs });
  }
  scalar(v: number): string {
    const name = `scalar_${this.constCounter++}`;
    this.initializers.push(floatTensor(name, [], new Float32Array([v])));
    return name;
  }
  ints(v: readonly number[]): string {
    const name = `ints_${this.constCounter++}`;
    this.initializers.push(int64Tensor(name, v));
    return name;
  }
}

let handleIds = 0;
let state: TraceState | null = null;

function st(): TraceState {
  if (!state) throw new Error('ONNX export: the trace backend is only usable inside exportOnnx()');
  return state;
}

const traceBackend: Backend = {
  name: TRACE,
  upload: (data: Float32Array): TraceHandle => ({ id: ++handleIds, data: data.slice() }),
  zeros: (size: number): TraceHandle => ({ id: ++handleIds, data: new Float32Array(size) }),
  read(handle: unknown, size: number): Promise<Float32Array> {
    return Promise.resolve(this.readSync(handle, size));
  },
  readSync(handle: unknown, size: number): Float32Array {
    const h = handle as TraceHandle;
    if (!h.data) throw new Error('ONNX export: the model reads a computed value on the host while tracing; it cannot be exported as a static graph');
    return h.data.slice(0, size);
  },
  free: () => {},
  write(handle: unknown, data: Float32Array): void {
    const h = handle as TraceHandle;
    if (!h.data) throw new Error('ONNX export: write into a traced value');
    h.data.set(data);
  },
};

function unsupported(name: string): never {
  throw new Error(`ONNX export: kernel '${name}' is not part of an inference graph`);
}

const pads = (p: readonly number[]): number[] => [...p, ...p];

const traceKernels: Partial<Kernels> = {
  conv3d(x, w, bias, a) {
    const s = st();
    const [N, , ...sp] = x.shape as number[];
    const k = w.shape.slice(2);
    const outSp = sp.map((d, i) => Math.floor((d + 2 * a.padding[i]! - k[i]!) / a.stride[i]!) + 1);
    const y = s.out([N!, w.shape[0]!, ...outSp], 'conv');
    const ins = [s.ref(x), s.ref(w)];
    if (bias) ins.push(s.ref(bias));
    s.node(
      'Conv',
      ins,
      [(y.data as TraceHandle).name!],
      [
        { name: 'group', type: 'int', value: a.groups },
        { name: 'kernel_shape', type: 'ints', value: k },
        { name: 'pads', type: 'ints', value: pads(a.padding) },
        { name: 'strides', type: 'ints', value: [...a.stride] },
      ],
    );
    return y;
  },
  // In an inference graph, conv3dGradInput is conv_transpose3d's forward.
  conv3dGradInput(dy, w, a) {
    const s = st();
    if (a.groups !== 1) unsupported('conv3dGradInput with groups');
    const y = s.out(a.inputShape, 'convT');
    s.node(
      'ConvTranspose',
      [s.ref(dy), s.ref(w)],
      [(y.data as TraceHandle).name!],
      [
        { name: 'kernel_shape', type: 'ints', value: w.shape.slice(2) },
        { name: 'pads', type: 'ints', value: pads(a.padding) },
        { name: 'strides', type: 'ints', value: [...a.stride] },
      ],
    );
    return y;
  },
  instanceNorm(x, a) {
    const s = st();
    const C = x.shape[1]!;
    const y = s.out(x.shape, 'inorm');
    const scale = s.ref({ shape: [C], data: { id: ++handleIds, data: new Float32Array(C).fill(1) } });
    const bias = s.ref({ shape: [C], data: { id: ++handleIds, data: new Float32Array(C) } });
    s.node('InstanceNormalization', [s.ref(x), scale, bias], [(y.data as TraceHandle).name!], [{ name: 'epsilon', type: 'float', value: a.eps }]);
    return [y, { shape: [x.shape[0]!, C], data: { id: ++handleIds, unsupported: 'instance-norm rstd' } }];
  },
  layerNorm(x, w, b, a) {
    const s = st();
    const y = s.out(x.shape, 'lnorm');
    const yn = (y.data as TraceHandle).name!;
    const stat = { id: ++handleIds, unsupported: 'layer-norm statistics' };
    const statShape = a.channelsLast ? x.shape.slice(0, -1) : [x.shape[0]!, ...x.shape.slice(2)];
    const attrs: OnnxAttr[] = [
      { name: 'axis', type: 'int', value: -1 },
      { name: 'epsilon', type: 'float', value: a.eps },
    ];
    if (a.channelsLast) {
      s.node('LayerNormalization', [s.ref(x), s.ref(w), s.ref(b)], [yn], attrs);
    } else {
      const r = x.shape.length;
      const toLast = [0, ...Array.from({ length: r - 2 }, (_, i) => i + 2), 1];
      const back = [0, r - 1, ...Array.from({ length: r - 2 }, (_, i) => i + 1)];
      const t1 = s.fresh('ln_in');
      const t2 = s.fresh('ln_out');
      s.node('Transpose', [s.ref(x)], [t1], [{ name: 'perm', type: 'ints', value: toLast }]);
      s.node('LayerNormalization', [t1, s.ref(w), s.ref(b)], [t2], attrs);
      s.node('Transpose', [t2], [yn], [{ name: 'perm', type: 'ints', value: back }]);
    }
    return [y, { shape: statShape, data: stat }, { shape: statShape, data: { ...stat, id: ++handleIds } }];
  },
  gelu(x) {
    // Exact GELU: 0.5·x·(1 + erf(x/√2)) (Gelu itself needs opset 20).
    const s = st();
    const y = s.out(x.shape, 'gelu');
    const xn = s.ref(x);
    const a = s.fresh('gelu_a');
    const e = s.fresh('gelu_erf');
    const p = s.fresh('gelu_p');
    const h = s.fresh('gelu_h');
    s.node('Mul', [xn, s.scalar(Math.SQRT1_2)], [a]);
    s.node('Erf', [a], [e]);
    s.node('Add', [e, s.scalar(1)], [p]);
    s.node('Mul', [xn, s.scalar(0.5)], [h]);
    s.node('Mul', [h, p], [(y.data as TraceHandle).name!]);
    return y;
  },
  leakyRelu(x, a) {
    const s = st();
    const y = s.out(x.shape, 'lrelu');
    s.node('LeakyRelu', [s.ref(x)], [(y.data as TraceHandle).name!], [{ name: 'alpha', type: 'float', value: a.slope }]);
    return y;
  },
  add(a, b) {
    const s = st();
    const y = s.out(a.shape, 'add');
    s.node('Add', [s.ref(a), s.ref(b)], [(y.data as TraceHandle).name!]);
    return y;
  },
  scale(x, a) {
    const s = st();
    const y = s.out(x.shape, 'scale');
    s.node('Mul', [s.ref(x), s.scalar(a.factor)], [(y.data as TraceHandle).name!]);
    return y;
  },
  mulChannel(x, sc) {
    const s = st();
    const y = s.out(x.shape, 'mulc');
    const C = x.shape[1]!;
    const r = s.fresh('mulc_s');
    s.node('Reshape', [s.ref(sc), s.ints([C, ...Array(x.shape.length - 2).fill(1)])], [r]);
    s.node('Mul', [s.ref(x), r], [(y.data as TraceHandle).name!]);
    return y;
  },
  concatChannels(xs) {
    const s = st();
    const shape = [...xs[0]!.shape];
    shape[1] = xs.reduce((a, t) => a + t.shape[1]!, 0);
    const y = s.out(shape, 'concat');
    s.node(
      'Concat',
      xs.map((t) => s.ref(t)),
      [(y.data as TraceHandle).name!],
      [{ name: 'axis', type: 'int', value: 1 }],
    );
    return y;
  },
  sliceChannels(x, a) {
    const s = st();
    const shape = [...x.shape];
    shape[1] = a.end - a.start;
    const y = s.out(shape, 'slice');
    s.node('Slice', [s.ref(x), s.ints([a.start]), s.ints([a.end]), s.ints([1])], [(y.data as TraceHandle).name!]);
    return y;
  },
  softmax(x) {
    const s = st();
    const y = s.out(x.shape, 'softmax');
    s.node('Softmax', [s.ref(x)], [(y.data as TraceHandle).name!], [{ name: 'axis', type: 'int', value: 1 }]);
    return y;
  },
  // The transformer kernels (SwinUNETR, UNETR). Their graphs have static shapes (window partition
  // reshapes depend on the volume size), so those networks export for one input size.
  matmul(a, b, bias, t) {
    const s = st();
    const [B, ar, ac] = a.shape as [number, number, number];
    const [Bb, br, bc] = b.shape as [number, number, number];
    const M = t.transA ? ac : ar;
    const N = t.transB ? br : bc;
    const y = s.out([B, M, N], 'matmul');
    let an = s.ref(a);
    if (t.transA) {
      const n = s.fresh('mm_at');
      s.node('Transpose', [an], [n], [{ name: 'perm', type: 'ints', value: [0, 2, 1] }]);
      an = n;
    }
    // A matrix shared by every batch entry stays 2-D so that MatMul broadcasts it.
    let bn = Bb === 1 && B !== 1 ? s.ref({ shape: [br, bc], data: b.data }) : s.ref(b);
    if (t.transB) {
      const n = s.fresh('mm_bt');
      s.node('Transpose', [bn], [n], [{ name: 'perm', type: 'ints', value: Bb === 1 && B !== 1 ? [1, 0] : [0, 2, 1] }]);
      bn = n;
    }
    const yn = (y.data as TraceHandle).name!;
    if (!bias) s.node('MatMul', [an, bn], [yn]);
    else {
      const p = s.fresh('mm');
      s.node('MatMul', [an, bn], [p]);
      s.node('Add', [p, s.ref(bias)], [yn]);
    }
    return y;
  },
  stridedCopy(x, a) {
    const s = st();
    const y = s.out(a.shape, 'copy');
    const yn = (y.data as TraceHandle).name!;
    const xs = x.shape;
    const cs = contiguous(xs);
    // permute: every output dim is an input dim with its own stride
    if (a.offset === 0 && a.shape.length === xs.length) {
      const used = new Set<number>();
      const perm = a.shape.map((n, i) => {
        const d = xs.findIndex((m, j) => !used.has(j) && m === n && cs[j] === a.strides[i]);
        if (d >= 0) used.add(d);
        return d;
      });
      if (perm.every((d) => d >= 0)) {
        s.node('Transpose', [s.ref(x)], [yn], [{ name: 'perm', type: 'ints', value: perm }]);
        return y;
      }
    }
    // strided slice: dim d starts at a_d with step strides[d] / cs[d]
    if (a.shape.length === xs.length && a.strides.every((v, d) => v % cs[d]! === 0)) {
      let rem = a.offset;
      const starts = cs.map((c) => {
        const v = Math.floor(rem / c);
        rem -= v * c;
        return v;
      });
      const steps = a.strides.map((v, d) => v / cs[d]!);
      if (rem === 0 && starts.every((v, d) => v + (a.shape[d]! - 1) * steps[d]! < xs[d]!)) {
        const ends = starts.map((v, d) => v + (a.shape[d]! - 1) * steps[d]! + 1);
        s.node('Slice', [s.ref(x), s.ints(starts), s.ints(ends), s.ints(xs.map((_, d) => d)), s.ints(steps)], [yn]);
        return y;
      }
    }
    return unsupported('stridedCopy with this layout');
  },
  // In an inference graph stridedScatter is zero padding (pad's forward): x placed at an offset of a larger contiguous grid.
  stridedScatter(x, a) {
    const s = st();
    const cs = contiguous(a.shape);
    if (a.shape.length !== x.shape.length || a.strides.some((v, d) => v !== cs[d])) return unsupported('stridedScatter other than zero padding');
    let rem = a.offset;
    const begin = cs.map((c) => {
      const v = Math.floor(rem / c);
      rem -= v * c;
      return v;
    });
    const end = a.shape.map((n, d) => n - x.shape[d]! - begin[d]!);
    if (rem !== 0 || end.some((v) => v < 0)) return unsupported('stridedScatter other than zero padding');
    const y = s.out(a.shape, 'pad');
    s.node('Pad', [s.ref(x), s.ints([...begin, ...end])], [(y.data as TraceHandle).name!]);
    return y;
  },
  roll(x, a) {
    // torch.roll as slices and a concat per rolled dim: y = cat(x[n−s:], x[:n−s]).
    const s = st();
    let cur = s.ref(x);
    a.dims.forEach((d, k) => {
      const n = x.shape[d]!;
      const sh = a.shifts[k]!;
      const tail = s.fresh('roll_t');
      const head = s.fresh('roll_h');
      s.node('Slice', [cur, s.ints([n - sh]), s.ints([n]), s.ints([d])], [tail]);
      s.node('Slice', [cur, s.ints([0]), s.ints([n - sh]), s.ints([d])], [head]);
      const next = s.fresh('roll');
      s.node('Concat', [tail, head], [next], [{ name: 'axis', type: 'int', value: d }]);
      cur = next;
    });
    const y = s.out(x.shape, 'roll');
    s.node('Identity', [cur], [(y.data as TraceHandle).name!]);
    return y;
  },
  broadcastBinary(a, b, t) {
    const s = st();
    const r = Math.max(a.shape.length, b.shape.length);
    const pa = [...Array(r - a.shape.length).fill(1), ...a.shape];
    const pb = [...Array(r - b.shape.length).fill(1), ...b.shape];
    const y = s.out(
      pa.map((d, i) => Math.max(d, pb[i]!)),
      t.op,
    );
    s.node(t.op === 'add' ? 'Add' : t.op === 'sub' ? 'Sub' : 'Mul', [s.ref(a), s.ref(b)], [(y.data as TraceHandle).name!]);
    return y;
  },
  // Fused attention as the standard ONNX subgraph (the head columns sliced and transposed, MatMul,
  // scales, bias and mask adds, Softmax over the last axis, MatMul, back to token-major); the
  // log-sum-exp output only serves the gradient.
  attention(q, k, v, bias, mask, a) {
    const s = st();
    const [B, N] = q.shape as [number, number];
    const M = k.shape[1]!;
    const { heads: H, headDim: D } = a;
    const head = (x: KTensor, col: number, T: number, perm: number[], tag: string): string => {
      const cols = s.fresh(`${tag}_cols`);
      s.node('Slice', [s.ref(x), s.ints([col]), s.ints([col + H * D]), s.ints([2])], [cols]);
      const split = s.fresh(`${tag}_heads`);
      s.node('Reshape', [cols, s.ints([B, T, H, D])], [split]);
      const t = s.fresh(tag);
      s.node('Transpose', [split], [t], [{ name: 'perm', type: 'ints', value: perm }]);
      return t;
    };
    const step = (op: string, ins: string[], tag: string, attrs?: OnnxAttr[]): string => {
      const n = s.fresh(tag);
      s.node(op, ins, [n], attrs);
      return n;
    };
    let qh = head(q, a.qCol, N, [0, 2, 1, 3], 'attn_q');
    if (a.qScale !== 1) qh = step('Mul', [qh, s.scalar(a.qScale)], 'attn_qs');
    let sc = step('MatMul', [qh, head(k, a.kCol, M, [0, 2, 3, 1], 'attn_kt')], 'attn_scores');
    if (a.sScale !== 1) sc = step('Mul', [sc, s.scalar(a.sScale)], 'attn_scaled');
    if (bias) sc = step('Add', [sc, s.ref(bias)], 'attn_bias');
    if (mask) {
      const nW = mask.shape[0]!;
      const win = step('Reshape', [sc, s.ints([B / nW, nW, H, N, M])], 'attn_win');
      const masked = step('Add', [win, s.ref({ shape: [nW, 1, N, M], data: mask.data })], 'attn_masked');
      sc = step('Reshape', [masked, s.ints([B, H, N, M])], 'attn_unwin');
    }
    const p = step('Softmax', [sc], 'attn_p', [{ name: 'axis', type: 'int', value: -1 }]);
    const o = step('MatMul', [p, head(v, a.vCol, M, [0, 2, 1, 3], 'attn_v')], 'attn_o');
    const ot = step('Transpose', [o], 'attn_ot', [{ name: 'perm', type: 'ints', value: [0, 2, 1, 3] }]);
    const y = s.out([B, N, H * D], 'attention');
    s.node('Reshape', [ot, s.ints([B, N, H * D])], [(y.data as TraceHandle).name!]);
    return [y, { shape: [B, H, N], data: { id: ++handleIds, unsupported: 'attention log-sum-exp' } }];
  },
  gatherRows(table, a) {
    const s = st();
    const y = s.out([a.index.length, table.shape[1]!], 'gather');
    s.node('Gather', [s.ref(table), s.ints([...a.index])], [(y.data as TraceHandle).name!], [{ name: 'axis', type: 'int', value: 0 }]);
    return y;
  },
};

function contiguous(shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    out[d] = acc;
    acc *= shape[d]!;
  }
  return out;
}

function ensureTraceBackend(): void {
  if (hasBackend(TRACE)) return;
  registerBackend(traceBackend, -100);
  registerKernels(TRACE, traceKernels);
}

/** What exportOnnx needs from a model: a module whose parameters can be built on the trace backend. */
export interface TraceableModel {
  forward(x: Tensor): Tensor;
  namedParameters(): [string, Tensor][];
}

export interface OnnxExportOptions {
  /** Builds the model (on the current backend) with its weights loaded. Called with the trace backend selected. */
  build: () => TraceableModel;
  /** [inChans] and a valid trace input size (any valid size: the exported graph has symbolic dims). */
  inChans: number;
  outChans: number;
  traceSpatial: readonly [number, number, number];
  docString?: string;
  /** Export for exactly the trace size (fixed dims): needed by networks whose graph depends on the volume size. */
  staticShape?: boolean;
}

/** Traces the model's forward pass and returns the ONNX model bytes (opset 17, dynamic N, D, H, W). */
export function exportOnnx(opts: OnnxExportOptions): Uint8Array {
  ensureTraceBackend();
  const prev = getBackendName();
  const s = new TraceState();
  state = s;
  try {
    setBackend(TRACE);
    const model = opts.build();
    for (const [name, p] of model.namedParameters()) Object.assign(p.storage.handle as TraceHandle, { name, shape: [...p.shape] });
    const x = tensor(new Float32Array(opts.inChans * opts.traceSpatial[0] * opts.traceSpatial[1] * opts.traceSpatial[2]), [1, opts.inChans, ...opts.traceSpatial]);
    const xh = x.storage.handle as TraceHandle;
    xh.name = 'input';
    delete xh.data;
    if (opts.staticShape) xh.shape = [...x.shape];
    s.input = xh;
    const y = noGrad(() => model.forward(x));
    const yname = s.ref(y.info);
    s.node('Identity', [yname], ['logits']);
    const dims = (c: number) => (opts.staticShape ? [1, c, ...opts.traceSpatial] : ['N', c, 'D', 'H', 'W']);
    return encodeOnnxModel({
      producer: 'uxnet3d',
      opset: ONNX_OPSET,
      graphName: 'uxnet',
      nodes: s.nodes,
      initializers: s.initializers,
      inputs: [{ name: 'input', elemType: ONNX_FLOAT, dims: [...dims(opts.inChans)] }],
      outputs: [{ name: 'logits', elemType: ONNX_FLOAT, dims: [...dims(opts.outChans)] }],
      docString: opts.docString,
    });
  } finally {
    state = null;
    setBackend(prev);
  }
}
