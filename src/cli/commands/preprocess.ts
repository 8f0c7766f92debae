import type { Command } from 'commander';
import { NiftiError } from '../../io/nifti/index.js';
import type { CacheEntry } from '../../data/cache.js';
import { CacheCaseError } from '../../data/cache-pool.js';
import { VolumeError } from '../../data/load.js';
import { preprocessDataset, PresetError, type PreprocessPlan, type PreprocessProgress } from '../../data/preprocess.js';
import { createProgress, type Progress } from '../progress.js';
import { UserError } from '../errors.js';

export interface PreprocessOptions {
  dataset: string;
  preset: string;
  cache?: string;
  plain?: boolean;
  /** Worker threads for preprocessing: min(workers, cores, cases); default min(2, cores). */
  workers?: number;
}

/** Maps the library's data errors to one-line user errors; a crashed worker or a bug keeps its stack. */
export function preprocessUserError(e: unknown): unknown {
  if (e instanceof CacheCaseError) return e.internal ? e : new UserError(e.message);
  if (e instanceof NiftiError || e instanceof VolumeError || e instanceof PresetError) return new UserError(e.message);
  return e;
}

/** A progress handler drawing one bar per preprocessing stage (fingerprint, caching). */
export function preprocessProgressBars(plain?: boolean): { onProgress: (p: PreprocessProgress) => void; stop: () => void } {
  let bar: Progress | null = null;
  let stage = '';
  return {
    onProgress: (p) => {
      if (p.stage !== stage) {
        bar?.stop();
        stage = p.stage;
        bar = createProgress({ label: p.stage, total: p.total, plain });
      }
      bar!.update(p.done);
    },
    stop: () => {
      bar?.stop();
      bar = null;
    },
  };
}

/** `uxnet preprocess`: the library's preprocessDataset with progress bars and one-line errors. */
export async function runPreprocess(opts: PreprocessOptions): Promise<{ planPath: string; plan: PreprocessPlan; entries: CacheEntry[] }> {
  const bars = preprocessProgressBars(opts.plain);
  try {
    const { plan, planPath } = await preprocessDataset({ dataset: opts.dataset, preset: opts.preset, cache: opts.cache, workers: opts.workers, onProgress: bars.onProgress });
    return { planPath, plan, entries: plan.cache };
  } catch (e) {
    throw preprocessUserError(e);
  } finally {
    bars.stop();
  }
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
