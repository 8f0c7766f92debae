/**
 * The browser app end to end, in Debian's chromium (never a downloaded browser) driven by
 * playwright-core: build web/ with Vite, serve it on 127.0.0.1, segment a held-out hippocampus case
 * on WebGPU (SwiftShader without a GPU) and, with navigator.gpu removed, on the CPU worker; check
 * the downloaded labels against the expert labels and against `uxnet predict` on the same case.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from '../helpers/cli.js';
import { CHROMIUM, CHROMIUM_ARGS, disagreement, labelsOf, NO_CHROMIUM, openApp, segmentAndDownload, serve } from '../helpers/web-app.js';
import { parseNifti } from '../../src/io/nifti/index.js';
import type { Browser } from 'playwright-core';

// The shipped model is a 5-fold ensemble; the app is tested with its fold-0 member (one network, and
// the member's own held-out cases), which keeps SwiftShader's share of CI time at one model's.
// Ensembles in the app are tested in test/web/model-folder.test.ts.
const MODEL_DIR = join(ROOT, 'models', 'hippocampus', 'fold_0');
const DATASET = join(ROOT, 'datasets', 'msd-hippocampus');
/** Voxels allowed to differ from `uxnet predict` (float rounding differs between backends at class boundaries). */
const MAX_DISAGREEMENT = 0.002;
const MIN_DICE = 0.75;

/** A case the bundled model never trained on: its own recorded validation split, else fold 0's. */
function heldOutCase(): string {
  const manifest = JSON.parse(readFileSync(join(MODEL_DIR, 'model.json'), 'utf8')) as { training?: { split?: { val?: string[] } } };
  const ids = manifest.training?.split?.val ?? (JSON.parse(readFileSync(join(ROOT, 'recipes', 'hippocampus', 'split-fold0.json'), 'utf8')) as { val: string[] }).val;
  assert.ok(ids.length > 0, 'no held-out case recorded');
  return ids[0]!;
}

function dice(a: Uint8Array, b: Uint8Array, c: number): number {
  let inter = 0,
    na = 0,
    nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] === c,
      y = b[i] === c;
    if (x) na++;
    if (y) nb++;
    if (x && y) inter++;
  }
  return na + nb === 0 ? 1 : (2 * inter) / (na + nb);
}

