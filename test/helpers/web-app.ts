/**
 * Driving the browser app in Debian's chromium (never a downloaded browser) with playwright-core:
 * a static server for the built app, a page watched for errors and off-origin requests, and the
 * Segment → Download round trip. Shared by test/web/*.test.ts.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { decodeRaw, parseNifti, type NiftiImage } from '../../src/io/nifti/index.js';

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--enable-unsafe-webgpu',
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];
/** Why a browser test is skipped, or false when chromium is there. */
export const NO_CHROMIUM = !existsSync(CHROMIUM) && `${CHROMIUM} is not installed (Debian: apt-get install chromium); browser app test skipped`;

const TYPES: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/** A static file server for the built app on 127.0.0.1 with a random port. */
export async function serve(dir: string): Promise<{ server: Server; origin: string }> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const rel = normalize(decodeURIComponent(url.pathname === '/' ? '/index.html' : url.pathname)).replace(/^[/\\]+/, '');
    const file = join(dir, rel);
    if (!file.startsWith(dir + sep) || !existsSync(file)) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  assert.ok(addr && typeof addr === 'object');
  return { server, origin: `http://127.0.0.1:${addr.port}` };
}

export interface Labels {
  data: Uint8Array;
  shape: number[];
  img: NiftiImage;
}

export function labelsOf(bytes: Uint8Array, what: string): Labels {
  const img = parseNifti(bytes, what);
  const raw = decodeRaw(img);
  assert.ok(raw instanceof Uint8Array, `${what}: labels should be stored as uint8, got ${img.datatype.name}`);
  return { data: raw, shape: img.shape, img };
}

export function disagreement(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n / a.length;
}

export interface PageRun {
  labels: Labels;
  backend: string;
  rows: { label: number; voxels: number; ml: number }[];
  seconds: number;
}

/** Watches a page for errors and for any request leaving the app's origin. */
export function watch(page: Page, origin: string, log: string[]): { offsite: string[]; errors: string[] } {
  const offsite: string[] = [];
  const errors: string[] = [];
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(origin + '/') && !u.startsWith('blob:') && !u.startsWith('data:')) offsite.push(u);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('response', (r) => {
    if (r.status() >= 400) errors.push(`HTTP ${r.status()} for ${r.url()}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) errors.push(`console: ${m.text()}`); // HTTP errors are reported with their URL above
    log.push(`[${m.type()}] ${m.text()}`);
  });
  return { offsite, errors };
}

export async function segmentAndDownload(page: Page, what: string): Promise<PageRun> {
  const t0 = Date.now();
  await page.click('#segment');
  await page.waitForFunction(() => document.body.dataset.state === 'done' || document.body.dataset.state === 'error', null, { timeout: 540_000, polling: 500 });
  const state = await page.evaluate(() => document.body.dataset.state);
  assert.equal(state, 'done', `${what}: segmentation ended in state ${state}: ${await page.textContent('#error')}`);
  const seconds = (Date.now() - t0) / 1000;
  const backend = (await page.getAttribute('#backend-used', 'data-backend')) ?? '';
  const rows = await page.$$eval('#volumes tbody tr', (trs) =>
    trs.map((tr) => ({
      label: Number((tr as HTMLElement).dataset.label),
      voxels: Number((tr as HTMLElement).dataset.voxels),
      ml: Number((tr as HTMLElement).dataset.ml),
    })),
  );
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  assert.match(download.suggestedFilename(), /_labels\.nii\.gz$/);
  const bytes = await readFile(await download.path());
  return { labels: labelsOf(bytes, `${what} download`), backend, rows, seconds };
}

export async function openApp(browser: Browser, origin: string, opts: { noWebGPU?: boolean }, log: string[]) {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 800 } });
  if (opts.noWebGPU) {
    // As in a browser without WebGPU: the page finds no navigator.gpu.
    await context.addInitScript(() => {
      delete (Navigator.prototype as { gpu?: unknown }).gpu;
    });
  }
  const page = await context.newPage();
  const watched = watch(page, origin, log);
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => document.body.dataset.ready === 'true', null, { timeout: 60_000 });
  return { context, page, ...watched };
}
