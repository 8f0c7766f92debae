/**
 * `uxnet export-onnx` of SwinUNETR, UNETR, TransBTS and nnFormer (the fixtures' configs and weights), run
 * in onnxruntime-node: the exported graph reproduces the reference logits (MONAI 0.9.0's, the official
 * code's) within the fixture tolerance. nnFormer's and TransBTS's are the eval graphs (BatchNorm on
 * running statistics, no dropout). These graphs have fixed dims (the trace size). Skipped when
 * onnxruntime-node cannot be loaded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, get } from '../helpers/fixtures.js';
import { BASELINES, checkForward } from '../helpers/baselines.js';
import { uxnet } from '../helpers/cli.js';
import { ort, why } from '../helpers/onnxruntime.js';

const F = (f: string) => join(FIXTURES, BASELINES, f);

for (const [net, weights, reference] of [
  ['unetr', 'unetr_weights.pth', "MONAI's"],
  ['swin_unetr', 'swin_unetr_weights.safetensors', "MONAI's"],
  ['transbts', 'transbts_weights.safetensors', 'the official'],
  ['nnformer', 'nnformer_weights.pth', 'the official'],
] as const) {
  test(`export-onnx ${net}: onnxruntime-node reproduces ${reference} logits`, { skip: ort ? false : why }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'uxnet-onnx-'));
    try {
      const out = join(dir, `${net}.onnx`);
      const r = uxnet(['export-onnx', '--config', F(`${net}_config.json`), '--weights', F(weights), '-o', out], { timeoutMs: 300_000 });
      assert.equal(r.status, 0, r.stderr);
      const session = await ort!.InferenceSession.create(readFileSync(out), { intraOpNumThreads: 1 });
      const x = get(BASELINES + `${net}_forward.safetensors`, 'input');
      const y = await session.run({ input: new ort!.Tensor('float32', x.data, x.shape) });
      assert.deepEqual(y.logits!.dims, get(BASELINES + `${net}_forward.safetensors`, 'logits').shape);
      assert.equal(checkForward(y.logits!.data as Float32Array, `${net}_forward.safetensors`, 'logits'), null);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
