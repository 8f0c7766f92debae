import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { VolumeError } from '../data/load.js';
import { ModelFolderError, modelWeightsPath } from '../infer/model-folder.js';
import { writeFileAtomic } from '../io/fs.js';
import { NiftiError } from '../io/nifti/index.js';
import { resolveTrainConfig, TrainConfigError, type TrainConfig } from '../train/config.js';
import { finishCrossval, openCrossval, runCrossvalFold, stoppedFoldStep, type CrossvalPlan } from '../train/crossval.js';
import { TrainRunError } from '../train/run.js';
import { confine } from './confine.js';
import { JobPayloadError, JobStoppedError, PermanentJobError } from './errors.js';
import type { CrossvalFoldJobData, CrossvalJobData, CrossvalSummaryJobData } from './schema.js';
import { presetIsPath, TRAIN_READ_PATHS, TRAIN_WRITE_PATHS } from './schema.js';
import { checkpointStep } from '../train/checkpoint.js';
import { OWNER_FILE, type TrainJobContext } from './train-job.js';

export interface CrossvalFoldJobResult {
  runDir: string;
  fold: number;
  /** Step of the checkpoint this attempt continued from (0: a fresh start). */
  resumedFrom: number;
  /** fold.json was already there (an earlier attempt, or a local `uxnet crossval`, finished the fold). */
  finishedEarlier: boolean;
  /** The fold had finished without weights and was trained again to re-make them (`remakeWeights`). */
  remade: boolean;
}

export interface CrossvalSummaryJobResult {
  runDir: string;
  foldsDone: number[];
  complete: boolean;
  summaryPath: string;
  ensembleDir: string | null;
}

/** The recipe of a crossval job, its paths confined, and the run folder settled at submission. */
async function openJobRun(d: CrossvalJobData, roots: readonly string[] | null): Promise<CrossvalPlan> {
  let cfg: TrainConfig;
  try {
    cfg = resolveTrainConfig({}, d.config as Partial<TrainConfig>);
  } catch (e) {
    if (e instanceof TrainConfigError) throw new JobPayloadError(`invalid ${d.kind} job payload: ${e.message}`);
    throw e;
  }
  for (const k of TRAIN_READ_PATHS) if (cfg[k]) confine(cfg[k]!, roots, k);
  for (const k of TRAIN_WRITE_PATHS) if (cfg[k]) confine(cfg[k]!, roots, k);
  if (presetIsPath(cfg.preset)) confine(cfg.preset, roots, 'preset');
  const plan = await permanent(() => openCrossval(cfg));
  if (plan.splits.folds.length !== d.folds)
    throw new PermanentJobError(`${plan.runDir}/splits.json has ${plan.splits.folds.length} folds, the job was submitted for ${d.folds}; use another output folder`);
  return plan;
}

/** Errors retrying cannot fix fail the job at once; data read errors keep their message and may be retried. */
async function permanent<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof TrainRunError || e instanceof ModelFolderError) throw new PermanentJobError(e.message);
    if (e instanceof NiftiError || e instanceof VolumeError) throw new Error(e.message);
    throw e;
  }
}

/**
 * One fold of a queued crossval, as `uxnet crossval --fold k` runs it (the same function), so its
 * weights, predictions and scores are the single-process ones. An attempt after a dead worker
 * continues from RUN/fold_k/checkpoint_last bit-identically. RUN/fold_k/queue-job.json names the job
 * that owns the fold: a fold another job (or a local run) started is refused, so two writers never
 * share one fold folder. With `remakeWeights`, a finished fold whose model has no weights is trained
 * again in RUN/fold_k/remake/ (owned the same way) as `uxnet crossval --remake-weights` does.
 */
export async function runCrossvalFoldJob(d: CrossvalFoldJobData, jobId: string, ctx: TrainJobContext): Promise<CrossvalFoldJobResult> {
  const plan = await openJobRun(d, ctx.roots);
  const foldDir = join(plan.runDir, `fold_${d.fold}`);
  const finished = existsSync(join(foldDir, 'fold.json'));
  // A finished fold trains again only to re-make weights a repository left out, in fold_k/remake/,
  // which then has an owner of its own (the fold folder's belongs to the job that trained it first).
  const remaking = finished && d.remakeWeights === true && !modelWeightsPath(join(foldDir, 'model'));
  if (finished && !remaking) {
    // runCrossvalFold only says so (and, for a fold without weights, how to re-make them).
    await permanent(() => runCrossvalFold(plan, d.fold, { tta: d.tta, log: ctx.log, signal: ctx.signal }));
    return { runDir: plan.runDir, fold: d.fold, resumedFrom: 0, finishedEarlier: true, remade: false };
  }
  const workDir = remaking ? join(foldDir, 'remake') : foldDir;
  const owner = join(workDir, OWNER_FILE);
  const ownerId = existsSync(owner) ? (JSON.parse(await readFile(owner, 'utf8')) as { jobId?: string }).jobId : undefined;
  const last = join(workDir, 'checkpoint_last.safetensors');
  if (ownerId !== undefined && ownerId !== jobId) throw new PermanentJobError(`${workDir} belongs to queued job ${ownerId}, not this one; use another output folder`);
  let resumedFrom = 0;
  if (existsSync(last)) {
    if (ownerId !== jobId)
      throw new PermanentJobError(`${workDir} already holds a training run that this job did not start; finish it with \`uxnet crossval\` or use another output folder`);
    resumedFrom = await checkpointStep(last);
  } else if (ownerId === undefined) {
    await mkdir(workDir, { recursive: true });
    await writeFileAtomic(owner, new TextEncoder().encode(JSON.stringify({ jobId }) + '\n'));
  }
  const outcome = await permanent(() => runCrossvalFold(plan, d.fold, { tta: d.tta, remakeWeights: remaking, log: ctx.log, signal: ctx.signal }));
  if (outcome === 'stopped') throw new JobStoppedError(await stoppedFoldStep(plan, d.fold), plan.config.steps);
  return { runDir: plan.runDir, fold: d.fold, resumedFrom, finishedEarlier: remaking, remade: remaking };
}

/**
 * The parent job of a crossval's folds: BullMQ starts it only once every fold job has completed,
 * so RUN/summary.*, the plots and RUN/ensemble/ are written by this job alone, after the folds.
 */
export async function runCrossvalSummaryJob(d: CrossvalSummaryJobData, ctx: TrainJobContext): Promise<CrossvalSummaryJobResult> {
  const plan = await openJobRun(d, ctx.roots);
  const r = await permanent(() => finishCrossval(plan, ctx.log));
  return { runDir: r.runDir, foldsDone: r.foldsDone, complete: r.complete, summaryPath: r.summaryPath, ensembleDir: r.ensembleDir };
}
