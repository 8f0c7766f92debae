import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { NiftiError } from '../../io/nifti/index.js';
import { writeFileAtomic } from '../../io/fs.js';
import { stepsHash, type CacheEntry } from '../../data/cache.js';
import { cacheCasesParallel, CacheCaseError } from '../../data/cache-pool.js';
import { discoverDataset, type Dataset } from '../../data/dataset.js';
import { VolumeError } from '../../data/load.js';
import { fingerprintDataset, planFromFingerprint } from '../../data/plan.js';
import { PLAN_VERSION } from '../../data/plan-schema.js';
import { loadPreset, type Preset } from '../../data/presets.js';
import { createProgress } from '../progress.js';
import { UserError } from '../errors.js';

export interface PreprocessOptions {
  dataset: string;
  preset: string;
  cache?: string;
  plain?: boolean;
  /** Worker threads for preprocessing: min(workers, cores, cases); default min(2, cores). */
  workers?: number;
}

function userError(e: unknown): never {
  if (e instanceof NiftiError || e instanceof VolumeError) throw new UserError(e.message);
  throw e;
}

/**
 * `uxnet preprocess`: discovers the dataset, fingerprints it (preset `auto` plans spacing and
 * normalisation from it), runs the deterministic chain on every train/val case and caches the
 * result on disk, then writes plan.json (preset, fingerprint, chain hash, cache entries) next to it.
 */
export async function runPreprocess(opts: PreprocessOptions): Promise<{ planPath: string; entries: CacheEntry[] }> {
  let preset: Preset;
  try {
    preset = loadPreset(opts.preset);
  } catch (e) {
    throw new UserError((e as Error).message);
  }
  let ds: Dataset;
  try {
    ds = discoverDataset(opts.dataset);
  } catch (e) {
    userError(e);
  }
  const cacheDir = resolve(opts.cache ?? join(ds.root, 'uxnet-cache', preset.name));
  const cases = ds.cases.filter((c) => c.split !== 'test');
  let fingerprint;
  if (preset.auto) {
    const bar = createProgress({ label: 'fingerprint', total: cases.filter((c) => c.split === 'train').length, plain: opts.plain });
    try {
      fingerprint = await fingerprintDataset(ds, { onCase: () => bar.increment() });
    } catch (e) {
      userError(e);
    } finally {
      bar.stop();
    }
    preset = planFromFingerprint(fingerprint, preset);
  }
  const bar = createProgress({ label: 'caching', total: cases.length, plain: opts.plain });
  let entries: CacheEntry[];
  try {
    entries = await cacheCasesParallel(cases, preset.val, cacheDir, { workers: opts.workers, onDone: () => bar.increment() });
  } catch (e) {
    // Bad data in a case is the user's to fix: one line naming the case and file. A crashed worker
    // or a programming error keeps its stack.
    if (e instanceof CacheCaseError && !e.internal) throw new UserError(e.message);
    userError(e);
  } finally {
    bar.stop();
  }
  await mkdir(cacheDir, { recursive: true });
  const planPath = join(cacheDir, 'plan.json');
  const plan = {
    ...preset,
    version: PLAN_VERSION,
    ...(fingerprint ? { fingerprint } : {}),
    dataset: { root: ds.root, layout: ds.layout, modalities: ds.modalities, labels: ds.labels ?? null, cases: ds.cases.length },
    chainHash: stepsHash(preset.val),
    cache: entries,
  };
  await writeFileAtomic(planPath, new TextEncoder().encode(JSON.stringify(plan, null, 1) + '\n'));
  return { planPath, entries };
}

export function registerPreprocess(program: Command): void {
  program
    .command('preprocess')
    .description('fingerprint a dataset, plan its preprocessing and cache every preprocessed case on disk (plan.json next to the cache)')
    .requiredOption('--dataset <dir>', 'dataset folder (dataset.json, or imagesTr/labelsTr[/imagesVal/labelsVal/imagesTs])')
    .option('--preset <name>', 'flare, amos, feta, auto, or a preset JSON file', 'auto')
    .option('--cache <dir>', 'cache directory (default: DATASET/uxnet-cache/PRESET)')
    .option('--workers <n>', 'preprocessing worker threads, at most one per core (default: min(2, cores))', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new UserError(`--workers must be a positive integer, got '${v}'`);
      return n;
    })
    .action(async (o: PreprocessOptions) => {
      const { planPath, entries } = await runPreprocess(o);
      process.stderr.write(`cached ${entries.length} cases; plan: ${planPath}\n`);
    });
}
