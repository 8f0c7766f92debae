/** One benchmark workload in its own process (see bench.ts): prints `RESULT {json}`. */
import '../src/backends/index.js';
import type { KTensor, Kernels } from '../src/engine/kernels.js';
import { getBackendName, setBackend } from '../src/engine/registry.js';
import { setKernelObserver } from '../src/engine/run-kernel.js';
import { tensor } from '../src/engine/creation.js';
import { noGrad, tidy } from '../src/engine/scope.js';
import { UXNet } from '../src/models/uxnet.js';
import { createNetwork, resolveNetwork, type SegmentationNetwork } from '../src/models/registry.js';
import { DiceCELoss } from '../src/train/dice-ce-loss.js';
import { AdamW } from '../src/train/adamw.js';
import { exportOnnx } from '../src/io/onnx.js';
import { encodeOnnxModel, floatTensor, ONNX_FLOAT, type OnnxAttr, type OnnxNode, type OnnxTensor } from '../src/io/onnx-proto.js';
import { nativeAddon, nativeInfo } from '../src/backends/native/index.js';
import type { WorkerResult } from './bench.js';

const [, , workload, impl, repsArg, backendArg, configArg] = process.argv as [string, string, string, 'ours' | 'ort', string, string | undefined, string | undefined];
const reps = Number(repsArg) || 3;
/** 'native' (default) or 'webgpu' */
const backend = backendArg ?? 'native';
const PAPER_CONFIG = { inChans: 1, outChans: 13, depths: [2, 2, 2, 2], featSize: [48, 96, 192, 384], hiddenSize: 768 };
/** `--tiny`: the fixture-sized network (8/16/32/64, hidden 128), for slow devices such as SwiftShader. */
const TINY_CONFIG = { inChans: 1, outChans: 13, depths: [2, 2, 2, 2], featSize: [8, 16, 32, 64], hiddenSize: 128 };
const PAPER = configArg === 'tiny' ? TINY_CONFIG : PAPER_CONFIG;
/**
 * The comparators at the official FLARE calls of the 3D UX-Net repository (baselines_param_counts.json:
 * 62,186,855 and 92,783,893 parameters), or small versions with --tiny.
 */
/**
 * nnFormer and TransBTS at the official FLARE configuration (5 classes; TransBTS with the class count
 * from the config), or small ones with `--tiny`. Their inputs are fixed at 96³ (crop_size / img_dim).
 */
const BASELINE_ARGS: Record<string, { paper: Record<string, unknown>; tiny: Record<string, unknown> }> = {
  nnformer: { paper: { input_channels: 1, num_classes: 5 }, tiny: { input_channels: 1, num_classes: 5, embedding_dim: 12, num_heads: [1, 2, 4, 8] } },
  transbts: { paper: { num_classes: 5 }, tiny: { num_classes: 5, unet_base_channels: 8, embedding_dim: 256, hidden_dim: 64 } },
};

function buildNetwork(net: string): { model: SegmentationNetwork; classes: number } {
  if (net === 'uxnet') return { model: new UXNet(PAPER, { seed: 0 }), classes: 13 };
  const baseline = BASELINE_ARGS[net];
  if (baseline) {
    const m = createNetwork(resolveNetwork(net, configArg === 'tiny' ? baseline.tiny : baseline.paper), { seed: 0 });
    // Timing runs are deterministic: no dropout / DropPath masks (their cost is a few elementwise products).
    (m as unknown as { stochastic: { enabled: boolean } }).stochastic.enabled = false;
    return { model: m, classes: 5 };
  }
  const tiny = configArg === 'tiny';
  const args =
    net === 'swin_unetr'
      ? { img_size: [96, 96, 96], in_channels: 1, out_channels: 5, feature_size: tiny ? 12 : 48, use_checkpoint: false }
      : {
          in_channels: 1,
          out_channels: 5,
          img_size: [96, 96, 96],
          feature_size: tiny ? 4 : 16,
          hidden_size: tiny ? 48 : 768,
          mlp_dim: tiny ? 96 : 3072,
          num_heads: tiny ? 4 : 12,
          pos_embed: 'perceptron',
          norm_name: 'instance',
          res_block: true,
          dropout_rate: 0.0,
        };
  return { model: createNetwork(resolveNetwork(net, args), { seed: 0 }), classes: 5 };
}

