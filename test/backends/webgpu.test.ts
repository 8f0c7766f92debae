/**
 * The webgpu backend kernel by kernel against the reference backend on random data (float64
 * reference vs float32 GPU), twice: with the adapter's own binding limit, and with an artificial
 * 4 KiB maxStorageBufferBindingSize so every tensor here is bound as 2-3 windows (the path that
 * tensors larger than one binding, e.g. a 48-channel 96³ activation on a 128 MiB adapter, take).
 * Also: async-only reads, memory accounting, the error for too many windows, and closing the
 * device. Skips with one message when there is no WebGPU adapter.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { KTensor, Kernels } from '../../src/engine/kernels.js';
import { referenceKernels } from '../../src/backends/reference/index.js';
import { closeWebGPU, initWebGPU, webgpuBackend, webgpuInfo, webgpuKernels, webgpuMemory, webgpuUnavailableReason } from '../../src/backends/webgpu/index.js';
import { Rng } from '../../src/engine/rng.js';
import { skipUnlessAvailable } from '../helpers/backends.js';

const available = await initWebGPU({ quiet: true });
const skip = skipUnlessAvailable('webgpu', available, `no WebGPU adapter: ${webgpuUnavailableReason()}`);
if (skip) console.log(`# webgpu: tests skipped, ${webgpuUnavailableReason()}`);
if (available) await closeWebGPU(); // each suite opens its own device below

/** Uniform [0, 1) draws from the engine's seeded generator. */
function rng(seed: number): () => number {
  const g = new Rng(seed, 'mulberry32');
  return () => g.random();
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** A host tensor: the reference backend's KTensor. */
type Host = { shape: number[]; data: Float32Array };

function rand(shape: number[], r: () => number, lo = -1, hi = 1): Host {
  return { shape, data: Float32Array.from({ length: numel(shape) }, () => lo + (hi - lo) * r()) };
}

function labels(shape: number[], classes: number, r: () => number): Host {
  return { shape, data: Float32Array.from({ length: numel(shape) }, () => Math.floor(r() * classes)) };
}

const gpu = (h: Host): KTensor => ({ shape: h.shape, data: webgpuBackend.upload(h.data) });

async function read(t: KTensor): Promise<Float32Array> {
  return webgpuBackend.read(t.data, numel(t.shape));
}

function free(t: KTensor): void {
  webgpuBackend.free(t.data);
}

function assertClose(actual: Float32Array, ref: Float32Array, what: string, rel = 2e-5): void {
  assert.equal(actual.length, ref.length, `${what}: length`);
  let m = 0;
  let d = 0;
  let at = -1;
  for (let i = 0; i < ref.length; i++) {
    m = Math.max(m, Math.abs(ref[i]!));
    const e = Math.abs(actual[i]! - ref[i]!);
    if (!(e <= d)) {
      d = Number.isNaN(e) ? Infinity : e;
      at = i;
    }
  }
  assert.ok(d <= rel * Math.max(m, 1e-30), `${what}: max |Δ| = ${d.toExponential(3)} at ${at} (${actual[at]} vs ${ref[at]}) exceeds ${rel}·max|ref| ${m.toExponential(3)}`);
}

interface Case {
  name: string;
  inputs: Host[];
  run: (k: Kernels, xs: KTensor[]) => KTensor | KTensor[];
  rel?: number;
  /** needs more binding windows than the 4 KiB split suite allows (tests the multi-part reduction instead) */
  big?: boolean;
}

function cases(): Case[] {
  const r = rng(7);
  const conv = { stride: [1, 1, 1] as const, padding: [1, 1, 1] as const, groups: 1 };
  const dw = { stride: [2, 1, 2] as const, padding: [3, 3, 3] as const, groups: 4 };
  const up = { stride: [2, 2, 2] as const, padding: [0, 0, 0] as const, groups: 1 };
  const x5 = rand([2, 3, 6, 7, 8], r);
  const norm = rand([2, 3, 6, 7, 8], r, 99, 101); // mean ≈ 100: needs two-pass statistics
  const probs = rand([2, 3, 5, 6, 7], r, 0, 1);
  const lab = labels([2, 1, 5, 6, 7], 3, r);
  return [
    { name: 'conv3d k3 p1 + bias', inputs: [x5, rand([4, 3, 3, 3, 3], r), rand([4], r)], run: (k, [x, w, b]) => k.conv3d(x!, w!, b!, conv) },
    { name: 'conv3d depthwise k7 s(2,1,2) p3', inputs: [rand([1, 4, 9, 8, 7], r), rand([4, 1, 7, 7, 7], r)], run: (k, [x, w]) => k.conv3d(x!, w!, null, dw) },
    // conv3d runs up to 8 consecutive output positions along w per thread: a row of 19 ends in a block of 3.
    {
      name: 'conv3d k3 p1, rows of 19 (position blocks with a tail)',
      inputs: [rand([1, 3, 4, 5, 19], r), rand([4, 3, 3, 3, 3], r)],
      run: (k, [x, w]) => k.conv3d(x!, w!, null, conv),
    },
    {
      name: 'conv3d grouped k(2,3,3) s(1,2,3) p(1,0,2) + bias',
      inputs: [rand([2, 4, 5, 6, 17], r), rand([6, 2, 2, 3, 3], r), rand([6], r)],
      run: (k, [x, w, b]) => k.conv3d(x!, w!, b!, { stride: [1, 2, 3], padding: [1, 0, 2], groups: 2 }),
    },
    // (kh, kw) windows over 49 taps keep the taps as loops.
    {
      name: 'conv3d k(1,8,8) p(0,3,4) (taps as loops)',
      inputs: [rand([1, 2, 3, 9, 10], r), rand([3, 2, 1, 8, 8], r)],
      run: (k, [x, w]) => k.conv3d(x!, w!, null, { stride: [1, 1, 1], padding: [0, 3, 4], groups: 1 }),
    },
    {
      name: 'conv3dGradInput k3 p1',
      inputs: [rand([2, 4, 6, 7, 8], r), rand([4, 3, 3, 3, 3], r)],
      run: (k, [dy, w]) => k.conv3dGradInput(dy!, w!, { ...conv, inputShape: [2, 3, 6, 7, 8] }),
    },
    // Stride 1 along w: blocks of up to 8 input positions per thread; rows of 19 end in a block of 3.
    {
      name: 'conv3dGradInput k3 p1, rows of 19 (position blocks with a tail)',
      inputs: [rand([1, 4, 4, 5, 19], r), rand([4, 3, 3, 3, 3], r)],
      run: (k, [dy, w]) => k.conv3dGradInput(dy!, w!, { ...conv, inputShape: [1, 3, 4, 5, 19] }),
    },
    {
      name: 'conv3dGradInput grouped k(2,3,5) s(2,2,1) p(1,0,2)',
      inputs: [rand([2, 6, 3, 3, 13], r), rand([6, 2, 2, 3, 5], r)],
      run: (k, [dy, w]) => k.conv3dGradInput(dy!, w!, { stride: [2, 2, 1], padding: [1, 0, 2], groups: 2, inputShape: [2, 4, 5, 7, 13] }),
    },
    {
      name: 'conv3dGradInput depthwise strided',
      inputs: [rand([1, 4, 5, 8, 4], r), rand([4, 1, 7, 7, 7], r)],
      run: (k, [dy, w]) => k.conv3dGradInput(dy!, w!, { ...dw, inputShape: [1, 4, 9, 8, 7] }),
    },
    {
      name: 'conv3dGradInput as transposed conv k2 s2',
      inputs: [rand([1, 4, 4, 5, 3], r), rand([4, 2, 2, 2, 2], r)],
      run: (k, [dy, w]) => k.conv3dGradInput(dy!, w!, { ...up, inputShape: [1, 2, 8, 10, 6] }),
    },
    { name: 'conv3dGradWeight k3 p1', inputs: [x5, rand([2, 4, 6, 7, 8], r)], run: (k, [x, dy]) => k.conv3dGradWeight(x!, dy!, { ...conv, weightShape: [4, 3, 3, 3, 3] }) },
    {
      name: 'conv3dGradWeight depthwise strided',
      inputs: [rand([1, 4, 9, 8, 7], r), rand([1, 4, 5, 8, 4], r)],
      run: (k, [x, dy]) => k.conv3dGradWeight(x!, dy!, { ...dw, weightShape: [4, 1, 7, 7, 7] }),
    },
    // Stride 1 along w: each thread slides its row of kw taps along the input row in registers.
    {
      name: 'conv3dGradWeight depthwise k7 p3, stride 1 along w',
      inputs: [rand([1, 4, 6, 5, 11], r), rand([1, 4, 3, 5, 11], r)],
      run: (k, [x, dy]) => k.conv3dGradWeight(x!, dy!, { stride: [2, 1, 1], padding: [3, 3, 3], groups: 4, weightShape: [4, 1, 7, 7, 7] }),
    },
    {
      name: 'conv3dGradWeight k(1,2,9) p(0,1,4) (one tap per thread) and k1',
      inputs: [rand([2, 3, 2, 4, 10], r), rand([2, 2, 2, 5, 10], r), rand([2, 2, 2, 4, 10], r)],
      run: (k, [x, dy, dy1]) => [
        k.conv3dGradWeight(x!, dy!, { stride: [1, 1, 1], padding: [0, 1, 4], groups: 1, weightShape: [2, 3, 1, 2, 9] }),
        k.conv3dGradWeight(x!, dy1!, { stride: [1, 1, 1], padding: [0, 0, 0], groups: 1, weightShape: [2, 3, 1, 1, 1] }),
      ],
    },
    // More than 2048 (n, voxel) positions: the workgroup-per-(o, ci, kd) path.
    {
      name: 'conv3dGradWeight k3 p1, many positions',
      inputs: [rand([1, 1, 12, 14, 16], r), rand([1, 2, 12, 14, 16], r)],
      run: (k, [x, dy]) => k.conv3dGradWeight(x!, dy!, { ...conv, weightShape: [2, 1, 3, 3, 3] }),
    },
    {
      name: 'conv3dGradWeight depthwise k7, many positions',
      inputs: [rand([1, 2, 10, 12, 20], r), rand([1, 2, 10, 12, 20], r)],
      run: (k, [x, dy]) => k.conv3dGradWeight(x!, dy!, { stride: [1, 1, 1], padding: [3, 3, 3], groups: 2, weightShape: [2, 1, 7, 7, 7] }),
    },
    { name: 'sumToChannels', inputs: [x5], run: (k, [x]) => k.sumToChannels(x!) },
    { name: 'sumToChannels, two-part reduction', inputs: [rand([1, 2, 40000], r)], run: (k, [x]) => k.sumToChannels(x!), big: true },
    { name: 'instanceNorm (mean ≈ 100)', inputs: [norm], run: (k, [x]) => k.instanceNorm(x!, { eps: 1e-5 }) },
    {
      name: 'instanceNormGrad',
      inputs: [rand([2, 3, 6, 7, 8], r), norm],
      run: (k, [dy, x]) => {
        const [y, rs] = k.instanceNorm(x!, { eps: 1e-5 });
        return k.instanceNormGrad(dy!, y, rs);
      },
    },
    { name: 'instanceNorm, rows > 512 (workgroup per row)', inputs: [rand([1, 2, 9, 8, 10], r, 99, 101)], run: (k, [x]) => k.instanceNorm(x!, { eps: 1e-5 }) },
    {
      name: 'instanceNormGrad, rows > 512',
      inputs: [rand([1, 2, 9, 8, 10], r), rand([1, 2, 9, 8, 10], r, -3, 3)],
      run: (k, [dy, x]) => {
        const [y, rs] = k.instanceNorm(x!, { eps: 1e-5 });
        return k.instanceNormGrad(dy!, y, rs);
      },
    },
    { name: 'sumToChannels, short channels (thread per channel)', inputs: [rand([2, 3, 4, 5, 6], r)], run: (k, [x]) => k.sumToChannels(x!) },
    { name: 'layerNorm channels-first', inputs: [norm, rand([3], r), rand([3], r)], run: (k, [x, w, b]) => k.layerNorm(x!, w!, b!, { eps: 1e-6, channelsLast: false }) },
    {
      name: 'layerNorm channels-last',
      inputs: [rand([3, 40, 24], r, 99, 101), rand([24], r), rand([24], r)],
      run: (k, [x, w, b]) => k.layerNorm(x!, w!, b!, { eps: 1e-6, channelsLast: true }),
    },
    {
      name: 'layerNormGrad channels-first',
      inputs: [rand([2, 3, 6, 7, 8], r), norm, rand([3], r), rand([3], r)],
      run: (k, [dy, x, w, b]) => {
        const [, m, rs] = k.layerNorm(x!, w!, b!, { eps: 1e-6, channelsLast: false });
        return k.layerNormGrad(dy!, x!, w!, m, rs, { channelsLast: false });
      },
    },
    {
      name: 'layerNormGrad channels-last',
      inputs: [rand([3, 40, 24], r), rand([3, 40, 24], r, -3, 3), rand([24], r), rand([24], r)],
      run: (k, [dy, x, w, b]) => {
        const [, m, rs] = k.layerNorm(x!, w!, b!, { eps: 1e-6, channelsLast: true });
        return k.layerNormGrad(dy!, x!, w!, m, rs, { channelsLast: true });
      },
    },
    { name: 'gelu on [-9, 9]', inputs: [rand([2, 3, 6, 7, 8], r, -9, 9)], run: (k, [x]) => k.gelu(x!) },
    { name: 'geluGrad on [-9, 9]', inputs: [rand([2, 3, 6, 7, 8], r), rand([2, 3, 6, 7, 8], r, -9, 9)], run: (k, [dy, x]) => k.geluGrad(dy!, x!) },
    { name: 'leakyRelu', inputs: [x5], run: (k, [x]) => k.leakyRelu(x!, { slope: 0.01 }) },
    { name: 'leakyReluGrad', inputs: [rand([2, 3, 6, 7, 8], r), x5], run: (k, [dy, x]) => k.leakyReluGrad(dy!, x!, { slope: 0.01 }) },
    { name: 'add', inputs: [x5, rand([2, 3, 6, 7, 8], r)], run: (k, [a, b]) => k.add(a!, b!) },
    { name: 'add (same tensor twice)', inputs: [x5], run: (k, [a]) => k.add(a!, a!) },
    { name: 'scale', inputs: [x5], run: (k, [x]) => k.scale(x!, { factor: -1 / 3 }) },
    { name: 'mulChannel', inputs: [x5, rand([3], r)], run: (k, [x, s]) => k.mulChannel(x!, s!) },
    { name: 'mulChannelGradScale', inputs: [rand([2, 3, 6, 7, 8], r), x5], run: (k, [dy, x]) => k.mulChannelGradScale(dy!, x!) },
    { name: 'concatChannels', inputs: [x5, rand([2, 1, 6, 7, 8], r), rand([2, 2, 6, 7, 8], r)], run: (k, xs) => k.concatChannels(xs) },
    { name: 'sliceChannels [1, 3)', inputs: [x5], run: (k, [x]) => k.sliceChannels(x!, { start: 1, end: 3 }) },
    { name: 'sliceChannels empty', inputs: [x5], run: (k, [x]) => k.sliceChannels(x!, { start: 2, end: 2 }) },
    { name: 'softmax', inputs: [rand([2, 3, 5, 6, 7], r, -8, 8)], run: (k, [x]) => k.softmax(x!) },
    { name: 'softmaxGrad', inputs: [rand([2, 3, 5, 6, 7], r), probs], run: (k, [dy, y]) => k.softmaxGrad(dy!, y!) },
    // softmaxLast's view [rows, C, 1]: ≥ 4096 rows, or rows of ≤ 1024, run one thread per row (no
    // workgroup barriers); a few long rows take a workgroup each.
    { name: 'softmax, 2 contiguous rows of 1100 (workgroup per row)', inputs: [rand([2, 1100, 1], r, -8, 8)], run: (k, [x]) => k.softmax(x!) },
    {
      name: 'softmaxGrad, 2 contiguous rows of 1100 (workgroup per row)',
      inputs: [rand([2, 1100, 1], r), rand([2, 1100, 1], r, -8, 8)],
      run: (k, [dy, x]) => k.softmaxGrad(dy!, k.softmax(x!)),
    },
    { name: 'softmax, 6 contiguous rows of 343 (thread per row)', inputs: [rand([6, 343, 1], r, -8, 8)], run: (k, [x]) => k.softmax(x!) },
    { name: 'softmax, 4100 contiguous rows of 70 (thread per row)', inputs: [rand([4100, 70, 1], r, -8, 8)], run: (k, [x]) => k.softmax(x!), big: true },
    {
      name: 'softmaxGrad, 4100 contiguous rows of 70 (thread per row)',
      inputs: [rand([4100, 70, 1], r), rand([4100, 70, 1], r, -8, 8)],
      run: (k, [dy, x]) => k.softmaxGrad(dy!, k.softmax(x!)),
      big: true,
    },
    { name: 'crossEntropy', inputs: [rand([2, 3, 5, 6, 7], r, -5, 5), lab], run: (k, [x, t]) => k.crossEntropy(x!, t!) },
    { name: 'crossEntropyGrad', inputs: [{ shape: [1], data: Float32Array.of(0.7) }, rand([2, 3, 5, 6, 7], r, -5, 5), lab], run: (k, [d, x, t]) => k.crossEntropyGrad(d!, x!, t!) },
    { name: 'diceLoss', inputs: [probs, lab], run: (k, [p, t]) => k.diceLoss(p!, t!, { smoothNr: 1e-5, smoothDr: 1e-5 }) },
    {
      name: 'diceLossGrad',
      inputs: [{ shape: [1], data: Float32Array.of(1.3) }, probs, lab],
      run: (k, [d, p, t]) => {
        const [, st] = k.diceLoss(p!, t!, { smoothNr: 1e-5, smoothDr: 1e-5 });
        return k.diceLossGrad(d!, t!, st, { smoothNr: 1e-5, smoothDr: 1e-5, channels: 3 });
      },
    },
    { name: 'sum', inputs: [x5], run: (k, [x]) => k.sum(x!) },
    { name: 'sum, multi-part reduction', inputs: [rand([70001], r)], run: (k, [x]) => k.sum(x!), big: true },
    { name: 'fillFromScalar', inputs: [{ shape: [1], data: Float32Array.of(3) }], run: (k, [s]) => k.fillFromScalar(s!, { shape: [2, 3, 6, 7, 8], factor: 1 / 7 }) },
    {
      name: 'adamwStep (3 steps, in place on p, m, v)',
      inputs: [rand([3000], r), rand([3000], r, -1e-3, 1e-3), rand([3000], r, -1e-3, 1e-3), rand([3000], r, 0, 1e-6)],
      run: (k, [p, g, m, v]) => {
        for (let step = 1; step <= 3; step++) k.adamwStep(p!, g!, m!, v!, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-2, step });
        return [p!, m!, v!];
      },
      rel: 1e-6,
    },
  ];
}

