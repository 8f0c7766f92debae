import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { resolveTrainConfig, TrainConfigError, type TrainConfig } from '../train/config.js';
import { runTraining, TrainRunError } from '../train/run.js';
import { checkpointStep } from '../train/checkpoint.js';
import { writeFileAtomic } from '../io/fs.js';
import { NiftiError } from '../io/nifti/index.js';
import { VolumeError } from '../data/load.js';
import { confine } from './confine.js';
import { JobPayloadError, JobStoppedError, PermanentJobError } from './errors.js';
import { presetIsPath, TRAIN_READ_PATHS, TRAIN_WRITE_PATHS, type TrainJobData } from './schema.js';

export interface TrainJobContext {
  roots: readonly string[] | null;
  log: (s: string) => void;
  /**
   * Aborted when the worker shuts down: the step in progress finishes, checkpoint_last is saved and
   * the job throws JobStoppedError, so the next attempt loses no completed step.
   */
  signal?: AbortSignal;
}

export interface TrainJobResult {
  outDir: string;
  modelDir: string;
  steps: number;
  /** Step of the checkpoint this attempt continued from (0: a fresh start). */
  resumedFrom: number;
  best: { step: number; metric: number } | null;
}

/** The file in a run folder that says which job owns the run, so a job never resumes someone else's run. */
export const OWNER_FILE = 'queue-job.json';

/**
 * One training run, as `uxnet train` runs it. Every attempt after the first (the previous worker
 * died or handed the job back) continues from checkpoint_last with `--resume`, which reproduces an
 * uninterrupted run bit for bit; at most the steps since the last checkpoint are computed again.
 */
export async function runTrainJob(d: TrainJobData, jobId: string, ctx: TrainJobContext): Promise<TrainJobResult> {
  let cfg: TrainConfig;
  try {
    cfg = resolveTrainConfig({}, d.config as Partial<TrainConfig>);
  } catch (e) {
    if (e instanceof TrainConfigError) throw new JobPayloadError(`invalid train job payload: ${e.message}`);
    throw e;
  }
  for (const k of TRAIN_READ_PATHS) if (cfg[k]) confine(cfg[k]!, ctx.roots, k);
  for (const k of TRAIN_WRITE_PATHS) if (cfg[k]) confine(cfg[k]!, ctx.roots, k);
  if (presetIsPath(cfg.preset)) confine(cfg.preset, ctx.roots, 'preset');

  const owner = join(cfg.outDir, OWNER_FILE);
  const last = join(cfg.outDir, 'checkpoint_last.safetensors');
  const resume = existsSync(last);
  let resumedFrom = 0;
  if (resume) {
    const ownerId = existsSync(owner) ? (JSON.parse(await readFile(owner, 'utf8')) as { jobId?: string }).jobId : undefined;
    if (ownerId !== jobId) throw new PermanentJobError(`${cfg.outDir} already holds a training run that this job did not start; choose another output folder`);
    resumedFrom = await checkpointStep(last);
  } else {
    await mkdir(cfg.outDir, { recursive: true });
    await writeFileAtomic(owner, new TextEncoder().encode(JSON.stringify({ jobId }) + '\n'));
  }
  try {
    const r = await runTraining(cfg, { resume, log: ctx.log, signal: ctx.signal, resumeHint: 'the next attempt of this job (on any worker)' });
    // Only the worker's shutdown stops a queued run (`completed` counts from the start: a stop before any step reports the resumed checkpoint's).
    if (r.stopped) throw new JobStoppedError(r.completed, r.steps);
    if (!r.modelDir) throw new Error(`training in ${r.outDir} ended without a model`);
    return { outDir: r.outDir, modelDir: r.modelDir, steps: r.steps, resumedFrom, best: r.best };
  } catch (e) {
    if (e instanceof TrainRunError) throw new PermanentJobError(e.message);
    if (e instanceof NiftiError || e instanceof VolumeError) throw new Error(e.message);
    throw e;
  }
}
