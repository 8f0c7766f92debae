/**
 * `--backend webgpu` through the real CLI: a clear one-line error without an adapter, and a tiny
 * `uxnet train` that checkpoints (asynchronous reads of parameters and AdamW moments), resumes
 * bit-identically to an uninterrupted WebGPU run, and agrees with the CPU backend's run.
 * (`uxnet forward --backend webgpu` against the fixture logits is in forward.test.ts, which runs on
 * every backend.)
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initTestBackends, testBackends } from '../helpers/backends.js';
import { FIXTURES } from '../helpers/fixtures.js';
import { uxnet } from '../helpers/cli.js';
import { writeSyntheticDataset } from '../helpers/synthetic-dataset.js';
import { loadCheckpoint } from '../../src/train/checkpoint.js';

await initTestBackends();

const cpu = testBackends().includes('native') ? 'native' : 'reference';

describe('uxnet --backend webgpu without an adapter', () => {
  it('fails in one line naming the reason and the VK_ICD_FILENAMES fix, exit non-zero', () => {
    // No Vulkan driver at all: the loader finds no ICD, so Dawn has no adapter.
    const r = uxnet(['forward', '--config', 'x.json', '--weights', join(FIXTURES, 'tiny_weights.safetensors'), '--input', 'x', '--output', 'y', '--backend', 'webgpu'], {
      env: { VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '/nonexistent/icd.json' },
    });
    // Dawn and the Vulkan loader print their own warnings on stderr first (native code; they cannot
    // be silenced from JS); ours is the one `uxnet:` line, last, without a stack trace.
    assert.equal(r.status, 2);
    const lines = r.stderr.trim().split('\n');
    assert.deepEqual(
      lines.filter((l) => l.startsWith('uxnet:')),
      [lines.at(-1)],
    );
    assert.match(
      lines.at(-1)!,
      /^uxnet: --backend webgpu: (no WebGPU adapter found .*VK_ICD_FILENAMES=\/usr\/lib\/chromium\/vk_swiftshader_icd\.json|the 'webgpu' npm package could not be loaded)/,
    );
    assert.doesNotMatch(r.stderr, /internal error/);
    assert.equal(r.stdout, '');
  });
});

describe('uxnet train --backend webgpu', { skip: !testBackends().includes('webgpu') && 'no WebGPU adapter' }, () => {
  let dir: string;
  let cfg: string;
  const steps = (out: string, n: number, extra: string[] = []) =>
    uxnet(['train', '--config', cfg, '-o', out, '--steps', String(n), ...extra], { timeoutMs: 600_000, env: { UXNET_QUIET: '1' } });
  const metrics = async (out: string) =>
    (await readFile(join(out, 'metrics.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { step: number; loss: number });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'uxnet-train-webgpu-'));
    await writeSyntheticDataset(join(dir, 'data'), 4);
    cfg = join(dir, 'train.json');
    await writeFile(
      cfg,
      JSON.stringify({
        dataset: join(dir, 'data'),
        preset: 'auto',
        cacheDir: join(dir, 'cache'),
        network: { featSize: [4, 8, 16, 32], hiddenSize: 16, depths: [1, 1, 1, 1] },
        roiSize: [16, 16, 32],
        cropsPerVolume: 1,
        valEvery: 100,
        saveEvery: 1,
        workers: 1,
        lr: 1e-3,
      }),
    );
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('checkpoints, resumes exactly, and matches the CPU backend', async () => {
    // Uninterrupted: 3 steps. Interrupted: 2 steps, then --resume to 3.
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    const c = join(dir, 'cpu');
    const ra = steps(a, 3, ['--backend', 'webgpu']);
    assert.equal(ra.status, 0, ra.stderr);
    assert.match(ra.stderr, /on backend 'webgpu'/);
    const rb = steps(b, 2, ['--backend', 'webgpu']);
    assert.equal(rb.status, 0, rb.stderr);
    const ckb2 = await loadCheckpoint(join(b, 'checkpoint_last.safetensors'));
    assert.equal(ckb2.state.step, 2);
    assert.ok(ckb2.optimizer && ckb2.optimizer.state.size > 0, 'AdamW moments saved from the GPU');
    const rb3 = steps(b, 3, ['--backend', 'webgpu', '--resume']);
    assert.equal(rb3.status, 0, rb3.stderr);
    assert.match(rb3.stderr, /resuming at step 2 of 3/);
    for (const f of ['checkpoint_last.safetensors', 'checkpoint_best.safetensors', 'model/model.json', 'model/weights.safetensors'])
      assert.ok(existsSync(join(b, f)), `${f} written`);

    // WebGPU kernels are deterministic (no atomics): the resumed run equals the uninterrupted one bit for bit.
    const ca = await loadCheckpoint(join(a, 'checkpoint_last.safetensors'));
    const cb = await loadCheckpoint(join(b, 'checkpoint_last.safetensors'));
    assert.equal(cb.state.step, 3);
    for (const [k, t] of ca.model) assert.deepEqual(cb.model.get(k)!.data, t.data, `parameter ${k}`);
    for (const [k, s] of ca.optimizer!.state) {
      assert.equal(cb.optimizer!.state.get(k)!.step, 3);
      assert.deepEqual(cb.optimizer!.state.get(k)!.expAvg, s.expAvg, `AdamW m of ${k}`);
      assert.deepEqual(cb.optimizer!.state.get(k)!.expAvgSq, s.expAvgSq, `AdamW v of ${k}`);
    }
    const ma = await metrics(a);
    const mb = await metrics(b);
    assert.deepEqual(
      mb.map((l) => l.step),
      [1, 2, 3],
    );
    assert.deepEqual(
      mb.map((l) => l.loss),
      ma.map((l) => l.loss),
    );

    // The same run on the CPU backend (same seed, same crops): step 1 computes the loss of the same
    // initial weights (float32 rounding only); later steps follow AdamW on slightly different gradients.
    const rc = steps(c, 3, ['--backend', cpu]);
    assert.equal(rc.status, 0, rc.stderr);
    const mc = await metrics(c);
    assert.ok(Math.abs(ma[0]!.loss - mc[0]!.loss) <= 1e-5 * Math.abs(mc[0]!.loss), `step 1 loss ${ma[0]!.loss} (webgpu) vs ${mc[0]!.loss} (${cpu})`);
    for (let i = 1; i < 3; i++)
      assert.ok(Math.abs(ma[i]!.loss - mc[i]!.loss) <= 1e-3 * Math.abs(mc[i]!.loss), `step ${i + 1} loss ${ma[i]!.loss} (webgpu) vs ${mc[i]!.loss} (${cpu})`);
  });
});
