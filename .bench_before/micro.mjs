import { setBackend, tensor, noGrad } from '../dist/src/engine/index.js';
import '../dist/src/backends/index.js';
import * as ops from '../dist/src/engine/ops/index.js';
setBackend('native');
const [B, N, H, D] = (process.argv[2] ?? '343,343,3,16').split(',').map(Number);
const C = H * D;
const x = tensor(Float32Array.from({ length: B * N * 3 * C }, () => Math.random() - 0.5), [B, N, 3 * C], { requiresGrad: true });
const bias = tensor(Float32Array.from({ length: H * N * N }, () => Math.random() - 0.5), [H, N, N], { requiresGrad: true });
for (let r = 0; r < 3; r++) {
  let t0 = performance.now();
  const y = ops.attention(x, x, x, { heads: H, headDim: D, kCol: C, vCol: 2 * C, bias, qScale: D ** -0.5 });
  y.dataSync();
  const tf = performance.now() - t0;
  t0 = performance.now();
  y.backward(y);
  x.grad.dataSync();
  const tb = performance.now() - t0;
  const fl = 4 * B * H * N * N * D;
  console.log(`fwd ${tf.toFixed(0)} ms (${(fl / tf / 1e6).toFixed(1)} GFLOP/s)  bwd ${tb.toFixed(0)} ms`);
  x.grad = null; bias.grad = null;
}