const threads = Number(process.env.UXNET_THREADS) || (nativeInfo()?.threads ?? 1);

function rand(n: number, scale = 1): Float32Array {
  let s = 0x9e3779b9;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = ((s >>> 0) / 4294967296 - 0.5) * 2 * scale;
  }
  return a;
}
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

async function timeIt(fn: () => Promise<void> | void): Promise<number[]> {
  await fn(); // warm-up
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    ts.push((performance.now() - t0) / 1000);
  }
  return ts;
}

/** Counts conv and GEMM FLOPs (2·MAC) of every conv / matmul / linearGelu kernel call on the current backend. */
let flops = 0;
function countConvFlops(): void {
  const be = getBackendName();
  const macs = (w: readonly number[], outVox: number, n: number) => 2 * w[0]! * w[1]! * w[2]! * w[3]! * w[4]! * outVox * n;
  setKernelObserver((name, backend, args) => {
    if (backend !== be) return;
    if (name === 'conv3d') {
      const [x, w, , a] = args as Parameters<Kernels['conv3d']>;
      const o = x.shape.slice(2).map((d, i) => Math.floor((d + 2 * a.padding[i]! - w.shape[2 + i]!) / a.stride[i]!) + 1);
      flops += macs(w.shape, numel(o), x.shape[0]!);
    } else if (name === 'conv3dFused') {
      // the fused inference conv (concatenated inputs, residual): the same MACs as conv3d on the concatenation
      const [xs, w, , , a] = args as Parameters<Required<Kernels>['conv3dFused']>;
      const x = xs[0]!;
      const o = x.shape.slice(2).map((d, i) => Math.floor((d + 2 * a.padding[i]! - w.shape[2 + i]!) / a.stride[i]!) + 1);
      flops += macs(w.shape, numel(o), x.shape[0]!);
    } else if (name === 'conv3dGradInput' || name === 'conv3dGradInputBias') {
      const [dy, w] = args as Parameters<Kernels['conv3dGradInput']>;
      flops += macs(w.shape, numel(dy.shape.slice(2)), dy.shape[0]!);
    } else if (name === 'conv3dGradWeight') {
      const [, dy, a] = args as Parameters<Kernels['conv3dGradWeight']>;
      flops += macs(a.weightShape, numel(dy.shape.slice(2)), dy.shape[0]!);
    } else if (name === 'matmul') {
      // [B, M, K]·[K, N]: the linear layers and attention products of the transformer networks
      const [a, b, , t] = args as Parameters<Kernels['matmul']>;
      const [bt, r, c] = a.shape as [number, number, number];
      const n = b.shape[t.transB ? b.shape.length - 2 : b.shape.length - 1]!;
      flops += 2 * bt * r * c * n;
    } else if (name === 'linearGelu') {
      // x [M, K] · w [N, K]ᵀ (the fused Linear → GELU of the MLPs)
      const [x, w] = args as Parameters<Kernels['linearGelu']>;
      flops += 2 * x.shape[0]! * x.shape[1]! * w.shape[0]!;
    }
  });
}

function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

