/**
 * `benchWebgpu()`: forward and training-step timings of UX-Net on the webgpu backend, plus conv
 * micro-benchmarks, for the project bench (`npm run bench -- --backend webgpu`) or standalone:
 *
 *   node dist/src/backends/webgpu/bench.js [--sizes 64,96] [--reps 3] [--tiny] [--no-train] [--no-micro]
 *
 * Every timed run ends with an awaited read of its result (WebGPU work is asynchronous), after one
 * untimed warm-up run (shader compilation). Not exported from the package index: it pulls in the
 * model and training code.
 */
import { fileURLToPath } from 'node:url';
import { initWebGPU, webgpuInfo, webgpuKernels, webgpuBackend, webgpuSync } from './index.js';
import { setBackend } from '../../engine/registry.js';
import { tensor } from '../../engine/creation.js';
import { noGrad, tidy } from '../../engine/scope.js';
import type { KTensor } from '../../engine/kernels.js';
import { UXNet } from '../../models/uxnet.js';
import { DiceCELoss } from '../../train/dice-ce-loss.js';
import { AdamW } from '../../train/adamw.js';

export const PAPER_CONFIG = { inChans: 1, outChans: 13, depths: [2, 2, 2, 2], featSize: [48, 96, 192, 384], hiddenSize: 768 };
export const TINY_CONFIG = { inChans: 1, outChans: 3, depths: [2, 2, 2, 2], featSize: [8, 16, 32, 64], hiddenSize: 128 };

export interface WebgpuBenchOptions {
  /** cubic input sizes (multiples of 16); default [64, 96] */
  sizes?: number[];
  reps?: number;
  /** model configuration; default the paper's */
  config?: typeof PAPER_CONFIG;
  train?: boolean;
  micro?: boolean;
  log?: (line: string) => void;
}

export interface WebgpuBenchEntry {
  description: string;
  times_s: number[];
  min_s: number;
  median_s: number;
  gflop?: number;
}

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

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function timeIt(reps: number, fn: () => Promise<void>): Promise<number[]> {
  await fn();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    ts.push((performance.now() - t0) / 1000);
  }
  return ts;
}

function entry(description: string, times: number[], gflop?: number): WebgpuBenchEntry {
  return { description, times_s: times, min_s: Math.min(...times), median_s: median(times), ...(gflop ? { gflop } : {}) };
}

/** Runs the workloads on the webgpu backend (initialising it) and returns timings by workload name. */
export async function benchWebgpu(opts: WebgpuBenchOptions = {}): Promise<Record<string, WebgpuBenchEntry>> {
  const log = opts.log ?? ((l: string) => console.log(l));
  if (!(await initWebGPU())) throw new Error('webgpu backend: no adapter, nothing to benchmark');
  setBackend('webgpu');
  const reps = Math.max(1, opts.reps ?? 3);
  const config = opts.config ?? PAPER_CONFIG;
  const results: Record<string, WebgpuBenchEntry> = {};
  log(`webgpu: ${webgpuInfo()!.adapter}`);
  for (const size of opts.sizes ?? [64, 96]) {
    const shape = [1, 1, size, size, size];
    const xd = rand(numel(shape));
    const model = new UXNet(config, { seed: 0 });
    {
      const x = tensor(xd, shape);
      const times = await timeIt(reps, async () => {
        const y = noGrad(() => model.forward(x));
        await y.data();
        y.dispose();
      });
      x.dispose();
      results[`fwd${size}`] = entry(`UX-Net forward 1x1x${size}^3`, times);
      log(`fwd${size}: median ${median(times).toFixed(3)} s (min ${Math.min(...times).toFixed(3)})`);
    }
    if (opts.train !== false) {
      model.train();
      const ld = new Float32Array(numel(shape)).map((_, i) => (i * 7919) % config.outChans);
      const loss = new DiceCELoss();
      const opt = new AdamW(model.namedParameters(), { lr: 1e-4 });
      const times = await timeIt(reps, async () => {
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
      });
      opt.dispose();
      results[`train${size}`] = entry(`train step ${size}^3 (fwd+DiceCE+bwd+AdamW)`, times);
      log(`train${size}: median ${median(times).toFixed(3)} s (min ${Math.min(...times).toFixed(3)})`);
    }
    model.dispose();
  }
  if (opts.micro !== false) {
    const up = (s: number[]): KTensor => ({ shape: s, data: webgpuBackend.upload(rand(numel(s), 0.5)) });
    const micro: [string, string, number, KTensor[], (t: KTensor[]) => KTensor[]][] = [
      ['conv3x3', 'conv3d 48->48 k3 at 96^3', 2 * 48 * 48 * 27 * 96 ** 3, [up([1, 48, 96, 96, 96]), up([48, 48, 3, 3, 3])], ([x, w]) => [webgpuKernels.conv3d(x!, w!, null, { stride: [1, 1, 1], padding: [1, 1, 1], groups: 1 })]],
      ['dw7', 'depthwise 7^3 x 48 at 48^3', 2 * 48 * 343 * 48 ** 3, [up([1, 48, 48, 48, 48]), up([48, 1, 7, 7, 7])], ([x, w]) => [webgpuKernels.conv3d(x!, w!, null, { stride: [1, 1, 1], padding: [3, 3, 3], groups: 48 })]],
      ['convT', 'conv-transpose 96->48 k2s2 to 96^3', 2 * 96 * 48 * 8 * 48 ** 3, [up([1, 96, 48, 48, 48]), up([96, 48, 2, 2, 2])], ([x, w]) => [webgpuKernels.conv3dGradInput(x!, w!, { stride: [2, 2, 2], padding: [0, 0, 0], groups: 1, inputShape: [1, 48, 96, 96, 96] })]],
      ['norm', 'instance norm + LeakyReLU 48 ch at 96^3', 0, [up([1, 48, 96, 96, 96])], ([x]) => { const [y, r] = webgpuKernels.instanceNorm(x!, { eps: 1e-5 }); return [webgpuKernels.leakyRelu(y, { slope: 0.01 }), y, r]; }],
    ];
    for (const [name, description, flop, ins, f] of micro) {
      const times = await timeIt(reps, async () => {
        const outs = f(ins);
        await webgpuSync();
        for (const o of outs) webgpuBackend.free(o.data);
      });
      for (const t of ins) webgpuBackend.free(t.data);
      results[name] = entry(description, times, flop ? flop / 1e9 : undefined);
      log(`${name}: median ${median(times).toFixed(4)} s${flop ? ` (${(flop / 1e9 / median(times)).toFixed(1)} GFLOP/s)` : ''}`);
    }
  }
  return results;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const val = (k: string) => {
    const i = args.indexOf(k);
    return i >= 0 ? args[i + 1] : undefined;
  };
  await benchWebgpu({
    sizes: val('--sizes')?.split(',').map(Number),
    reps: val('--reps') ? Number(val('--reps')) : undefined,
    config: args.includes('--tiny') ? TINY_CONFIG : PAPER_CONFIG,
    train: !args.includes('--no-train'),
    micro: !args.includes('--no-micro'),
  });
}
