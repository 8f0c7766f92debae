import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { writeSyntheticDataset } from '../helpers/synthetic-dataset.js';
import { assertUserError, uxnet } from '../helpers/cli.js';
import { discoverDataset } from '../../src/data/dataset.js';
import { readCached, type CacheEntry } from '../../src/data/cache.js';
import { cacheCasesParallel, CacheCaseError, liveCacheWorkers, poolSize } from '../../src/data/cache-pool.js';
import { runPreprocess } from '../../src/cli/commands/preprocess.js';
import type { StepSpec } from '../../src/data/pipeline.js';

const steps: StepSpec[] = [{ op: 'spacing', pixdim: [1, 1, 1] }, { op: 'orientation', axcodes: 'RAS' }, { op: 'zScore' }];

/** A plan's JSON with the cache folder written as DIR, so plans of two cache folders compare. */
async function planText(dir: string): Promise<string> {
  return (await readFile(join(dir, 'plan.json'), 'utf8')).split(dir).join('DIR');
}

describe('preprocessing in worker threads', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'uxnet-pool-'));
    await writeSyntheticDataset(join(dir, 'data'), 5);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('pool size: the requested count (default 2), at most one per core and one per case', () => {
    const cores = availableParallelism();
    assert.equal(poolSize(undefined, 100), Math.min(2, cores));
    assert.equal(poolSize(1, 100), 1);
    assert.equal(poolSize(1000, 100), Math.min(cores, 100));
    assert.equal(poolSize(8, 3), Math.min(3, cores));
    assert.equal(poolSize(8, 0), 1);
  });

  it('gives the same cache, in case order, with 1 and 2 workers', async () => {
    const ds = discoverDataset(join(dir, 'data'));
    const seen: string[] = [];
    const one = await cacheCasesParallel(ds.cases, steps, join(dir, 'c1'), { workers: 1 });
    const two = await cacheCasesParallel(ds.cases, steps, join(dir, 'c2'), { workers: 2, onDone: (c) => seen.push(c.id) });
    assert.equal(liveCacheWorkers(), 0, 'no worker left running');
    assert.deepEqual(
      one.map((e) => e.id),
      ds.cases.map((c) => c.id),
    );
    assert.deepEqual(
      two.map((e) => e.id),
      ds.cases.map((c) => c.id),
    );
    assert.deepEqual([...seen].sort(), ds.cases.map((c) => c.id).sort(), 'progress reported once per case');
    for (let i = 0; i < one.length; i++) {
      assert.deepEqual(two[i]!.shape, one[i]!.shape);
      assert.deepEqual(two[i]!.ops, one[i]!.ops);
      assert.equal(basename(two[i]!.image), basename(one[i]!.image));
      assert.deepEqual(await readFile(two[i]!.image), await readFile(one[i]!.image), `${one[i]!.id}: identical cached image`);
      assert.deepEqual(await readFile(two[i]!.label!), await readFile(one[i]!.label!), `${one[i]!.id}: identical cached label`);
    }
  });

  it('a cache folder that was moved is reused where it now is, not read from where it was written', async () => {
    const ds = discoverDataset(join(dir, 'data'));
    const [from, to] = [join(dir, 'moved-from'), join(dir, 'moved-to')];
    const first = await cacheCasesParallel(ds.cases, steps, from, { workers: 1 });
    await rename(from, to);
    const metaBefore = await stat(join(to, `${basename(first[0]!.image, '.image.nii')}.json`));
    const again = await cacheCasesParallel(ds.cases, steps, to, { workers: 1 });
    for (let i = 0; i < again.length; i++) {
      assert.equal(again[i]!.image, join(to, basename(first[i]!.image)), `${again[i]!.id}: image in the new folder`);
      assert.equal(again[i]!.label, join(to, basename(first[i]!.label!)), `${again[i]!.id}: label in the new folder`);
      assert.deepEqual(again[i]!.ops, first[i]!.ops);
    }
    const metaAfter = await stat(join(to, `${basename(first[0]!.image, '.image.nii')}.json`));
    assert.equal(metaAfter.mtimeMs, metaBefore.mtimeMs, 'reused, not recomputed');
    const [a, b] = [await readCached(first[0]!).catch(() => null), await readCached(again[0]!)];
    assert.equal(a, null, 'the old path is gone');
    assert.deepEqual(b.image.shape, first[0]!.shape);
    assert.ok(
      b.label!.data.some((v) => v > 0),
      'the moved label reads back with its foreground',
    );
  });

  it('uxnet preprocess: the same plan and cache files, byte for byte, with --workers 1 and 2', async () => {
    const a = join(dir, 'p1'),
      b = join(dir, 'p2');
    const ra = await runPreprocess({ dataset: join(dir, 'data'), preset: 'auto', cache: a, plain: true, workers: 1 });
    const rb = await runPreprocess({ dataset: join(dir, 'data'), preset: 'auto', cache: b, plain: true, workers: 2 });
    const rel = (es: CacheEntry[], d: string) => JSON.stringify(es).split(d).join('DIR');
    assert.equal(rel(rb.entries, b), rel(ra.entries, a), 'plan entries');
    assert.equal(await planText(b), await planText(a), 'plan.json');
    const names = (await readdir(a)).sort();
    assert.deepEqual((await readdir(b)).sort(), names);
    assert.equal(names.length, 1 + 5 * 3, 'plan.json and image, label, meta per case');
    for (const n of names.filter((x) => x !== 'plan.json')) {
      const [fa, fb] = [await readFile(join(a, n)), await readFile(join(b, n))];
      if (n.endsWith('.json')) assert.equal(fb.toString().split(b).join('DIR'), fa.toString().split(a).join('DIR'), n);
      else assert.ok(fa.equals(fb), `${n}: identical bytes`);
    }
  });

  it('a broken case fails with its id and file, stops the pool and leaves a valid, resumable cache', async () => {
    const data = join(dir, 'broken');
    await writeSyntheticDataset(data, 5);
    const ds = discoverDataset(data);
    const bad = ds.cases[3]!;
    const good = await readFile(bad.images[0]!);
    await writeFile(bad.images[0]!, 'not a nifti file');
    const cache = join(dir, 'c3');
    await assert.rejects(
      cacheCasesParallel(ds.cases, steps, cache, { workers: 2 }),
      (e: Error) => e instanceof CacheCaseError && e.caseId === bad.id && !e.internal && e.message.startsWith(`case '${bad.id}': `) && e.message.includes(bad.images[0]!),
    );
    assert.equal(liveCacheWorkers(), 0, 'every worker stopped before the error is reported');

    // The CLI: one line naming the case and the file.
    const r = uxnet(['preprocess', '--dataset', data, '--preset', 'feta', '--cache', cache, '--workers', '2'], { env: { UXNET_QUIET: '1' } });
    assertUserError(r, new RegExp(`case '${bad.id}': .*${basename(bad.images[0]!).replace(/\./g, '\\.')}`));

    // Whatever was finished is a complete, readable entry; no half-written files are left.
    const files = await readdir(cache);
    assert.ok(!files.some((f) => f.includes('.tmp-')), `no temporary files: ${files}`);
    const metas = files.filter((f) => f.endsWith('.json'));
    for (const m of metas) {
      const e = JSON.parse(await readFile(join(cache, m), 'utf8')) as CacheEntry;
      assert.notEqual(e.id, bad.id);
      const s = await readCached(e);
      assert.deepEqual(s.image.shape, e.shape);
    }
    // Fixing the file and running again resumes: finished entries are reused, not rewritten.
    const mtimes = new Map(await Promise.all(metas.map(async (m) => [m, (await stat(join(cache, m))).mtimeMs] as const)));
    await writeFile(bad.images[0]!, good);
    const entries = await cacheCasesParallel(ds.cases, steps, cache, { workers: 2 });
    assert.deepEqual(
      entries.map((e) => e.id),
      ds.cases.map((c) => c.id),
    );
    for (const [m, t] of mtimes) assert.equal((await stat(join(cache, m))).mtimeMs, t, `${m} reused`);
  });

  it('an error without a file name gets the case files added', async () => {
    const ds = discoverDataset(join(dir, 'data'));
    await assert.rejects(
      cacheCasesParallel(ds.cases.slice(0, 2), [{ op: 'orientation', axcodes: 'RAX' }], join(dir, 'c4'), { workers: 2 }),
      (e: Error) => e instanceof CacheCaseError && /axcode 'X'/.test(e.message) && e.message.includes(`(files: ${ds.cases[e.caseId === ds.cases[0]!.id ? 0 : 1]!.images[0]}`),
    );
    assert.equal(liveCacheWorkers(), 0);
  });
});
