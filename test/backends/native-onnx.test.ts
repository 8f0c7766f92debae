/**
 * ONNX export: the exported tiny UX-Net runs in onnxruntime-node (CPU) and matches our logits to
 * 1e-4 of max|ref|, at two input sizes from one file (dynamic spatial dims). Skipped when
 * onnxruntime-node cannot be loaded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/backends/index.js';
import { tensor } from '../../src/engine/creation.js';
import { noGrad } from '../../src/engine/scope.js';
import { UXNet } from '../../src/models/uxnet.js';
import { exportOnnx } from '../../src/io/onnx.js';
import { ort, why } from '../helpers/onnxruntime.js';

const config = { inChans: 1, outChans: 3, depths: [2, 2, 2, 2], featSize: [8, 16, 32, 64], hiddenSize: 128 };

function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = ((s >>> 0) / 4294967296) * 2 - 1;
  }
  return a;
}

test('ONNX export of UX-Net matches our forward in onnxruntime-node (dynamic spatial dims)', { skip: ort ? false : why }, async () => {
  const model = new UXNet(config, { seed: 3 });
  const weights = new Map(model.namedParameters().map(([k, p]) => [k, { shape: p.shape, data: p.dataSync() }]));
  const bytes = exportOnnx({
    build: () => {
      const m = new UXNet(config, { seed: 99 });
      m.loadStateDict(weights);
      return m;
    },
    inChans: 1,
    outChans: 3,
    traceSpatial: [32, 32, 32],
  });
  const session = await ort!.InferenceSession.create(bytes);
  for (const sp of [
    [32, 32, 32],
    [32, 48, 16],
  ] as const) {
    const n = sp[0] * sp[1] * sp[2];
    const xd = randn(n, 7 + sp[1]);
    const ours = noGrad(() => {
      const x = tensor(xd, [1, 1, ...sp]);
      const y = model.forward(x);
      const v = y.dataSync();
      x.dispose();
      y.dispose();
      return v;
    });
    const res = await session.run({ input: new ort!.Tensor('float32', xd, [1, 1, ...sp]) });
    const got = res.logits!;
    assert.deepEqual([...got.dims], [1, 3, ...sp]);
    const g = got.data as Float32Array;
    let mx = 0;
    let err = 0;
    for (let i = 0; i < ours.length; i++) {
      mx = Math.max(mx, Math.abs(ours[i]!));
      err = Math.max(err, Math.abs(ours[i]! - g[i]!));
    }
    assert.ok(err <= 1e-4 * mx, `input ${sp.join('x')}: max abs err ${err}, max|ref| ${mx}`);
  }
  await session.release();
});

test('uxnet export-onnx CLI writes a model that runs in onnxruntime-node; bad inputs are user errors', { skip: ort ? false : why }, async () => {
  const { mkdtemp, writeFile, readFile, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { writeSafetensorsFile } = await import('../../src/io/safetensors.js');
  const { run } = await import('../../src/cli/main.js');
  const dir = await mkdtemp(join(tmpdir(), 'uxnet-onnx-'));
  try {
    const model = new UXNet(config, { seed: 5 });
    await writeSafetensorsFile(
      join(dir, 'w.safetensors'),
      model.namedParameters().map(([k, p]) => [k, { shape: p.shape, data: p.dataSync() }]),
    );
    await writeFile(join(dir, 'cfg.json'), JSON.stringify({ in_chans: 1, out_chans: 3, feat_size: [8, 16, 32, 64], hidden_size: 128 }));
    const out = join(dir, 'model.onnx');
    const origWrite = process.stdout.write.bind(process.stdout);
    process.stdout.write = (() => true) as typeof process.stdout.write;
    let code: number;
    try {
      code = await run(['node', 'uxnet', 'export-onnx', '--config', join(dir, 'cfg.json'), '--weights', join(dir, 'w.safetensors'), '-o', out]);
    } finally {
      process.stdout.write = origWrite;
    }
    assert.equal(code, 0);
    const session = await ort!.InferenceSession.create(await readFile(out));
    assert.deepEqual(session.inputNames, ['input']);
    assert.deepEqual(session.outputNames, ['logits']);
    await session.release();
    const origErr = process.stderr.write.bind(process.stderr);
    let errText = '';
    process.stderr.write = ((s: string) => ((errText += s), true)) as typeof process.stderr.write;
    try {
      await writeFile(join(dir, 'bad.json'), JSON.stringify({ in_chans: 1, out_chans: 3, feat_size: [16, 32, 64, 128], hidden_size: 128 }));
      assert.equal(await run(['node', 'uxnet', 'export-onnx', '--config', join(dir, 'bad.json'), '--weights', join(dir, 'w.safetensors'), '-o', out]), 2);
      assert.equal(await run(['node', 'uxnet', 'export-onnx', '--config', join(dir, 'missing.json'), '--weights', join(dir, 'w.safetensors'), '-o', out]), 2);
    } finally {
      process.stderr.write = origErr;
    }
    assert.match(errText, /does not fit the config/);
    assert.match(errText, /cannot read config file/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('uxnet export-onnx reads a torch.save checkpoint: the same ONNX bytes as from the safetensors copy', async () => {
  const { mkdtemp, writeFile, readFile, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { FIXTURES } = await import('../helpers/fixtures.js');
  const { run } = await import('../../src/cli/main.js');
  const dir = await mkdtemp(join(tmpdir(), 'uxnet-onnx-pth-'));
  const origWrite = process.stdout.write.bind(process.stdout);
  const origErr = process.stderr.write.bind(process.stderr);
  let errText = '';
  try {
    await writeFile(join(dir, 'cfg.json'), JSON.stringify({ in_chans: 1, out_chans: 3, depths: [2, 2, 2, 2], feat_size: [8, 16, 32, 64], hidden_size: 128 }));
    process.stdout.write = (() => true) as typeof process.stdout.write;
    process.stderr.write = ((s: string) => ((errText += s), true)) as typeof process.stderr.write;
    const exportFrom = (weights: string, out: string) => run(['node', 'uxnet', 'export-onnx', '--config', join(dir, 'cfg.json'), '--weights', weights, '-o', join(dir, out)]);
    assert.equal(await exportFrom(join(FIXTURES, 'tiny_weights.pth'), 'a.onnx'), 0);
    assert.equal(await exportFrom(join(FIXTURES, 'tiny_weights.safetensors'), 'b.onnx'), 0);
    const a = await readFile(join(dir, 'a.onnx'));
    assert.ok(a.length > 100_000, `ONNX file of ${a.length} bytes`);
    assert.ok(a.equals(await readFile(join(dir, 'b.onnx'))), 'exports from .pth and .safetensors differ');
    await writeFile(join(dir, 'junk.pth'), 'not a checkpoint');
    assert.equal(await exportFrom(join(dir, 'junk.pth'), 'c.onnx'), 2);
  } finally {
    process.stdout.write = origWrite;
    process.stderr.write = origErr;
    await rm(dir, { recursive: true, force: true });
  }
  assert.match(errText, /^uxnet: weights file: /m);
});
