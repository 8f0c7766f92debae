/**
 * Finite-difference checks of every differentiable op on tiny random shapes, on every backend:
 * the analytic gradient of f = Σ y·r must match central differences of f.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { initTestBackends, testBackends } from '../helpers/backends.js';
import { noGrad, setBackend, tensor, type Tensor } from '../../src/engine/index.js';
import * as ops from '../../src/engine/ops/index.js';
import { Rng } from '../../src/engine/rng.js';

await initTestBackends();

/** Uniform [0, 1) draws from the engine's seeded generator. */
function rng(seed: number): () => number {
  const g = new Rng(seed, 'mulberry32');
  return () => g.random();
}

function randArray(n: number, r: () => number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}

interface GradCase {
  name: string;
  shapes: number[][];
  run: (xs: Tensor[]) => Tensor;
  /** Which inputs to differentiate (default all). */
  wrt?: number[];
  /** Custom data for some inputs (labels, positive values). */
  init?: (i: number, n: number, r: () => number) => Float32Array | null;
  h?: number;
}

const label = (classes: number) => (i: number, n: number, r: () => number) => (i === 1 ? Float32Array.from({ length: n }, () => Math.floor(r() * classes)) : null);

const cases: GradCase[] = [
  { name: 'conv3d k3 p1 with bias', shapes: [[2, 3, 4, 3, 5], [2, 3, 3, 3, 3], [2]], run: (x) => ops.conv3d(x[0]!, x[1]!, x[2]!, { padding: 1 }) },
  {
    name: 'conv3d k3 s2 p1 (odd sizes)',
    shapes: [
      [1, 2, 5, 4, 5],
      [3, 2, 3, 3, 3],
    ],
    run: (x) => ops.conv3d(x[0]!, x[1]!, null, { stride: 2, padding: 1 }),
  },
  { name: 'conv3d depthwise k7 p3', shapes: [[1, 2, 4, 3, 5], [2, 1, 7, 7, 7], [2]], run: (x) => ops.conv3d(x[0]!, x[1]!, x[2]!, { padding: 3, groups: 2 }) },
  { name: 'conv3d grouped 1x1 expand', shapes: [[1, 2, 2, 3, 2], [8, 1, 1, 1, 1], [8]], run: (x) => ops.conv3d(x[0]!, x[1]!, x[2]!, { groups: 2 }) },
  { name: 'conv3d k2 s2', shapes: [[1, 2, 5, 4, 3], [3, 2, 2, 2, 2], [3]], run: (x) => ops.conv3d(x[0]!, x[1]!, x[2]!, { stride: 2 }) },
  {
    name: 'convTranspose3d k2 s2',
    shapes: [
      [1, 3, 2, 3, 2],
      [3, 2, 2, 2, 2],
    ],
    run: (x) => ops.convTranspose3d(x[0]!, x[1]!, { stride: 2 }),
  },
  { name: 'instanceNorm', shapes: [[2, 2, 3, 2, 3]], run: (x) => ops.instanceNorm(x[0]!) },
  { name: 'layerNorm channels-first', shapes: [[2, 4, 2, 3, 2], [4], [4]], run: (x) => ops.layerNorm(x[0]!, x[1]!, x[2]!) },
  { name: 'layerNorm channels-last', shapes: [[2, 3, 2, 5], [5], [5]], run: (x) => ops.layerNorm(x[0]!, x[1]!, x[2]!, { channelsLast: true }) },
  { name: 'gelu', shapes: [[2, 3, 4]], run: (x) => ops.gelu(x[0]!), init: (_i, n, r) => randArray(n, r, -3, 3) },
  // Keep inputs away from the kink at 0, where central differences are meaningless.
  { name: 'leakyRelu', shapes: [[2, 3, 4]], run: (x) => ops.leakyRelu(x[0]!, 0.01), init: (_i, n, r) => randArray(n, r).map((v) => (v >= 0 ? v + 0.1 : v - 0.1)) },
  { name: 'softmax', shapes: [[2, 4, 3]], run: (x) => ops.softmax(x[0]!) },
  {
    name: 'add',
    shapes: [
      [2, 3],
      [2, 3],
    ],
    run: (x) => ops.add(x[0]!, x[1]!),
  },
  { name: 'add (same tensor twice)', shapes: [[2, 3]], run: (x) => ops.add(x[0]!, x[0]!) },
  { name: 'scale', shapes: [[2, 3]], run: (x) => ops.scale(x[0]!, -2.5) },
  { name: 'mulChannel', shapes: [[2, 3, 2, 2], [3]], run: (x) => ops.mulChannel(x[0]!, x[1]!) },
  {
    name: 'concatChannels',
    shapes: [
      [2, 2, 3],
      [2, 3, 3],
    ],
    run: (x) => ops.concatChannels([x[0]!, x[1]!]),
  },
  { name: 'sliceChannels', shapes: [[2, 5, 3]], run: (x) => ops.sliceChannels(x[0]!, 1, 3) },
  { name: 'reshape', shapes: [[2, 6]], run: (x) => ops.reshape(x[0]!, [3, -1]) },
  { name: 'sum', shapes: [[2, 3, 2]], run: (x) => ops.sum(x[0]!) },
  { name: 'mean', shapes: [[2, 3, 2]], run: (x) => ops.mean(x[0]!) },
  {
    name: 'crossEntropy',
    shapes: [
      [2, 3, 2, 3],
      [2, 1, 2, 3],
    ],
    wrt: [0],
    init: label(3),
    run: (x) => ops.crossEntropy(x[0]!, x[1]!),
  },
  {
    name: 'diceLoss on softmax',
    shapes: [
      [2, 3, 2, 3],
      [2, 1, 2, 3],
    ],
    wrt: [0],
    init: label(3),
    run: (x) => ops.diceLoss(ops.softmax(x[0]!), x[1]!),
  },
  { name: 'linear with bias', shapes: [[2, 3, 4], [5, 4], [5]], run: (x) => ops.linear(x[0]!, x[1]!, x[2]!) },
  {
    name: 'matmul batched',
    shapes: [
      [2, 3, 4],
      [2, 4, 5],
    ],
    run: (x) => ops.matmul(x[0]!, x[1]!),
  },
  {
    name: 'matmul transB, shared b',
    shapes: [
      [2, 3, 4],
      [5, 4],
    ],
    run: (x) => ops.matmul(x[0]!, x[1]!, { transB: true }),
  },
  { name: 'permute', shapes: [[2, 3, 4]], run: (x) => ops.permute(x[0]!, [2, 0, 1]) },
  { name: 'roll', shapes: [[2, 3, 4]], run: (x) => ops.roll(x[0]!, [1, -2], [1, 2]) },
  {
    name: 'pad',
    shapes: [[2, 3]],
    run: (x) =>
      ops.pad(x[0]!, [
        [1, 0],
        [2, 1],
      ]),
  },
  { name: 'strided slice', shapes: [[3, 5, 4]], run: (x) => ops.slice(x[0]!, [1, 0, -3], [3, 5, 4], [1, 2, 2]) },
  {
    name: 'concat dim 1 of 3',
    shapes: [
      [2, 1, 3],
      [2, 2, 3],
    ],
    run: (x) => ops.concat([x[0]!, x[1]!], 1),
  },
  { name: 'gatherRows (duplicates)', shapes: [[4, 3]], run: (x) => ops.gatherRows(x[0]!, Int32Array.from([3, 1, 3, 0, 3])) },
  {
    name: 'broadcast add',
    shapes: [
      [2, 3, 4],
      [3, 1],
    ],
    run: (x) => ops.add(x[0]!, x[1]!),
  },
  {
    name: 'broadcast sub',
    shapes: [
      [3, 1],
      [2, 1, 4],
    ],
    run: (x) => ops.sub(x[0]!, x[1]!),
  },
  {
    name: 'broadcast mul',
    shapes: [
      [2, 1, 4],
      [3, 1],
    ],
    run: (x) => ops.mul(x[0]!, x[1]!),
  },
  { name: 'softmaxLast', shapes: [[2, 3, 5]], run: (x) => ops.softmaxLast(x[0]!) },
  { name: 'meanDim', shapes: [[2, 3, 4]], run: (x) => ops.meanDim(x[0]!, -2) },
  { name: 'layerNorm channels-last without affine', shapes: [[3, 5]], run: (x) => ops.layerNorm(x[0]!, null, null, { eps: 1e-5, channelsLast: true }) },
  {
    name: 'composite: conv → instanceNorm → leakyRelu → add',
    shapes: [
      [1, 2, 3, 3, 3],
      [2, 2, 3, 3, 3],
    ],
    run: (x) => ops.add(ops.leakyRelu(ops.instanceNorm(ops.conv3d(x[0]!, x[1]!, null, { padding: 1 }))), x[0]!),
  },
];