async function runCase(c: Case): Promise<void> {
  const host = c.inputs.map((h) => ({ shape: h.shape, data: h.data.slice() }));
  const ref = [c.run(referenceKernels, host)].flat() as Host[];
  const ins = c.inputs.map(gpu);
  const outs = [c.run(webgpuKernels, ins)].flat();
  for (const [i, o] of outs.entries()) {
    assert.deepEqual([...o.shape], [...ref[i]!.shape], `${c.name}: output ${i} shape`);
    assertClose(await read(o), ref[i]!.data, `${c.name}: output ${i}`, c.rel);
  }
  for (const t of new Set([...ins, ...outs])) free(t);
}

function suite(title: string, opts: { maxBindingBytes?: number }): void {
  describe(title, { skip }, () => {
    before(async () => {
      assert.ok(await initWebGPU({ quiet: true, ...opts }));
    });
    after(closeWebGPU);
    it('binds tensors as expected', () => {
      const info = webgpuInfo()!;
      if (opts.maxBindingBytes) assert.equal(info.maxBindingBytes, opts.maxBindingBytes);
      else assert.ok(info.maxBindingBytes >= 128 * 2 ** 20, `binding limit ${info.maxBindingBytes}`);
    });
    for (const c of cases()) if (!(opts.maxBindingBytes && c.big)) it(c.name, () => runCase(c));
  });
}

