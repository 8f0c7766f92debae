import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { runPreprocess } from '../../src/cli/commands/preprocess.js';
import { CacheReadError, PatchLoader, requestSeed, type LoadedPatch } from '../../src/data/loader/index.js';
import { InputError } from '../../src/engine/errors.js';
import { readCached, type CacheEntry } from '../../src/data/cache.js';
import { loadPreset, type RandomStepSpec } from '../../src/data/presets.js';
import { runRandomSteps } from '../../src/data/transforms/random.js';
import { Rng } from '../../src/engine/rng.js';
import { TDIR } from './monai-fixtures.js';

const SEED = 3;
const N = 6;

describe('PatchLoader (worker threads, prefetch)', () => {
  let root: string;
  let entries: CacheEntry[];
  let tail: RandomStepSpec[];
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'uxnet-loader-'));
    mkdirSync(join(root, 'imagesTr'));
    mkdirSync(join(root, 'labelsTr'));
    for (const c of ['synth_lps_oblique', 'hippocampus_243']) {
      copyFileSync(join(TDIR, 'inputs', `${c}_image.nii.gz`), join(root, 'imagesTr', `${c}.nii.gz`));
      copyFileSync(join(TDIR, 'inputs', `${c}_label.nii.gz`), join(root, 'labelsTr', `${c}.nii.gz`));
    }
    ({ entries } = await runPreprocess({ dataset: root, preset: 'flare', plain: true }));
    tail = loadPreset('flare').train.map((s) => (s.op === 'randCropByPosNegLabel' ? { ...s, spatialSize: [16, 16, 16] as [number, number, number] } : s));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  const take = async (opts: { workers: number; start?: number }, count: number) => {
    const l = new PatchLoader(entries, tail, { ...opts, seed: SEED });
    try {
      const out: LoadedPatch[][] = [];
      for (let i = 0; i < count; i++) out.push(await l.next());
      return { out, cases: Array.from({ length: count }, (_, i) => l.caseFor((opts.start ?? 0) + i).id) };
    } finally {
      await l.close();
    }
  };

  /** Request n computed in this thread: the cached case of request n through the tail with request n's seed. */
  const expected = async (caseId: string, n: number) => {
    const entry = entries.find((e) => e.id === caseId)!;
    return runRandomSteps(await readCached(entry), tail, new Rng(requestSeed(SEED, n)));
  };

  it('every request is its case through the random tail with its own seed, images and labels, for 1 and 2 workers', async () => {
    const classes = new Map<string, Set<number>>();
    for (const e of entries) classes.set(e.id, new Set([0, ...(await readCached(e)).label!.data]));
    for (const workers of [1, 2]) {
      const { out, cases } = await take({ workers }, N);
      assert.deepEqual([...new Set(cases)].sort(), entries.map((e) => e.id).sort(), 'both cases are drawn');
      for (let n = 0; n < N; n++) {
        const want = await expected(cases[n]!, n);
        assert.equal(out[n]!.length, 2, 'numSamples crops per request');
        for (let k = 0; k < 2; k++) {
          const p = out[n]![k]!;
          assert.deepEqual(p.shape, [16, 16, 16]);
          assert.deepEqual(p.image, want[k]!.image.data, `${workers} worker(s), request ${n}, crop ${k}: image`);
          assert.deepEqual(p.label, Float32Array.from(want[k]!.label!.data), `${workers} worker(s), request ${n}, crop ${k}: label`);
          assert.ok(
            p.label!.every((v) => classes.get(cases[n]!)!.has(v)),
            'nearest resampling only moves class ids: none is invented',
          );
        }
      }
      // Positive crops are centred on foreground: foreground reaches the patches.
      assert.ok(
        out.flat().some((p) => p.label!.some((v) => v > 0)),
        'foreground labels reach the patches',
      );
    }
  });

  it('patches vary per request and per crop', async () => {
    const { out } = await take({ workers: 2 }, N);
    const keys = out.flat().map((p) => Buffer.from(p.image.buffer).toString('base64'));
    assert.equal(new Set(keys).size, keys.length, 'no two crops are the same');
  });

  it('a resumed loader (start) continues exactly where an uninterrupted one was', async () => {
    const full = await take({ workers: 2 }, N);
    const resumed = await take({ workers: 1, start: 3 }, N - 3);
    assert.deepEqual(resumed.cases, full.cases.slice(3));
    for (let i = 0; i < N - 3; i++) {
      assert.deepEqual(
        resumed.out[i]!.map((p) => p.image),
        full.out[3 + i]!.map((p) => p.image),
        `request ${3 + i}: image`,
      );
      assert.deepEqual(
        resumed.out[i]!.map((p) => p.label),
        full.out[3 + i]!.map((p) => p.label),
        `request ${3 + i}: label`,
      );
    }
  });

  it('a worker that dies fails the load with an error naming it instead of hanging', async () => {
    const l = new PatchLoader(entries, tail, { workers: 2, seed: SEED, prefetch: 2 });
    try {
      await l.next();
      await l.workerPool.threads[1]!.terminate();
      // Whatever was already prefetched may still arrive; within a few requests the loss must surface.
      let error: Error | null = null;
      for (let i = 0; i < 4 && !error; i++)
        await l.next().catch((e: Error) => {
          error = e;
        });
      assert.ok(error, 'the load failed');
      assert.match((error as Error).message, /^patch loader worker 1 exited with code 1/);
      await assert.rejects(l.next(), /patch loader worker 1 exited/, 'and keeps failing rather than waiting');
    } finally {
      await l.close();
    }
  });

  it('a cache file removed or damaged under a running loader fails as a one-line input error saying how to fix it', async () => {
    // Private copies of the cache files, so the other tests keep theirs.
    const dir = mkdtempSync(join(tmpdir(), 'uxnet-loader-cache-'));
    try {
      const own = entries.map((e) => {
        const image = join(dir, basename(e.image));
        const label = join(dir, basename(e.label!));
        copyFileSync(e.image, image);
        copyFileSync(e.label!, label);
        return { ...e, image, label };
      });
      for (const damage of ['remove', 'truncate'] as const) {
        const l = new PatchLoader(own, tail, { workers: 1, seed: SEED, prefetch: 1 });
        const victim = l.caseFor(1).id;
        const img = own.find((e) => e.id === victim)!.image;
        try {
          await l.next();
          if (damage === 'remove') rmSync(img);
          else writeFileSync(img, Buffer.from('not a nifti file'));
          let error = null as Error | null;
          for (let i = 1; i < 6 && !error; i++)
            await l.next().catch((e: Error) => {
              error = e;
            });
          assert.ok(error instanceof CacheReadError, `${damage}: ${String(error)}`);
          assert.ok(error instanceof InputError, 'the CLI reports it as one line, not an internal error');
          assert.equal((error as CacheReadError).exitCode, 1);
          const msg = (error as Error).message;
          assert.ok(!msg.includes('\n'), msg);
          // Requests already prefetched may have read the file before the damage; a later one fails.
          const m = /^loading case '([^']+)' for request (\d+): /.exec(msg);
          assert.ok(m, msg);
          assert.equal(m[1], victim);
          assert.equal(l.caseFor(Number(m[2])).id, victim);
          assert.ok(msg.includes(img), `names the file: ${msg}`);
          assert.ok(msg.endsWith(`; delete the cache folder '${dir}' and run the same command again to rebuild it`), msg);
          if (damage === 'remove') assert.match(msg, /: no such file;/);
        } finally {
          await l.close();
        }
        copyFileSync(entries.find((e) => e.id === victim)!.image, img);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