test('browser app: WebGPU and CPU-worker segmentation in chromium', {
  skip: NO_CHROMIUM,
  timeout: 900_000,
}, async (t) => {
  const started = Date.now();
  const caseId = heldOutCase();
  const imagePath = join(DATASET, 'imagesTr', `${caseId}.nii.gz`);
  const truthPath = join(DATASET, 'labelsTr', `${caseId}.nii.gz`);
  const work = mkdtempSync(join(tmpdir(), 'uxnet-web-'));
  const log: string[] = [];
  let browser: Browser | undefined;
  let server: Server | undefined;
  try {
    // What the Node CLI predicts for the same case and model, computed while the browser works.
    const cliOut = join(work, 'cli.nii.gz');
    const cli = promisify(execFile)(process.execPath, [join(ROOT, 'bin', 'uxnet.js'), 'predict', '-i', imagePath, '-o', cliOut, '-m', MODEL_DIR], {
      cwd: ROOT,
      env: { ...process.env, UXNET_QUIET: '1' },
    });
    cli.catch(() => {}); // awaited below

    const { build } = await import('vite');
    const dist = join(work, 'dist');
    const previous = process.env.UXNET_WEB_MODEL;
    process.env.UXNET_WEB_MODEL = MODEL_DIR; // read when vite evaluates the config
    try {
      await build({ configFile: join(ROOT, 'web', 'vite.config.ts'), logLevel: 'error', build: { outDir: dist, emptyOutDir: true } });
    } finally {
      if (previous === undefined) delete process.env.UXNET_WEB_MODEL;
      else process.env.UXNET_WEB_MODEL = previous;
    }
    assert.ok(existsSync(join(dist, 'index.html')) && existsSync(join(dist, 'model', 'model.json')), 'the build holds the app and the bundled model');
    assert.deepEqual(readFileSync(join(dist, 'sample', `${caseId}.nii.gz`)), readFileSync(imagePath), 'the build bundles the held-out case as its sample');
    const built = Date.now();
    const served = await serve(dist);
    server = served.server;
    const { origin } = served;

    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });

    // The CPU page: started first, it runs longest (reference backend in a worker).
    const cpu = await openApp(browser, origin, { noWebGPU: true }, log);
    assert.equal(await cpu.page.getAttribute('#gpu-status', 'data-state'), 'none');
    assert.match((await cpu.page.textContent('#gpu-status')) ?? '', /WebGPU is not available.*CPU/s);
    await cpu.page.setInputFiles('#image-input', imagePath);
    await cpu.page.waitForFunction(() => document.body.dataset.state === 'idle');
    await cpu.page.click('#segment');
    assert.match((await cpu.page.textContent('#error')) ?? '', /Use the CPU/, 'without WebGPU, Segment says how to proceed');
    await cpu.page.click('#use-cpu');
    const cpuRun = segmentAndDownload(cpu.page, 'CPU');
    cpuRun.catch(() => {}); // awaited below

    // The WebGPU page, with bad input first: a file that is not a NIfTI, weights that do not fit.
    const gpu = await openApp(browser, origin, {}, log);
    const status = await gpu.page.getAttribute('#gpu-status', 'data-state');
    assert.equal(status, 'webgpu', `chromium found no WebGPU adapter: ${await gpu.page.textContent('#gpu-status')}`);
    await gpu.page.setInputFiles('#image-input', { name: 'notes.nii.gz', mimeType: 'application/gzip', buffer: Buffer.from('these are not voxels') });
    await gpu.page.waitForFunction(() => document.body.dataset.state === 'error');
    assert.match((await gpu.page.textContent('#error')) ?? '', /notes\.nii\.gz.*NIfTI/s);
    // The empty viewer says what to do; "Try a sample" loads the bundled held-out case (the same file
    // as imagePath: the labels below are checked against its expert labels and `uxnet predict`).
    assert.equal(await gpu.page.isVisible('#viewer-empty'), true, 'the empty viewer shows a hint');
    assert.match((await gpu.page.textContent('#viewer-empty')) ?? '', /No image yet.*Try a sample/s);
    assert.equal(await gpu.page.getAttribute('#sample', 'data-image'), `${caseId}.nii.gz`);
    await gpu.page.click('#sample');
    await gpu.page.waitForFunction(() => document.body.dataset.state === 'idle');
    assert.equal(await gpu.page.$eval('#image-input', (el) => (el as HTMLInputElement).value), '', 'the file picker no longer names the bad file');
    assert.match((await gpu.page.textContent('#stage')) ?? '', new RegExp(`^${caseId}\\.nii\\.gz: \\d+ × \\d+ × \\d+ voxels$`));
    await gpu.page.waitForFunction(() => (document.getElementById('viewer-empty') as HTMLElement).hidden, null, { timeout: 30_000 });
    await gpu.page.check('#model-custom');
    await gpu.page.setInputFiles('#weights-input', join(ROOT, 'test', 'fixtures', 'tiny_blocks.safetensors'));
    await gpu.page.click('#segment');
    await gpu.page.waitForFunction(() => document.body.dataset.state === 'error', null, { timeout: 120_000 });
    assert.match((await gpu.page.textContent('#error')) ?? '', /tiny_blocks\.safetensors does not fit .*missing/s);
    await gpu.page.check('#model-bundled');

    const webgpu = await segmentAndDownload(gpu.page, 'WebGPU');
    assert.equal(webgpu.backend, 'webgpu', 'the app reports that WebGPU ran');
    assert.match((await gpu.page.textContent('#backend-used')) ?? '', /WebGPU/);
    await gpu.page.waitForFunction(() => document.body.dataset.overlay === 'shown');
    await gpu.page.evaluate(() => window.scrollTo(0, 0)); // the screenshot shows the page from its top
    await gpu.page.waitForTimeout(300); // one more frame of the viewer
    const shot = process.env.UXNET_UPDATE_SCREENSHOT === '1' ? join(ROOT, 'docs', 'web-app.png') : join(work, 'web-app.png');
    await gpu.page.screenshot({ path: shot });
    assert.ok(readFileSync(shot).byteLength > 10_000, 'screenshot written');
    t.diagnostic(`screenshot: ${shot}`);

    // The labels: the input's grid and geometry, expert agreement, and `uxnet predict` agreement.
    const input = parseNifti(readFileSync(imagePath), imagePath);
    const truth = labelsOf(readFileSync(truthPath), truthPath);
    await cli;
    const cliLabels = labelsOf(readFileSync(cliOut), 'uxnet predict');
    assert.deepEqual(webgpu.labels.shape, input.shape, 'labels on the input grid');
    assert.deepEqual([...webgpu.labels.img.affine], [...input.affine], 'labels carry the input geometry');
    assert.deepEqual([...webgpu.labels.img.affine], [...cliLabels.img.affine]);
    const classes = webgpu.rows.map((r) => r.label);
    assert.ok(classes.length >= 1 && classes.every((c) => c > 0), `foreground classes listed: ${JSON.stringify(classes)}`);
    for (const c of classes) {
      const d = dice(webgpu.labels.data, truth.data, c);
      t.diagnostic(`WebGPU Dice class ${c}: ${d.toFixed(4)} (uxnet predict: ${dice(cliLabels.data, truth.data, c).toFixed(4)})`);
      assert.ok(d >= MIN_DICE, `class ${c}: Dice ${d.toFixed(4)} vs the expert labels is below ${MIN_DICE}`);
    }
    const vsCli = disagreement(webgpu.labels.data, cliLabels.data);
    t.diagnostic(`WebGPU vs uxnet predict: ${(vsCli * 100).toFixed(3)}% of ${webgpu.labels.data.length} voxels differ`);
    assert.ok(vsCli <= MAX_DISAGREEMENT, `WebGPU labels differ from uxnet predict in ${(vsCli * 100).toFixed(3)}% of voxels`);

    // Volumes: voxel count x voxel volume of the header, per class.
    const voxelMl = Math.abs(input.header.pixdim[1]! * input.header.pixdim[2]! * input.header.pixdim[3]!) / 1000;
    for (const r of webgpu.rows) {
      const count = webgpu.labels.data.reduce((n, v) => n + (v === r.label ? 1 : 0), 0);
      assert.equal(r.voxels, count, `class ${r.label}: voxel count shown`);
      assert.ok(Math.abs(r.ml - count * voxelMl) <= 1e-9 * Math.max(1, r.ml), `class ${r.label}: ${r.ml} mL shown, ${count * voxelMl} expected`);
    }

    const cpuResult = await cpuRun;
    t.diagnostic(
      `build ${((built - started) / 1000).toFixed(1)} s; WebGPU segmentation ${webgpu.seconds.toFixed(1)} s; CPU worker ${cpuResult.seconds.toFixed(1)} s; total ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    assert.equal(cpuResult.backend, 'reference', 'without WebGPU the CPU worker ran');
    const cpuVsGpu = disagreement(cpuResult.labels.data, webgpu.labels.data);
    const cpuVsCli = disagreement(cpuResult.labels.data, cliLabels.data);
    t.diagnostic(`CPU worker vs WebGPU: ${(cpuVsGpu * 100).toFixed(3)}%, vs uxnet predict: ${(cpuVsCli * 100).toFixed(3)}% of voxels differ`);
    assert.ok(cpuVsCli <= MAX_DISAGREEMENT && cpuVsGpu <= MAX_DISAGREEMENT, 'the CPU worker gives the same labels');

    for (const p of [gpu, cpu]) {
      assert.deepEqual(p.offsite, [], "no request leaves the app's origin");
      assert.deepEqual(p.errors, [], 'no page errors');
    }
  } catch (e) {
    if (log.length) t.diagnostic(`browser console:\n${log.slice(-40).join('\n')}`);
    throw e;
  } finally {
    await browser?.close();
    server?.close();
    rmSync(work, { recursive: true, force: true });
  }
});