suite('webgpu kernels vs reference [adapter limits]', {});
suite('webgpu kernels vs reference [4 KiB binding windows: every tensor split]', { maxBindingBytes: 4096 });

describe('webgpu backend: kernels with run-time sizes compile once for every shape', { skip }, () => {
  before(async () => {
    assert.ok(await initWebGPU({ quiet: true }));
  });
  after(closeWebGPU);

  // The tiled matmuls and the workgroup-per-row instance norms take their sizes from a uniform
  // buffer (ProgramSpec.dynamic), because compiling one of them costs SwiftShader up to ~2.4 s of CPU.
  // Each must give the reference's values at every shape while compiling one pipeline in all.
  const kernels: { name: string; shapes: number[][][]; run: (k: Kernels, xs: KTensor[]) => KTensor | KTensor[] }[] = [
    {
      name: 'matmul, 64×64 tiles (with bias, shared B)',
      shapes: [
        [[1, 70, 33], [1, 33, 65], [65]],
        [[2, 64, 100], [1, 100, 130], [130]],
        [[3, 129, 17], [1, 17, 64], [64]],
      ],
      run: (k, [a, b, bias]) => k.matmul(a!, b!, bias!, { transA: false, transB: false }),
    },
    {
      name: 'matmul, 16×16 tiles (transposed operands)',
      shapes: [
        [
          [2, 40, 20],
          [2, 30, 40],
        ],
        [
          [2, 17, 50],
          [2, 19, 17],
        ],
        [
          [3, 33, 33],
          [3, 21, 33],
        ],
      ],
      run: (k, [a, b]) => k.matmul(a!, b!, null, { transA: true, transB: true }),
    },
    {
      name: 'instanceNorm and its gradient, workgroup per row',
      shapes: [
        [
          [1, 2, 9, 8, 10],
          [1, 2, 9, 8, 10],
        ],
        [
          [2, 3, 7, 9, 11],
          [2, 3, 7, 9, 11],
        ],
        [
          [1, 1, 1000],
          [1, 1, 1000],
        ],
      ],
      run: (k, [x, dy]) => {
        const [y, rs] = k.instanceNorm(x!, { eps: 1e-5 });
        return [y, k.instanceNormGrad(dy!, y, rs)];
      },
    },
  ];
  for (const c of kernels) {
    it(c.name, async () => {
      const r = rng(17);
      const counts: number[] = [];
      for (const shapes of c.shapes) {
        await runCase({ name: `${c.name} ${JSON.stringify(shapes)}`, inputs: shapes.map((s) => rand(s, r)), run: c.run });
        counts.push(webgpuInfo()!.pipelines);
      }
      // The first shape compiles the kernel (plus nothing else); the other shapes reuse it.
      assert.deepEqual(counts.slice(1), [counts[0], counts[0]], `pipelines after each shape: ${counts}`);
    });
  }
});

