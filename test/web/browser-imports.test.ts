/**
 * The browser app's module graph (web/src and everything it reaches in src/) must not import Node
 * built-ins or Node-only packages: such an import builds, then fails in the browser at run time.
 * Checked on the TypeScript sources, so it runs without a browser.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { ROOT } from '../helpers/cli.js';

const ENTRIES = ['web/src/main.ts', 'src/browser/segment-worker.ts'];
/** Packages the app may import (bundled by Vite). */
// zod validates file formats (model.json) and is plain JavaScript with no Node dependency.
const ALLOWED_PACKAGES = ['@niivue/niivue', 'zod'];

/** Static import/export specifiers of a TypeScript file (type-only imports are erased, so skipped). */
function specifiers(source: string): string[] {
  const out: string[] = [];
  const re = /^\s*(import|export)\s+(type\s+)?(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]/gm;
  for (const m of source.matchAll(re)) if (!m[2]) out.push(m[3]!);
  // new URL('./x.ts', import.meta.url) loads a worker module: part of the graph too.
  for (const m of source.matchAll(/new URL\(\s*['"]([^'"]+)['"]\s*,\s*import\.meta\.url/g)) out.push(m[1]!);
  return out;
}

function resolveTs(from: string, spec: string): string {
  const base = join(dirname(from), spec);
  for (const candidate of [base.replace(/\.js$/, '.ts'), base, `${base}.ts`]) if (existsSync(candidate) && candidate.endsWith('.ts')) return candidate;
  throw new Error(`${relative(ROOT, from)}: cannot resolve '${spec}'`);
}

test('the browser app imports no Node built-ins or Node-only packages', () => {
  const seen = new Set<string>();
  const bad: string[] = [];
  const queue = ENTRIES.map((e) => join(ROOT, e));
  while (queue.length) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const spec of specifiers(readFileSync(file, 'utf8'))) {
      if (spec.startsWith('.')) queue.push(resolveTs(file, spec));
      else if (!ALLOWED_PACKAGES.includes(spec)) bad.push(`${relative(ROOT, file)} imports '${spec}'`);
    }
  }
  assert.deepEqual(bad, []);
  // The graph really reaches the engine, the model, the pipeline and the readers.
  const files = [...seen].map((f) => relative(ROOT, f));
  for (const f of [
    'src/infer/predict.ts',
    'src/models/uxnet.ts',
    'src/backends/webgpu/index.ts',
    'src/backends/reference/index.ts',
    'src/io/nifti/parse.ts',
    'src/io/pth-format.ts',
    'src/data/invert.ts',
  ]) {
    assert.ok(files.includes(f), `${f} is part of the browser graph`);
  }
});

test('the browser-safe readers match the Node ones on real files', async () => {
  const { parseNifti, parseNiftiAsync, decodeRaw } = await import('../../src/io/nifti/index.js');
  const { gunzip, gzip, webZipCodec } = await import('../../src/io/web-compression.js');
  const { parsePth, parsePthAsync } = await import('../../src/io/pth.js');
  const { crc32 } = await import('../../src/io/crc32.js');
  const { decodeEntryAsync } = await import('../../src/io/zip-format.js');
  const { crc32: zlibCrc32, deflateRawSync } = await import('node:zlib');
  const file = join(ROOT, 'datasets', 'msd-hippocampus', 'labelsTr', 'hippocampus_053.nii.gz');
  const bytes = new Uint8Array(readFileSync(file));
  const a = parseNifti(bytes, file);
  const b = await parseNiftiAsync(bytes, gunzip, file);
  assert.deepEqual(b.shape, a.shape);
  assert.deepEqual([...b.affine], [...a.affine]);
  assert.deepEqual(decodeRaw(b), decodeRaw(a));
  // CompressionStream round trip, and a clear error for a truncated stream.
  assert.deepEqual(await gunzip(await gzip(bytes)), bytes);
  await assert.rejects(parseNiftiAsync(bytes.subarray(0, bytes.length >> 1), gunzip, 'half.nii.gz'), /half\.nii\.gz: corrupt or truncated gzip/);
  const sample = bytes.subarray(0, 4097);
  assert.equal(crc32(sample), zlibCrc32(sample));
  // The .pth fixture reads the same through the asynchronous runner.
  const pth = new Uint8Array(readFileSync(join(ROOT, 'test', 'fixtures', 'tiny_weights.pth')));
  const web = await parsePthAsync(pth, webZipCodec);
  const node = parsePth(pth);
  assert.ok(node.size > 0);
  assert.deepEqual([...web.keys()], [...node.keys()]);
  for (const [k, v] of node) assert.deepEqual(web.get(k)!.data, v.data, k);
  // A deflated entry through DecompressionStream('deflate-raw'), and a corrupt one.
  const data = bytes.subarray(0, 10000);
  const entry = { name: 'x', method: 8, flags: 0, crc32: zlibCrc32(data), compressedSize: 0, uncompressedSize: data.length, localHeaderOffset: 0 };
  assert.deepEqual(await decodeEntryAsync({ decode: entry, raw: deflateRawSync(data) }, webZipCodec), data);
  await assert.rejects(decodeEntryAsync({ decode: entry, raw: deflateRawSync(data).subarray(0, 100) }, webZipCodec), /cannot inflate 'x'/);
});
