import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { writeSyntheticDataset } from '../helpers/synthetic-dataset.js';
import { discoverDataset } from '../../src/data/dataset.js';
import { cacheCasesParallel, CacheCaseError } from '../../src/data/cache-pool.js';
import type { StepSpec } from '../../src/data/pipeline.js';

const steps: StepSpec[] = [{ op: 'spacing', pixdim: [1, 1, 1] }, { op: 'orientation', axcodes: 'RAS' }, { op: 'zScore' }];

describe('preprocessing in worker threads', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'uxnet-pool-'));
    await writeSyntheticDataset(join(dir, 'data'), 5);
  });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('gives the same cache, in case order, with 1 and 2 workers', async () => {
    const ds = discoverDataset(join(dir, 'data'));
    const seen: string[] = [];
    const one = await cacheCasesParallel(ds.cases, steps, join(dir, 'c1'), { workers: 1 });
    const two = await cacheCasesParallel(ds.cases, steps, join(dir, 'c2'), { workers: 2, onDone: (c) => seen.push(c.id) });
    assert.deepEqual(one.map((e) => e.id), ds.cases.map((c) => c.id));
    assert.deepEqual(two.map((e) => e.id), ds.cases.map((c) => c.id));
    assert.deepEqual([...seen].sort(), ds.cases.map((c) => c.id).sort(), 'progress reported once per case');
    for (let i = 0; i < one.length; i++) {
      assert.deepEqual(two[i]!.shape, one[i]!.shape);
      assert.deepEqual(two[i]!.ops, one[i]!.ops);
      assert.equal(basename(two[i]!.image), basename(one[i]!.image));
      assert.deepEqual(await readFile(two[i]!.image), await readFile(one[i]!.image), `${one[i]!.id}: identical cached image`);
      assert.deepEqual(await readFile(two[i]!.label!), await readFile(one[i]!.label!), `${one[i]!.id}: identical cached label`);
    }
  });

  it('a broken case fails with its id and stops the pool', async () => {
    const ds = discoverDataset(join(dir, 'data'));
    await writeFile(ds.cases[3]!.images[0]!, 'not a nifti file');
    await assert.rejects(
      cacheCasesParallel(ds.cases, steps, join(dir, 'c3'), { workers: 2 }),
      (e: Error) => e instanceof CacheCaseError && e.caseId === ds.cases[3]!.id && /case 'case_003'/.test(e.message),
    );
  });
});
