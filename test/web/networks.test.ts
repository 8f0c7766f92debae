/**
 * Every network runs in the browser app through the user's path: the "Model folder" picker takes a
 * folder as `uxnet train` writes it (SwinUNETR, UNETR, nnFormer, TransBTS, and an ensemble mixing two
 * networks), the page segments the bundled sample case on the CPU worker (reference backend) and the
 * downloaded labels must equal, voxel for voxel, what `uxnet predict --backend reference` writes
 * with the same folder. TransBTS (transformer and BatchNorm) also runs on WebGPU (SwiftShader without a GPU),
 * where float rounding may move a few boundary voxels.
 *
 * The folders are seeded, untrained and tiny (see ../helpers/tiny-model-folders.ts), with a coarse
 * resampling step so a window or two covers the image: what is checked is that the page builds each
 * network, windows, blends and inverts exactly as the CLI does, not what the networks learned.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Browser } from 'playwright-core';
import { ROOT } from '../helpers/cli.js';
import { TINY_NETWORKS, writeTinyEnsemble, writeTinyModelFolder } from '../helpers/tiny-model-folders.js';
import { CHROMIUM, CHROMIUM_ARGS, disagreement, labelsOf, NO_CHROMIUM, openApp, segmentAndDownload, serve, type Labels } from '../helpers/web-app.js';

const DATASET = join(ROOT, 'datasets', 'msd-hippocampus');
/** WebGPU against the reference backend: the share of voxels float rounding may flip at class boundaries. */
const MAX_WEBGPU_DISAGREEMENT = 0.002;

/** The folders, each a different network (the ensemble averages UNETR and TransBTS, which resample differently). */
const FOLDERS = ['swin_unetr', 'unetr', 'nnformer', 'transbts', 'ensemble'] as const;
const WEBGPU_FOLDER = 'transbts';

function voxelCounts(l: Labels): number[] {
  const n = [0, 0, 0];
  for (const v of l.data) n[v]!++;
  return n;
}

