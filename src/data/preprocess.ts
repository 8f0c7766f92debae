import { mkdir } from 'node:fs/promises';
import { PLAN_VERSION } from './plan-schema.js';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/fs.js';
import { stepsHash, type CacheEntry } from './cache.js';
import { cacheCasesParallel } from './cache-pool.js';
import { discoverDataset, type Dataset } from './dataset.js';
import { fingerprintDataset, planFromFingerprint, type Fingerprint } from './plan.js';
import { loadPreset, type Preset } from './presets.js';

/** A preset that cannot be found or parsed: the user's to fix. */
export class PresetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PresetError';
  }
}

/** Progress of a preprocessing stage; `done` counts finished cases. */
export interface PreprocessProgress {
  stage: 'fingerprint' | 'caching';
  done: number;
  total: number;
}

export interface PreprocessOptions {
  dataset: string;
  preset: string;
  /** Cache folder (default DATASET/uxnet-cache/PRESET). */
  cache?: string;
  /** Worker threads: min(workers, cores, cases); default min(2, cores). */
  workers?: number;
  onProgress?: (p: PreprocessProgress) => void;
}

/**
 * What preprocessing decided and produced: the preset (planned from the fingerprint for `auto`), the
 * dataset it describes and the cached cases. This object is what plan.json holds and what training uses.
 */
export interface PreprocessPlan extends Preset {
  /** plan.json's format version (./plan-schema.ts reads it back). */
  version: typeof PLAN_VERSION;
  fingerprint?: Fingerprint;
  dataset: { root: string; layout: Dataset['layout']; modalities: string[]; labels: Record<string, string> | null; cases: number };
  chainHash: string;
  cache: CacheEntry[];
}

/**
 * Discovers the dataset, fingerprints it (preset `auto` plans spacing and normalisation from it), runs
 * the deterministic chain on every train/val case into the on-disk cache and writes plan.json there.
 * Throws VolumeError / NiftiError / CacheCaseError for bad data and PresetError for a bad preset.
 */
export async function preprocessDataset(opts: PreprocessOptions): Promise<{ plan: PreprocessPlan; planPath: string }> {
  let preset: Preset;
  try {
    preset = loadPreset(opts.preset);
  } catch (e) {
    throw new PresetError((e as Error).message);
  }
  const ds = discoverDataset(opts.dataset);
  const cacheDir = resolve(opts.cache ?? join(ds.root, 'uxnet-cache', preset.name));
  const cases = ds.cases.filter((c) => c.split !== 'test');
  const report = opts.onProgress ?? (() => {});
  let fingerprint: Fingerprint | undefined;
  if (preset.auto) {
    const total = cases.filter((c) => c.split === 'train').length;
    let done = 0;
    report({ stage: 'fingerprint', done, total });
    fingerprint = await fingerprintDataset(ds, { onCase: () => report({ stage: 'fingerprint', done: ++done, total }) });
    preset = planFromFingerprint(fingerprint, preset);
  }
  let done = 0;
  report({ stage: 'caching', done, total: cases.length });
  const entries = await cacheCasesParallel(cases, preset.val, cacheDir, { workers: opts.workers, onDone: () => report({ stage: 'caching', done: ++done, total: cases.length }) });
  await mkdir(cacheDir, { recursive: true });
  const planPath = join(cacheDir, 'plan.json');
  const plan: PreprocessPlan = {
    ...preset,
    version: PLAN_VERSION,
    ...(fingerprint ? { fingerprint } : {}),
    dataset: { root: ds.root, layout: ds.layout, modalities: ds.modalities, labels: ds.labels ?? null, cases: ds.cases.length },
    chainHash: stepsHash(preset.val),
    cache: entries,
  };
  await writeFileAtomic(planPath, new TextEncoder().encode(JSON.stringify(plan, null, 1) + '\n'));
  return { plan, planPath };
}