for (const backend of testBackends()) {
  describe(`finite-difference gradient checks [${backend}]`, () => {
    before(() => setBackend(backend));
    for (const c of cases) {
      it(c.name, async () => {
        const r = rng(c.name.length * 7919 + 17);
        const data = c.shapes.map(
          (s, i) =>
            c.init?.(
              i,
              s.reduce((a, b) => a * b, 1),
              r,
            ) ??
            randArray(
              s.reduce((a, b) => a * b, 1),
              r,
            ),
        );
        const wrt = c.wrt ?? c.shapes.map((_, i) => i);
        const xs = c.shapes.map((s, i) => tensor(data[i]!, s, { requiresGrad: wrt.includes(i) }));
        const y = c.run(xs);
        const weights = randArray(y.size, r);
        y.backward(tensor(weights, y.shape));
        const f = async (vals: Float32Array[]): Promise<number> => {
          const out = noGrad(() => c.run(c.shapes.map((s, i) => tensor(vals[i]!, s))));
          const v = await out.data();
          let acc = 0;
          for (let i = 0; i < v.length; i++) acc += v[i]! * weights[i]!;
          return acc;
        };
        const h = c.h ?? 1e-2;
        for (const i of wrt) {
          const analytic = await xs[i]!.grad!.data();
          const scaleRef = Math.max(1e-3, ...Array.from(analytic, Math.abs));
          // Probe a handful of positions per input: enough to catch index mistakes, cheap enough for CI.
          const n = data[i]!.length;
          const probes = new Set<number>([0, n - 1]);
          while (probes.size < Math.min(n, 12)) probes.add(Math.floor(r() * n));
          for (const k of probes) {
            const plus = data.map((d) => d.slice());
            const minus = data.map((d) => d.slice());
            plus[i]![k] = data[i]![k]! + h;
            minus[i]![k] = data[i]![k]! - h;
            const numeric = ((await f(plus)) - (await f(minus))) / (2 * h);
            const err = Math.abs(numeric - analytic[k]!);
            assert.ok(err <= 1e-2 * scaleRef + 1e-3 * Math.abs(numeric), `input ${i} element ${k}: analytic ${analytic[k]} vs numeric ${numeric}`);
          }
        }
      });
    }
  });
}