// ---------------- ours ----------------
async function oursModel(net: string, size: number, train: boolean): Promise<WorkerResult> {
  countConvFlops();
  const { model, classes } = buildNetwork(net);
  const shape = [1, 1, size, size, size];
  const xd = rand(numel(shape));
  const ld = new Float32Array(numel(shape)).map((_, i) => (i * 7919) % classes);
  let flopPerRun = 0;
  if (!train) {
    model.eval();
    const x = tensor(xd, shape);
    const run = async () => {
      const before = flops;
      const y = noGrad(() => model.forward(x));
      await y.data(); // asynchronous read: the only kind WebGPU has
      y.dispose();
      flopPerRun = flops - before;
    };
    const times = await timeIt(run);
    return { times, gflop: flopPerRun / 1e9, peakRssMb: peakRssMb(), info: await backendInfo() };
  }
  const loss = new DiceCELoss();
  const opt = new AdamW(model.namedParameters(), { lr: 1e-4 });
  const step = async () => {
    const before = flops;
    const terms = tidy(() => {
      const x = tensor(xd, shape);
      const y = tensor(ld, shape);
      const r = loss.forward(model.forward(x), y);
      r.loss.backward();
      return r;
    });
    opt.step();
    opt.zeroGrad();
    await terms.loss.data();
    terms.loss.dispose();
    terms.dice.dispose();
    terms.ce.dispose();
    flopPerRun = flops - before;
  };
  const times = await timeIt(step);
  return { times, gflop: flopPerRun / 1e9, peakRssMb: peakRssMb(), info: await backendInfo() };
}

interface Micro {
  inputs: { name: string; shape: number[] }[];
  gflop: number;
  ours: (k: Kernels, t: KTensor[]) => KTensor[];
  onnx: { nodes: OnnxNode[]; inits: OnnxTensor[]; outShape: number[] };
}

/**
 * A cubic-kernel Conv micro-benchmark (with `transposed`, ConvTranspose, which is our conv3dGradInput),
 * described once for both implementations: our kernel call and the one-node ONNX graph for ORT.
 */
function convMicro(o: { x: number[]; w: number[]; pad: number; stride: number; groups: number; transposed?: boolean }): Micro {
  const k = o.w[2]!;
  const spatial = o.x.slice(2);
  const outSpatial = o.transposed ? spatial.map((d) => (d - 1) * o.stride - 2 * o.pad + k) : spatial.map((d) => Math.floor((d + 2 * o.pad - k) / o.stride) + 1);
  const outShape = [o.x[0]!, o.transposed ? o.w[1]! * o.groups : o.w[0]!, ...outSpatial];
  // multiply-adds per voxel of the side the kernel slides over (the output, or the input for ConvTranspose)
  const voxels = numel(o.transposed ? spatial : outSpatial);
  const attrs: OnnxAttr[] = [];
  if (o.pad) attrs.push({ name: 'pads', type: 'ints', value: new Array(6).fill(o.pad) });
  if (o.stride !== 1) attrs.push({ name: 'strides', type: 'ints', value: [o.stride, o.stride, o.stride] });
  if (o.groups !== 1) attrs.push({ name: 'group', type: 'int', value: o.groups });
  attrs.push({ name: 'kernel_shape', type: 'ints', value: [k, k, k] });
  const conv = { stride: [o.stride, o.stride, o.stride], padding: [o.pad, o.pad, o.pad], groups: o.groups } as const;
  return {
    inputs: [
      { name: 'x', shape: o.x },
      { name: 'w', shape: o.w },
    ],
    gflop: (2 * o.w[0]! * o.w[1]! * k ** 3 * voxels) / 1e9,
    ours: (kn, [x, w]) => [o.transposed ? kn.conv3dGradInput(x!, w!, { ...conv, inputShape: outShape }) : kn.conv3d(x!, w!, null, conv)],
    onnx: {
      nodes: [{ opType: o.transposed ? 'ConvTranspose' : 'Conv', inputs: ['x', 'w'], outputs: ['y'], attrs }],
      inits: [{ ...floatTensor('', o.w, rand(numel(o.w), 0.05)), name: 'w' }],
      outShape,
    },
  };
}