describe('webgpu backend: memory, reads and limits', { skip }, () => {
  before(async () => {
    assert.ok(await initWebGPU({ quiet: true, maxBindingBytes: 4096 }));
  });
  after(closeWebGPU);

  it('upload / zeros / write / read round-trip; readSync refuses; free returns the bytes', async () => {
    const before = webgpuMemory();
    const h = webgpuBackend.upload(Float32Array.of(1, 2, 3));
    assert.deepEqual([...(await webgpuBackend.read(h, 3))], [1, 2, 3]);
    webgpuBackend.write(h, Float32Array.of(4, 5, 6));
    assert.deepEqual([...(await webgpuBackend.read(h, 3))], [4, 5, 6]);
    assert.throws(() => webgpuBackend.readSync(h, 3), /await tensor\.data\(\)/);
    const z = webgpuBackend.zeros(5000);
    webgpuBackend.free(h);
    // A pooled buffer comes back zeroed from zeros().
    const dirty = webgpuBackend.upload(new Float32Array(5000).fill(7));
    webgpuBackend.free(dirty);
    const z2 = webgpuBackend.zeros(5000);
    assert.ok((await webgpuBackend.read(z2, 5000)).every((v) => v === 0));
    assert.ok((await webgpuBackend.read(z, 5000)).every((v) => v === 0));
    webgpuBackend.free(z);
    webgpuBackend.free(z2);
    assert.throws(() => webgpuBackend.free(z2), /freed twice/);
    assert.deepEqual({ count: webgpuMemory().count, bytes: webgpuMemory().bytes }, { count: before.count, bytes: before.bytes });
  });

  it('a tensor beyond maxBufferSize fails at allocation, naming its size and the limit', () => {
    const limit = webgpuInfo()!.maxBufferBytes;
    const size = limit / 4 + 64; // 256 bytes over, after rounding to 256
    if (size > 2 ** 32) return; // adapters with huge limits: nothing sensible to allocate here
    const bytes = Math.ceil((size * 4) / 256) * 256;
    const before = webgpuMemory();
    assert.throws(
      () => webgpuBackend.zeros(size),
      new RegExp(`a tensor of ${bytes / 4} float32 values \\(${bytes} bytes\\) exceeds this adapter's maxBufferSize \\(${limit} bytes\\)`),
    );
    assert.deepEqual({ count: webgpuMemory().count, bytes: webgpuMemory().bytes }, { count: before.count, bytes: before.bytes });
  });

  it('a kernel needing more binding windows than the adapter allows fails with a clear error', () => {
    const n = 1024 * 14; // 14 windows of 4 KiB per tensor
    const a = gpu({ shape: [n], data: new Float32Array(n) });
    assert.throws(() => webgpuKernels.add(a, a), /add needs \d+ storage bindings/);
    free(a);
  });
});
