import { setBackend, tensor, noGrad } from '../dist/src/engine/index.js';
import '../dist/src/backends/index.js';
import * as ops from '../dist/src/engine/ops/index.js';
import { nativeAddon } from '../dist/src/backends/native/index.js';
setBackend('native');
const [B, N, H, D, reps] = (process.argv[2] ?? '343,343,3,16,10').split(',').map(Number);
const C = H * D;
const x = tensor(Float32Array.from({ length: B * N * 3 * C }, () => Math.random() - 0.5), [B, N, 3 * C]);
const bias = tensor(Float32Array.from({ length: H * N * N }, () => Math.random() - 0.5), [H, N, N]);
nativeAddon.sync();
let best = 1e9;
for (let r = 0; r < reps; r++) {
  const t0 = performance.now();
  const y = noGrad(() => ops.attention(x, x, x, { heads: H, headDim: D, kCol: C, vCol: 2 * C, bias, qScale: D ** -0.5 }));
  nativeAddon.sync();
  best = Math.min(best, performance.now() - t0);
  y.dispose();
}
console.log(`fwd min ${best.toFixed(1)} ms (${(4 * B * H * N * N * D / best / 1e6).toFixed(1)} GFLOP/s)`);