function micro(name: string): Micro {
  const c = (s: number[]) => floatTensor('', s, rand(numel(s), 0.05));
  switch (name) {
    case 'conv3x3':
      return convMicro({ x: [1, 48, 96, 96, 96], w: [48, 48, 3, 3, 3], pad: 1, stride: 1, groups: 1 });
    case 'dw7':
      return convMicro({ x: [1, 48, 48, 48, 48], w: [48, 1, 7, 7, 7], pad: 3, stride: 1, groups: 48 });
    case 'convT':
      return convMicro({ x: [1, 96, 48, 48, 48], w: [96, 48, 2, 2, 2], pad: 0, stride: 2, groups: 1, transposed: true });
    case 'gemm': {
      const w = { ...c([768, 768]), name: 'w' };
      return {
        inputs: [
          { name: 'x', shape: [4096, 768] },
          { name: 'w', shape: [768, 768] },
        ],
        gflop: (2 * 4096 * 768 * 768) / 1e9,
        ours: (k, [x, wt]) => [k.matmul({ shape: [1, 4096, 768], data: x!.data }, { shape: [1, 768, 768], data: wt!.data }, null, { transA: false, transB: true })],
        onnx: { nodes: [{ opType: 'Gemm', inputs: ['x', 'w'], outputs: ['y'], attrs: [{ name: 'transB', type: 'int', value: 1 }] }], inits: [w], outShape: [4096, 768] },
      };
    }
    case 'attn': {
      // ORT takes k already transposed (MatMul has no transB); ours reads it transposed in the packing.
      const kt = { ...c([1029, 16, 343]), name: 'kt' };
      return {
        inputs: [
          { name: 'x', shape: [1029, 343, 16] },
          { name: 'k', shape: [1029, 343, 16] },
        ],
        gflop: (2 * 1029 * 343 * 343 * 16) / 1e9,
        ours: (k, [q, kk]) => [k.matmul(q!, kk!, null, { transA: false, transB: true })],
        onnx: { nodes: [{ opType: 'MatMul', inputs: ['x', 'kt'], outputs: ['y'] }], inits: [kt], outShape: [1029, 343, 343] },
      };
    }
    default: {
      const sc = floatTensor('s', [48], new Float32Array(48).fill(1));
      const b = floatTensor('b', [48], new Float32Array(48));
      return {
        inputs: [{ name: 'x', shape: [1, 48, 96, 96, 96] }],
        gflop: 0,
        ours: (k, [x]) => {
          const [y, r] = k.instanceNorm(x!, { eps: 1e-5 });
          return [k.leakyRelu(y, { slope: 0.01 }), y, r];
        },
        onnx: {
          nodes: [
            { opType: 'InstanceNormalization', inputs: ['x', 's', 'b'], outputs: ['n'], attrs: [{ name: 'epsilon', type: 'float', value: 1e-5 }] },
            { opType: 'LeakyRelu', inputs: ['n'], outputs: ['y'], attrs: [{ name: 'alpha', type: 'float', value: 0.01 }] },
          ],
          inits: [sc, b],
          outShape: [1, 48, 96, 96, 96],
        },
      };
    }
  }
}

async function oursMicro(name: string): Promise<WorkerResult> {
  const m = micro(name);
  if (backend === 'webgpu') {
    const { webgpuBackend, webgpuKernels, webgpuSync } = await import('../src/backends/webgpu/index.js');
    const ins: KTensor[] = m.inputs.map((i) => ({ shape: i.shape, data: webgpuBackend.upload(rand(numel(i.shape), 0.5)) }));
    const times = await timeIt(async () => {
      const outs = m.ours(webgpuKernels, ins);
      await webgpuSync(); // every kernel recorded so far has finished on the GPU
      for (const o of outs) webgpuBackend.free(o.data);
    });
    for (const t of ins) webgpuBackend.free(t.data);
    return { times, gflop: m.gflop || null, peakRssMb: peakRssMb(), info: await backendInfo() };
  }
  const addon = nativeAddon!;
  const k = (await import('../src/backends/native/index.js')).makeNativeKernels(addon);
  const ins: KTensor[] = m.inputs.map((i) => ({ shape: i.shape, data: addon.upload(rand(numel(i.shape), 0.5)) }));
  const times = await timeIt(() => {
    const outs = k && m.ours(k, ins);
    addon.sync();
    for (const o of outs) addon.free(o.data as never);
  });
  return { times, gflop: m.gflop || null, peakRssMb: peakRssMb(), info: JSON.stringify(nativeInfo()) };
}

