/**
 * `uxnet export-onnx` of nnFormer and TransBTS (the fixtures' configs and weights), run in onnxruntime-node:
 * the exported eval graph (BatchNorm on running statistics, no dropout) reproduces the official logits
 * within the fixture tolerance. Skipped when onnxruntime-node cannot be loaded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, get, maxAbsDiff } from '../helpers/fixtures.js';
import { uxnet } from '../helpers/cli.js';

type Ort = typeof import('onnxruntime-node');
let ort: Ort | null = null;
let why = '';
try {
  ort = await import('onnxruntime-node');
} catch (e) {
  why = `onnxruntime-node not available: ${(e as Error).message}`;
  console.log(`# skipping ONNX runtime test: ${why}`);
}

const B = join(FIXTURES, 'baselines');
const tolerances = JSON.parse(readFileSync(join(B, 'baseline_tolerances_nnformer_transbts.json'), 'utf8')) as { files: Record<string, Record<string, { tol_abs: number }>> };

for (const [net, weights] of [
  ['transbts', 'transbts_weights.safetensors'],
  ['nnformer', 'nnformer_weights.pth'],
] as const) {
  test(`export-onnx ${net}: onnxruntime-node reproduces the official logits`, { skip: ort ? false : why }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'uxnet-onnx-'));
    try {
      const out = join(dir, `${net}.onnx`);
      const r = uxnet(['export-onnx', '--config', join(B, `${net}_config.json`), '--weights', join(B, weights), '-o', out], { timeoutMs: 300_000 });
      assert.equal(r.status, 0, r.stderr);
      const session = await ort!.InferenceSession.create(readFileSync(out), { intraOpNumThreads: 1 });
      const x = get(`baselines/${net}_forward.safetensors`, 'input');
      const y = await session.run({ input: new ort!.Tensor('float32', x.data, x.shape) });
      const ref = get(`baselines/${net}_forward.safetensors`, 'logits');
      assert.deepEqual(y.logits!.dims, ref.shape);
      const d = maxAbsDiff(y.logits!.data as Float32Array, ref.data);
      assert.ok(d <= tolerances.files[`${net}_forward.safetensors`]!.logits!.tol_abs, `max |Δ| ${d}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