test('browser app: a model folder of every network segments as `uxnet predict` does', { skip: NO_CHROMIUM, timeout: 600_000 }, async (t) => {
  const started = Date.now();
  const work = mkdtempSync(join(tmpdir(), 'uxnet-web-networks-'));
  const log: string[] = [];
  let browser: Browser | undefined;
  let server: Server | undefined;
  try {
    const models = join(work, 'models');
    let seed = 1;
    for (const name of ['swin_unetr', 'unetr', 'nnformer', 'transbts'] as const) writeTinyModelFolder(join(models, name), TINY_NETWORKS[name], seed++);
    writeTinyEnsemble(join(models, 'ensemble'), [
      { path: 'unetr', net: TINY_NETWORKS.unetr, seed: 11 },
      { path: 'transbts', net: TINY_NETWORKS.transbts, seed: 12 },
    ]);
    // A folder that is not a model folder, for the page's message.
    mkdirSync(join(work, 'not-a-model'));
    writeFileSync(join(work, 'not-a-model', 'notes.txt'), 'no model here');

    const { build } = await import('vite');
    const dist = join(work, 'dist');
    await build({ configFile: join(ROOT, 'web', 'vite.config.ts'), logLevel: 'error', build: { outDir: dist, emptyOutDir: true } });
    const sample = (JSON.parse(readFileSync(join(dist, 'sample', 'files.json'), 'utf8')) as { image: string }).image;
    const imagePath = join(DATASET, 'imagesTr', sample);
    assert.deepEqual(readFileSync(join(dist, 'sample', sample)), readFileSync(imagePath), 'the sample is the dataset case');

    // `uxnet predict` with each folder, one process after the other beside the browser's worker.
    const cliRuns = (async () => {
      const out = new Map<string, Labels>();
      for (const name of FOLDERS) {
        const file = join(work, `${name}-cli.nii.gz`);
        await promisify(execFile)(process.execPath, [join(ROOT, 'bin', 'uxnet.js'), 'predict', '-i', imagePath, '-o', file, '-m', join(models, name), '--backend', 'reference'], {
          cwd: ROOT,
          env: { ...process.env, UXNET_QUIET: '1' },
        });
        out.set(name, labelsOf(readFileSync(file), `uxnet predict -m ${name}`));
      }
      return out;
    })();
    cliRuns.catch(() => {}); // awaited below
    const built = Date.now();

    const served = await serve(dist);
    server = served.server;
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });

    const gpu = await openApp(browser, served.origin, {}, log);
    assert.equal(await gpu.page.getAttribute('#gpu-status', 'data-state'), 'webgpu', `chromium found no WebGPU adapter: ${await gpu.page.textContent('#gpu-status')}`);
    const cpu = await openApp(browser, served.origin, { noWebGPU: true }, log);
    await cpu.page.click('#use-cpu');
    for (const p of [gpu.page, cpu.page]) {
      await p.click('#sample');
      await p.waitForFunction(() => document.body.dataset.state === 'idle');
      await p.check('#model-custom');
    }

    // The WebGPU page works on its one network while the CPU page goes through all of them.
    await gpu.page.setInputFiles('#folder-input', join(models, WEBGPU_FOLDER));
    await gpu.page.waitForFunction(() => document.getElementById('folder-input')?.dataset.model === 'tiny-transbts');
    const gpuRun = segmentAndDownload(gpu.page, `WebGPU ${WEBGPU_FOLDER}`);
    gpuRun.catch(() => {}); // awaited below

    await cpu.page.setInputFiles('#folder-input', join(work, 'not-a-model'));
    await cpu.page.waitForFunction(() => document.body.dataset.state === 'error');
    assert.equal((await cpu.page.textContent('#error'))?.trim(), 'not-a-model is not a model folder: model.json is missing');

    const page = new Map<string, { labels: Labels; rows: { label: number; voxels: number }[]; seconds: number }>();
    for (const name of FOLDERS) {
      await cpu.page.setInputFiles('#folder-input', join(models, name));
      const want = name === 'ensemble' ? 'tiny-ensemble' : `tiny-${name}`;
      await cpu.page.waitForFunction((w) => document.getElementById('folder-input')?.dataset.model === w && document.body.dataset.state === 'idle', want);
      const run = await segmentAndDownload(cpu.page, `CPU ${name}`);
      assert.equal(run.backend, 'reference', `${name}: the CPU worker ran`);
      page.set(name, run);
    }

    const cli = await cliRuns;
    for (const name of FOLDERS) {
      const got = page.get(name)!;
      const want = cli.get(name)!;
      const counts = voxelCounts(want);
      t.diagnostic(`${name}: CPU worker ${got.seconds.toFixed(1)} s; uxnet predict voxels per class ${counts.join('/')}`);
      // Untrained networks still split the image into classes; a constant map would make the comparison empty.
      assert.ok(counts.filter((c) => c > 0).length >= 2, `${name}: uxnet predict gave a single class (${counts.join('/')})`);
      assert.deepEqual(got.labels.shape, want.shape, `${name}: labels on the input grid`);
      assert.deepEqual([...got.labels.img.affine], [...want.img.affine], `${name}: the input's geometry`);
      assert.equal(disagreement(got.labels.data, want.data), 0, `${name}: the page's labels differ from uxnet predict's`);
      assert.deepEqual(
        got.rows.map((r) => [r.label, r.voxels]),
        [
          [1, counts[1]],
          [2, counts[2]],
        ],
        `${name}: the volumes table`,
      );
    }

    const webgpu = await gpuRun;
    assert.equal(webgpu.backend, 'webgpu', 'the WebGPU page ran on WebGPU');
    const vsCli = disagreement(webgpu.labels.data, cli.get(WEBGPU_FOLDER)!.data);
    t.diagnostic(`${WEBGPU_FOLDER} on WebGPU: ${webgpu.seconds.toFixed(1)} s, ${(vsCli * 100).toFixed(3)}% of voxels differ from uxnet predict (reference)`);
    assert.ok(vsCli <= MAX_WEBGPU_DISAGREEMENT, `${WEBGPU_FOLDER}: WebGPU labels differ from uxnet predict in ${(vsCli * 100).toFixed(3)}% of voxels`);

    for (const p of [gpu, cpu]) {
      assert.deepEqual(p.offsite, [], "no request leaves the app's origin");
      assert.deepEqual(p.errors, [], 'no page errors');
    }
    t.diagnostic(`build ${((built - started) / 1000).toFixed(1)} s; total ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (e) {
    if (log.length) t.diagnostic(`browser console:\n${log.slice(-40).join('\n')}`);
    throw e;
  } finally {
    await browser?.close();
    server?.close();
    rmSync(work, { recursive: true, force: true });
  }
});