// ---------------- onnxruntime ----------------
async function ortSession(bytes: Uint8Array) {
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential' });
  return { ort, session };
}

async function ortModel(net: string, size: number): Promise<WorkerResult> {
  const bytes =
    net === 'uxnet'
      ? exportOnnx({ build: () => new UXNet(PAPER, { seed: 0 }), inChans: 1, outChans: 13, traceSpatial: [32, 32, 32] })
      : // Fixed dims, as `uxnet export-onnx` writes them: these networks' reshapes depend on the volume size
        // (with symbolic dims onnxruntime rejects UNETR's patch-embedding transpose).
        exportOnnx({ build: () => buildNetwork(net).model.eval(), inChans: 1, outChans: 5, traceSpatial: [size, size, size], staticShape: true });
  const { ort, session } = await ortSession(bytes);
  const shape = [1, 1, size, size, size];
  const x = new ort.Tensor('float32', rand(numel(shape)), shape);
  const times = await timeIt(async () => {
    const r = await session.run({ input: x });
    r.logits!.dispose?.();
  });
  return { times, gflop: null, peakRssMb: peakRssMb() };
}

async function ortMicro(name: string): Promise<WorkerResult> {
  const m = micro(name);
  const x = m.inputs[0]!;
  const bytes = encodeOnnxModel({
    producer: 'uxnet3d-bench',
    opset: 17,
    graphName: name,
    nodes: m.onnx.nodes,
    initializers: m.onnx.inits,
    inputs: [{ name: 'x', elemType: ONNX_FLOAT, dims: x.shape }],
    outputs: [{ name: 'y', elemType: ONNX_FLOAT, dims: m.onnx.outShape }],
  });
  const { ort, session } = await ortSession(bytes);
  const xt = new ort.Tensor('float32', rand(numel(x.shape), 0.5), x.shape);
  const times = await timeIt(async () => {
    await session.run({ x: xt });
  });
  return { times, gflop: m.gflop || null, peakRssMb: peakRssMb() };
}

/** What ran: the native addon's ISA and threads, or the WebGPU adapter. */
async function backendInfo(): Promise<string> {
  if (backend !== 'webgpu') return JSON.stringify(nativeInfo());
  const { webgpuInfo } = await import('../src/backends/webgpu/index.js');
  const i = webgpuInfo();
  return JSON.stringify({
    backend: 'webgpu',
    adapter: i?.adapter ?? null,
    shaderF16: i?.shaderF16 ?? null,
    maxBindingBytes: i?.maxBindingBytes ?? null,
    maxBufferBytes: i?.maxBufferBytes ?? null,
  });
}

async function main(): Promise<void> {
  if (impl === 'ours' && backend === 'webgpu') {
    const { initWebGPU, webgpuUnavailableReason } = await import('../src/backends/webgpu/index.js');
    if (!(await initWebGPU({ quiet: true }))) throw new Error(`webgpu: ${webgpuUnavailableReason()}`);
    setBackend('webgpu');
  } else if (impl === 'ours' && !nativeAddon) throw new Error('the native addon is not built');
  const model = workload.match(/^(?:(swin_unetr|unetr|nnformer|transbts)\.)?(fwd|train)(\d+)$/);
  let r: WorkerResult;
  if (model) r = impl === 'ours' ? await oursModel(model[1] ?? 'uxnet', Number(model[3]), model[2] === 'train') : await ortModel(model[1] ?? 'uxnet', Number(model[3]));
  else r = impl === 'ours' ? await oursMicro(workload) : await ortMicro(workload);
  process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
  if (impl === 'ours' && backend === 'webgpu') await (await import('../src/backends/webgpu/index.js')).closeWebGPU();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
