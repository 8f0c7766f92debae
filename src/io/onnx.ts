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
}

class TraceState {
  nodes: OnnxNode[] = [];
  initializers: OnnxTensor[] = [];
  emitted = new Set<TraceHandle>();
  names = new Map<TraceHandle, string>();
  counter = 0;
  constCounter = 0;
  input: TraceHandle | null = null;

  fresh(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }
  /** The graph name of a kernel input, emitting an initializer for constants on first use. */
  ref(t: KTensor): string {
    const h = t.data as TraceHandle;
    if (h.unsupported) throw new Error(`ONNX export: ${h.unsupported} is used by the graph but has no ONNX counterpart`);
    if (h === this.input) return h.name!;
    if (h.data) {
      if (!this.emitted.has(h)) {
        const name = h.name ?? `const_${this.constCounter++}`;
        h.name = name;
        this.initializers.push(floatTensor(name, t.shape, h.data));
        this.emitted.add(h);
      }
      return h.name!;
    }
    if (!h.name) throw new Error('ONNX export: internal error, a traced value has no name');
    return h.name;
  }
  out(shape: readonly number[], prefix: string): KTensor {
    const h: TraceHandle = { id: ++handleIds, name: this.fresh(prefix) };
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
    s.node('Conv', ins, [(y.data as TraceHandle).name!], [
      { name: 'group', type: 'int', value: a.groups },
      { name: 'kernel_shape', type: 'ints', value: k },
      { name: 'pads', type: 'ints', value: pads(a.padding) },
      { name: 'strides', type: 'ints', value: [...a.stride] },
    ]);
    return y;
  },
  // In an inference graph, conv3dGradInput is conv_transpose3d's forward.
  conv3dGradInput(dy, w, a) {
    const s = st();
    if (a.groups !== 1) unsupported('conv3dGradInput with groups');
    const y = s.out(a.inputShape, 'convT');
    s.node('ConvTranspose', [s.ref(dy), s.ref(w)], [(y.data as TraceHandle).name!], [
      { name: 'kernel_shape', type: 'ints', value: w.shape.slice(2) },
      { name: 'pads', type: 'ints', value: pads(a.padding) },
      { name: 'strides', type: 'ints', value: [...a.stride] },
    ]);
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
    const attrs: OnnxAttr[] = [{ name: 'axis', type: 'int', value: -1 }, { name: 'epsilon', type: 'float', value: a.eps }];
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
    s.node('Concat', xs.map((t) => s.ref(t)), [(y.data as TraceHandle).name!], [{ name: 'axis', type: 'int', value: 1 }]);
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
};

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
    for (const [name, p] of model.namedParameters()) (p.storage.handle as TraceHandle).name = name;
    const x = tensor(new Float32Array(opts.inChans * opts.traceSpatial[0] * opts.traceSpatial[1] * opts.traceSpatial[2]), [1, opts.inChans, ...opts.traceSpatial]);
    const xh = x.storage.handle as TraceHandle;
    xh.name = 'input';
    delete xh.data;
    s.input = xh;
    const y = noGrad(() => model.forward(x));
    const yname = s.ref(y.info);
    s.node('Identity', [yname], ['logits']);
    const dims = (c: number) => ['N', c, 'D', 'H', 'W'] as const;
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
