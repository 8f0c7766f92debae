/**
 * `uxnet crossval`: k-fold cross-validation as nnU-Net runs it. One stored, seeded split
 * (RUN/splits.json); each fold is an ordinary training run folder RUN/fold_k/ (its own checkpoints,
 * `--resume` semantics, model folder); the fold's held-out cases are predicted with that fold's model
 * and scored (Dice, HD95, NSD per case and class, as `uxnet evaluate`), and RUN/summary.* aggregates
 * the folds; once every fold is done, RUN/ensemble/ holds the fold models as one ensemble folder.
 *
 * Resuming is by state on disk, so re-running the same command after a kill continues where it
 * stopped: a fold with fold.json is finished; a fold with a checkpoint continues training from it
 * (bit-identical to an uninterrupted run, as `uxnet train --resume`); prediction and scoring of a
 * fold are redone as a whole (they take seconds). RUN/crossval.json records the configuration and a
 * re-run with a different one is refused, naming the field.
 */
import { manifestChannels } from '../infer/model-manifest.js';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join, relative, resolve, sep } from 'node:path';
import { discoverDataset, type Case as DatasetCase } from '../data/dataset.js';
import { Rng } from '../engine/rng.js';
import { displayPath, writeFileAtomic } from '../io/fs.js';
import { MetricAccumulator } from '../metrics/accumulator.js';
import { loadModelFolder, modelWeightsPath, readModelManifest } from '../infer/model-folder.js';
import { createNetwork, resolveNetwork } from '../models/registry.js';
import { predictVolume } from '../infer/predict.js';
import { writeEnsembleFolder } from '../infer/ensemble.js';
import { countMacs } from '../nn/macs.js';
import { checkpointStep, loadCheckpoint } from './checkpoint.js';
import type { TrainConfig } from './config.js';
import { runTraining, TrainRunError, type TrainRunOptions } from './run.js';
import type { TrainHandlers } from './events.js';
import { predictAndScore } from './held-out.js';
import { parseCrossvalSplit, readJsonFile, type FoldSplit } from './split-file.js';
import { median, summariseCrossval, ttaNote, writeCrossvalSummary, type FoldRecord } from './crossval-summary.js';

export const SPLITS_FORMAT = 'uxnet3d-splits/1';

export type { FoldSplit } from './split-file.js';

export interface Splits {
  format: typeof SPLITS_FORMAT;
  /** How the folds were made: "seeded" (seed below) or the file they came from. */
  source: string;
  seed?: number;
  folds: FoldSplit[];
}

export interface CrossvalOptions {
  /** The recipe with outDir = the crossval run folder; `split` and `modelDir` of the recipe are replaced per fold. */
  config: TrainConfig;
  /** Number of folds for a new split (default 5). */
  folds?: number;
  /** Run only this fold (then summarise whatever folds are finished). */
  fold?: number;
  /** A split file to use instead of a seeded one: {"folds": [{"train": [...], "val": [...]}, ...]} or {"folds": [[val ids], ...]}. */
  splitFile?: string;
  /** Mirroring test-time augmentation when predicting the held-out cases. */
  tta?: boolean;
  /** Train again the finished folds whose model has no weights, to re-make them (their recorded results are kept). */
  remakeWeights?: boolean;
  log?: (s: string) => void;
  /** Training events of every fold (progress bars); their onLog, when given, replaces `log` for training's lines. */
  handlers?: TrainHandlers;
  /**
   * Abort to stop: a fold in training finishes its step and saves its checkpoint; prediction stops
   * after the case in progress; no later fold starts. The result then says `stopped`, and running
   * the crossval again continues where it stopped.
   */
  signal?: AbortSignal;
}

/** What became of one fold in this call. */
export type FoldOutcome = 'trained' | 'remade' | 'finished-earlier' | 'stopped';

/** Per-fold options shared by `uxnet crossval` and the queue's fold jobs. */
export interface FoldRunOptions {
  tta?: boolean;
  log: (s: string) => void;
  handlers?: TrainHandlers;
  signal?: AbortSignal;
  /** Train again the finished folds whose model has no weights, to re-make them (see `remakeFoldWeights`). */
  remakeWeights?: boolean;
}

export interface CrossvalResult {
  runDir: string;
  foldsDone: number[];
  complete: boolean;
  /** RUN/summary.json; null when stopped before any fold finished (nothing to summarise yet). */
  summaryPath: string | null;
  ensembleDir: string | null;
  /** Set when `signal` stopped the crossval: the fold it stopped in, and that fold's completed steps. */
  stopped?: { fold: number; step: number; steps: number };
}

/** Seeded k-fold split of `ids`: sorted, shuffled with the project's RNG, dealt round-robin. */
export function makeFolds(ids: readonly string[], k: number, seed: number): FoldSplit[] {
  if (!Number.isInteger(k) || k < 2) throw new TrainRunError(`--folds must be an integer >= 2, got ${k}`);
  if (ids.length < k) throw new TrainRunError(`${k} folds need at least ${k} labelled cases; the dataset has ${ids.length}`);
  const order = [...ids].sort();
  const rng = new Rng(seed + 1009);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return Array.from({ length: k }, (_, f) => {
    const val = order.filter((_, i) => i % k === f).sort();
    const held = new Set(val);
    return { train: order.filter((id) => !held.has(id)).sort(), val };
  });
}

/** Reads a user split file; checks that every id is a labelled case and that validation sets do not overlap. */
export async function readSplitFile(path: string, ids: readonly string[]): Promise<FoldSplit[]> {
  const out = parseCrossvalSplit(await readJsonFile(path, 'split file'), path);
  const known = new Set(ids);
  out.forEach((f, k) => {
    for (const id of [...f.train, ...f.val]) if (!known.has(id)) throw new TrainRunError(`${path}: fold ${k} names case '${id}', which is not a labelled case of the dataset`);
  });
  return out;
}

const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o, null, 2) + '\n');
/** fold.json keeps infinite HD95 (one side empty) and NaN (class absent on both) apart, which JSON null would not. */
export const encodeFoldRecord = (o: FoldRecord) => new TextEncoder().encode(JSON.stringify(o, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 1) + '\n');
const NON_FINITE: Record<string, number> = { Infinity, '-Infinity': -Infinity, NaN };
export function parseFoldRecord(text: string): FoldRecord {
  return JSON.parse(text, (k, v) => (/^\d+$/.test(k) && typeof v === 'string' && v in NON_FINITE ? NON_FINITE[v] : v)) as FoldRecord;
}

/** The parts of the recipe that make a run what it is (paths to outputs and the backend aside). */
function identity(cfg: TrainConfig): Record<string, unknown> {
  const { outDir: _o, split: _s, modelDir: _m, cacheDir: _c, backend: _b, workers: _w, ...rest } = cfg;
  return { ...rest, dataset: resolve(cfg.dataset), ...(cfg.init ? { init: resolve(cfg.init) } : {}) };
}

/**
 * The weights fold k starts from: the recipe's `init` with `{fold}` replaced by k (each fold
 * fine-tunes its own earlier model, e.g. `RUN/fold_{fold}/model`, so no fold starts from weights
 * that saw its held-out cases); a model folder stands for its weights.safetensors (as in `uxnet train --init`).
 */
export function foldInitPath(init: string | undefined, k: number): string | undefined {
  return init?.replaceAll('{fold}', String(k));
}

/**
 * The identity as RUN/crossval.json stores it: the dataset relative to RUN, so a run folder kept in a
 * repository (or moved together with its dataset) continues in another clone or another directory.
 */
function storedIdentity(runDir: string, id: Record<string, unknown>): Record<string, unknown> {
  const rel = (p: string) => relative(runDir, p).split(sep).join('/') || '.';
  return { ...id, dataset: rel(id.dataset as string), ...(typeof id.init === 'string' ? { init: rel(id.init) } : {}) };
}

/** RUN/crossval.json's identity with the dataset resolved against RUN (older runs stored it absolute). */
async function readStoredIdentity(runDir: string, idPath: string): Promise<unknown> {
  const prev = JSON.parse(await readFile(idPath, 'utf8')) as { config: unknown };
  const c = prev.config as Record<string, unknown> | null;
  if (c && typeof c === 'object' && typeof c.dataset === 'string')
    return { ...c, dataset: resolve(runDir, c.dataset), ...(typeof c.init === 'string' ? { init: resolve(runDir, c.init) } : {}) };
  return prev.config;
}

function firstDifference(a: unknown, b: unknown, path = ''): string | null {
  if (JSON.stringify(a) === JSON.stringify(b)) return null;
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], path ? `${path}.${k}` : k);
      if (d) return d;
    }
    // The same fields in another order (a recipe's network written hiddenSize first): the same recipe.
    return null;
  }
  return `${path || 'value'} (${JSON.stringify(a)} then, ${JSON.stringify(b)} now)`;
}

/** Keeps the per-step log in step with the checkpoint a resume starts from (steps after it are redone). */
async function trimMetricsLog(foldDir: string, step: number): Promise<void> {
  const path = join(foldDir, 'metrics.jsonl');
  if (!existsSync(path)) return;
  const lines = (await readFile(path, 'utf8')).split('\n').filter((l) => l.trim() && (JSON.parse(l) as { step: number }).step <= step);
  await writeFile(path, lines.map((l) => l + '\n').join(''));
}

async function trainFold(
  cfg: TrainConfig,
  o: FoldRunOptions,
): Promise<{ trainSeconds: number; stepSecondsMedian: number | undefined; steps: number; trainedNow: boolean; stopped: boolean }> {
  const foldDir = cfg.outDir;
  const last = join(foldDir, 'checkpoint_last.safetensors');
  const modelJson = join(cfg.modelDir!, 'model.json');
  const state = existsSync(last) ? (await loadCheckpoint(last)).state : null;
  const trainedNow = !(state && state.step >= cfg.steps && existsSync(modelJson));
  if (trainedNow) {
    const run: TrainRunOptions = { log: o.log, handlers: o.handlers, signal: o.signal, resumeHint: 'the same crossval command (it resumes this fold)' };
    let r;
    if (state) {
      await trimMetricsLog(foldDir, state.step);
      r = await runTraining(cfg, { ...run, resume: true });
    } else {
      await rm(join(foldDir, 'metrics.jsonl'), { force: true });
      r = await runTraining(cfg, run);
    }
    if (r.stopped) return { trainSeconds: 0, stepSecondsMedian: undefined, steps: r.completed, trainedNow, stopped: true };
  }
  const final = (await loadCheckpoint(last)).state;
  // Optimiser-step time from the checkpoint's history: it survives resumes (validation time is not included).
  const stepTimes = stepSeconds(final.history as { seconds?: unknown }[]);
  const trainSeconds = stepTimes.reduce((a, t) => a + t, 0);
  return { trainSeconds, stepSecondsMedian: median(stepTimes) ?? undefined, steps: final.step, trainedNow, stopped: false };
}

/** The optimiser-step times of a training history (checkpoint or metrics.jsonl entries). */
function stepSeconds(history: readonly { seconds?: unknown }[]): number[] {
  return history.flatMap((h) => (typeof h.seconds === 'number' ? [h.seconds] : []));
}

/** A fold record written before records kept the median step time gets it from the fold's metrics.jsonl. */
async function withStepMedian(rec: FoldRecord, foldDir: string): Promise<FoldRecord> {
  const path = join(foldDir, 'metrics.jsonl');
  if (rec.stepSecondsMedian !== undefined || !existsSync(path)) return rec;
  const lines = (await readFile(path, 'utf8')).split('\n').filter((l) => l.trim());
  const m = median(stepSeconds(lines.map((l) => JSON.parse(l) as { seconds?: unknown })));
  return m === null ? rec : { ...rec, stepSecondsMedian: m };
}

/** A crossval run folder with its identity and split settled: what every fold and the summary read. */
export interface CrossvalPlan {
  runDir: string;
  /** The recipe, outDir = runDir. */
  config: TrainConfig;
  /** The recipe's identity as RUN/crossval.json stores it. */
  identity: Record<string, unknown>;
  splits: Splits;
  /** Labelled cases of the dataset, by id. */
  cases: Map<string, DatasetCase>;
}

/**
 * Settles RUN/crossval.json and RUN/splits.json: written when absent, otherwise checked against the
 * request (another recipe or another split is refused, naming the difference). Queued crossval calls
 * this once at submission, so concurrent fold jobs only ever read these files.
 */
export async function prepareCrossval(o: Pick<CrossvalOptions, 'config' | 'folds' | 'splitFile' | 'fold'>): Promise<CrossvalPlan> {
  const cfg = o.config;
  const runDir = resolve(cfg.outDir);
  await mkdir(runDir, { recursive: true });
  const ds = discoverDataset(cfg.dataset);
  const labelled = ds.cases.filter((c) => c.label);
  const ids = labelled.map((c) => c.id);

  // The run's identity: refuse to continue RUN with another recipe.
  const idPath = join(runDir, 'crossval.json');
  const id = identity(cfg);
  if (existsSync(idPath)) {
    const d = firstDifference(await readStoredIdentity(runDir, idPath), id);
    if (d) throw new TrainRunError(`${runDir} holds a crossval run with another configuration: ${d}; use another output folder`);
  } else {
    await writeFileAtomic(idPath, enc({ format: 'uxnet3d-crossval/1', config: storedIdentity(runDir, id) }));
  }

  const splitsPath = join(runDir, 'splits.json');
  let splits: Splits;
  if (existsSync(splitsPath)) {
    splits = JSON.parse(await readFile(splitsPath, 'utf8')) as Splits;
    if (o.folds !== undefined && o.folds !== splits.folds.length)
      throw new TrainRunError(`${splitsPath} has ${splits.folds.length} folds, --folds asks for ${o.folds}; use another output folder`);
    if (o.splitFile) {
      const given = await readSplitFile(o.splitFile, ids);
      if (JSON.stringify(given) !== JSON.stringify(splits.folds)) throw new TrainRunError(`${splitsPath} differs from --split ${o.splitFile}; use another output folder`);
    }
  } else {
    const folds = o.splitFile ? await readSplitFile(o.splitFile, ids) : makeFolds(ids, o.folds ?? 5, cfg.seed);
    if (o.splitFile && o.folds !== undefined && o.folds !== folds.length) throw new TrainRunError(`--split ${o.splitFile} has ${folds.length} folds, --folds asks for ${o.folds}`);
    splits = o.splitFile ? { format: SPLITS_FORMAT, source: basename(o.splitFile), folds } : { format: SPLITS_FORMAT, source: 'seeded', seed: cfg.seed, folds };
    await writeFileAtomic(splitsPath, enc(splits));
  }
  const K = splits.folds.length;
  if (o.fold !== undefined && !(Number.isInteger(o.fold) && o.fold >= 0 && o.fold < K)) throw new TrainRunError(`--fold must be in 0..${K - 1}, got ${o.fold}`);
  return { runDir, config: cfg, identity: id, splits, cases: new Map(labelled.map((c) => [c.id, c])) };
}

/**
 * Opens a crossval run folder that `prepareCrossval` settled earlier, writing nothing: a queued
 * fold job must not race another one over the shared files, and a recipe that differs from the
 * stored one (the folder was reused meanwhile) is refused.
 */
export async function openCrossval(cfg: TrainConfig): Promise<CrossvalPlan> {
  const runDir = resolve(cfg.outDir);
  const idPath = join(runDir, 'crossval.json');
  const splitsPath = join(runDir, 'splits.json');
  if (!existsSync(idPath) || !existsSync(splitsPath)) throw new TrainRunError(`${runDir} has no crossval.json and splits.json; they are written when the crossval is submitted`);
  const id = identity(cfg);
  const d = firstDifference(await readStoredIdentity(runDir, idPath), id);
  if (d) throw new TrainRunError(`${runDir} holds a crossval run with another configuration: ${d}; use another output folder`);
  const splits = JSON.parse(await readFile(splitsPath, 'utf8')) as Splits;
  const labelled = discoverDataset(cfg.dataset).cases.filter((c) => c.label);
  return { runDir, config: cfg, identity: id, splits, cases: new Map(labelled.map((c) => [c.id, c])) };
}

/** The steps a stopped fold k holds in its checkpoint (0 when it stopped before saving one): where it continues. */
export async function stoppedFoldStep(plan: CrossvalPlan, k: number): Promise<number> {
  const foldDir = join(plan.runDir, `fold_${k}`);
  // A finished fold stops only while its weights are re-made, in fold_k/remake/.
  const last = join(foldDir, ...(existsSync(join(foldDir, 'fold.json')) ? ['remake'] : []), 'checkpoint_last.safetensors');
  return existsSync(last) ? await checkpointStep(last) : 0;
}

/** Fold k's training recipe: the crossval's, with its own run folder, split file and model folder under `outDir`. */
function foldConfig(plan: CrossvalPlan, k: number, outDir: string, splitPath: string): TrainConfig {
  const cfg = plan.config;
  return {
    ...cfg,
    // Validation only at the last step: the held-out cases must not choose the checkpoint (the fold's
    // model is its final one, as in nnU-Net), or the cross-validated Dice would be optimistic.
    valEvery: cfg.steps,
    outDir,
    split: splitPath,
    modelDir: join(outDir, 'model'),
    cacheDir: cfg.cacheDir ?? join(plan.runDir, 'cache'),
    init: foldInitPath(cfg.init, k),
  };
}

/** Fold k's held-out cases as dataset cases; an id the dataset lacks is the user's error, named. */
function heldOutCases(plan: CrossvalPlan, k: number): DatasetCase[] {
  return plan.splits.folds[k]!.val.map((cid) => {
    const c = plan.cases.get(cid);
    if (!c) throw new TrainRunError(`${join(plan.runDir, 'splits.json')}: fold ${k} holds out case '${cid}', which is not a labelled case of the dataset`);
    return c;
  });
}

/** Predicts fold k's held-out cases with the model in `modelDir` into `predDir` and scores them as `uxnet evaluate` does. */
async function scoreHeldOut(
  plan: CrossvalPlan,
  k: number,
  modelDir: string,
  predDir: string,
  o: FoldRunOptions,
): Promise<
  { stopped: true } | { stopped: false; acc: MetricAccumulator; seconds: Record<string, number>; parameters: number; network: unknown; classes: { label: number; name: string }[] }
> {
  const loaded = await loadModelFolder(modelDir);
  try {
    const labels = Object.keys(loaded.manifest.labels)
      .map(Number)
      .filter((c) => c > 0)
      .sort((a, b) => a - b);
    const names = labels.map((c) => loaded.manifest.labels[String(c)]!);
    const acc = new MetricAccumulator({ classes: labels, classNames: names, nsdTolerance: 1 });
    await mkdir(predDir, { recursive: true });
    const r = await predictAndScore(heldOutCases(plan, k), (image) => predictVolume(loaded, image, { tta: o.tta }), {
      predDir,
      description: `uxnet3d crossval fold ${k}`,
      acc,
      signal: o.signal,
    });
    if (r.stopped) return { stopped: true };
    return {
      stopped: false,
      acc,
      seconds: r.seconds,
      parameters: loaded.model.numParameters(),
      network: loaded.manifest.network,
      classes: labels.map((label, i) => ({ label, name: names[i]! })),
    };
  } finally {
    loaded.model.dispose();
  }
}

/**
 * Trains fold k (or continues it from its checkpoint), predicts and scores its held-out cases and
 * writes RUN/fold_k/fold.json. Touches nothing outside RUN/fold_k (and the shared preprocessing
 * cache, whose writes are atomic), so folds may run at once in different processes.
 * Says whether the fold was trained (or predicted) now, had finished earlier, or was stopped by
 * `o.signal` (its checkpoint then holds every completed step; its predictions are redone next time).
 * A finished fold whose model has no weights (a run kept in a repository without them) is trained
 * again when `o.remakeWeights` asks for it; see `remakeFoldWeights`.
 */
export async function runCrossvalFold(plan: CrossvalPlan, k: number, o: FoldRunOptions): Promise<FoldOutcome> {
  const { runDir, splits, config: cfg } = plan;
  const log = o.log;
  const K = splits.folds.length;
  if (!(Number.isInteger(k) && k >= 0 && k < K)) throw new TrainRunError(`--fold must be in 0..${K - 1}, got ${k}`);
  const foldDir = join(runDir, `fold_${k}`);
  const donePath = join(foldDir, 'fold.json');
  if (existsSync(donePath)) {
    if (modelWeightsPath(join(foldDir, 'model'))) {
      log(`fold ${k}: finished earlier`);
      return 'finished-earlier';
    }
    if (o.remakeWeights) return remakeFoldWeights(plan, k, o);
    log(`fold ${k}: finished earlier; its model has no weights (--remake-weights trains the fold again to re-make them)`);
    return 'finished-earlier';
  }
  await mkdir(foldDir, { recursive: true });
  const splitPath = join(foldDir, 'split.json');
  await writeFileAtomic(splitPath, enc(splits.folds[k]));
  const foldCfg = foldConfig(plan, k, foldDir, splitPath);
  if (foldCfg.init && !existsSync(foldCfg.init) && !existsSync(join(foldDir, 'checkpoint_last.safetensors')))
    throw new TrainRunError(
      `fold ${k}: --init ${foldCfg.init} does not exist${cfg.init?.includes('{fold}') ? '' : ' (put {fold} in the path to start each fold from its own weights)'}`,
    );
  log(`fold ${k} of ${K}: ${splits.folds[k]!.train.length} training, ${splits.folds[k]!.val.length} held-out cases`);
  const { trainSeconds, stepSecondsMedian, steps, trainedNow, stopped } = await trainFold(foldCfg, o);
  if (stopped) return 'stopped';
  // The process's memory high-water mark after training, kept across sessions: a fold finished
  // by a later session (after a kill) still reports the peak of the session that trained it.
  const peakPath = join(foldDir, 'peak-memory.json');
  const prevPeak = existsSync(peakPath) ? (JSON.parse(await readFile(peakPath, 'utf8')) as { trainingRssMB: number }).trainingRssMB : 0;
  const peakAfterTraining = trainedNow ? Math.max(prevPeak, process.resourceUsage().maxRSS / 1024) : prevPeak;
  if (trainedNow) await writeFileAtomic(peakPath, enc({ trainingRssMB: peakAfterTraining }));

  const scored = await scoreHeldOut(plan, k, foldCfg.modelDir!, join(foldDir, 'predictions'), o);
  if (scored.stopped) {
    log(`fold ${k}: stopped while predicting its held-out cases; the model is kept, and the predictions are made again next time`);
    return 'stopped';
  }
  const record: FoldRecord = {
    fold: k,
    steps,
    trainSeconds,
    ...(stepSecondsMedian === undefined ? {} : { stepSecondsMedian }),
    inferenceSeconds: scored.seconds,
    peakRssMB: Math.max(peakAfterTraining, process.resourceUsage().maxRSS / 1024),
    parameters: scored.parameters,
    network: scored.network as Record<string, unknown>,
    classes: scored.classes,
    cases: scored.acc.rows().map((r) => ({ caseId: r.caseId, dice: r.classes.map((c) => c.dice), hd95: r.classes.map((c) => c.hd95), nsd: r.classes.map((c) => c.nsd) })),
    tta: !!o.tta,
  };
  await writeFileAtomic(donePath, encodeFoldRecord(record));
  log(`fold ${k}: mean Dice ${meanCaseDice(record.cases).toFixed(4)} over ${record.cases.length} held-out cases`);
  return 'trained';
}

/** Mean over cases of each case's mean Dice over classes. */
function meanCaseDice(cases: readonly { dice: readonly number[] }[]): number {
  return cases.reduce((a, c) => a + c.dice.reduce((x, y) => x + y, 0) / c.dice.length, 0) / Math.max(1, cases.length);
}

/**
 * Re-makes the weights of finished fold k, whose model folder lost them (large weights are left out
 * of repositories; the run's results, curves and model.json are kept). The fold is trained again in
 * RUN/fold_k/remake/ (resumable like any fold: a stop keeps its checkpoint there), its held-out cases
 * are predicted and scored, and the weights move into RUN/fold_k/model/. Nothing recorded changes:
 * fold.json, metrics.jsonl, model.json and the predictions stay those of the original run. Training
 * is deterministic for a given build and instruction set, so the scores usually equal the recorded
 * ones exactly; the log says whether they do, and by how much they differ where they do not.
 */
async function remakeFoldWeights(plan: CrossvalPlan, k: number, o: FoldRunOptions): Promise<FoldOutcome> {
  const log = o.log;
  const foldDir = join(plan.runDir, `fold_${k}`);
  const remakeDir = join(foldDir, 'remake');
  await mkdir(remakeDir, { recursive: true });
  // The fold's split as the run stores it (RUN/splits.json), as the original training was given it.
  const splitPath = join(remakeDir, 'split.json');
  await writeFileAtomic(splitPath, enc(plan.splits.folds[k]));
  const foldCfg = foldConfig(plan, k, remakeDir, splitPath);
  if (foldCfg.init && !existsSync(foldCfg.init) && !existsSync(join(remakeDir, 'checkpoint_last.safetensors')))
    throw new TrainRunError(`fold ${k}: --init ${foldCfg.init} does not exist, so the fold cannot be trained again to re-make its weights`);
  const recorded = parseFoldRecord(await readFile(join(foldDir, 'fold.json'), 'utf8'));
  log(`fold ${k}: finished earlier, but its model has no weights; training it again in ${displayPath(remakeDir)} to re-make them (its recorded results are kept)`);
  const { stopped } = await trainFold(foldCfg, o);
  if (stopped) return 'stopped';
  // Checked as the fold was scored: with TTA if its record says so, whatever this run was given.
  const scored = await scoreHeldOut(plan, k, foldCfg.modelDir!, join(remakeDir, 'predictions'), { ...o, tta: recorded.tta ?? o.tta });
  if (scored.stopped) {
    log(`fold ${k}: stopped while checking the re-made model on its held-out cases; the next run checks it again`);
    return 'stopped';
  }
  const now = new Map(scored.acc.rows().map((r) => [r.caseId, r.classes.map((c) => c.dice)]));
  const same = recorded.cases.length === now.size && recorded.cases.every((c) => JSON.stringify(now.get(c.caseId)) === JSON.stringify(c.dice));
  const target = join(foldDir, 'model');
  await mkdir(target, { recursive: true });
  if (!existsSync(join(target, 'model.json'))) await copyFile(join(foldCfg.modelDir!, 'model.json'), join(target, 'model.json'));
  await rename(join(foldCfg.modelDir!, 'weights.safetensors'), join(target, 'weights.safetensors'));
  await rm(remakeDir, { recursive: true, force: true });
  const nowCases = [...now.values()].map((dice) => ({ dice }));
  log(
    same
      ? `fold ${k}: weights re-made; held-out Dice equals the recorded one on all ${now.size} cases (mean ${meanCaseDice(recorded.cases).toFixed(4)})`
      : `fold ${k}: weights re-made, but this machine's model scores its held-out cases differently: mean Dice ${meanCaseDice(nowCases).toFixed(4)} against the recorded ${meanCaseDice(recorded.cases).toFixed(4)} (the recorded results are kept)`,
  );
  return 'remade';
}

/** Writes RUN/summary.* and box plots over the finished folds and, once every fold is done, RUN/ensemble/. */
export async function finishCrossval(plan: CrossvalPlan, log: (s: string) => void): Promise<CrossvalResult & { summaryPath: string }> {
  const { runDir, splits, config: cfg } = plan;
  const K = splits.folds.length;
  const ids = [...plan.cases.keys()];
  const records: FoldRecord[] = [];
  for (let k = 0; k < K; k++) {
    const p = join(runDir, `fold_${k}`, 'fold.json');
    if (existsSync(p)) records.push(await withStepMedian(parseFoldRecord(await readFile(p, 'utf8')), join(runDir, `fold_${k}`)));
  }
  if (!records.length) throw new TrainRunError(`${runDir}: no fold has finished yet, so there is nothing to summarise`);
  const complete = records.length === K;
  let macs: number | null = null;
  let patch: [number, number, number] | null = null;
  if (records.length) {
    // MACs at the training patch, counted on the first finished fold's network as its model.json
    // builds it. Only the architecture matters, so a run kept without its weights (large ones are
    // left out of a repository) is still summarised.
    const { manifest } = await readModelManifest(join(runDir, `fold_${records[0]!.fold}`, 'model'));
    const model = createNetwork(manifest.spec ?? resolveNetwork(manifest.network, manifest.networkArgs));
    model.eval();
    try {
      patch = manifest.inference.roiSize;
      macs = countMacs(model, [1, manifestChannels(manifest).inChannels, ...patch]);
    } finally {
      model.dispose();
    }
  }
  // Stored like crossval.json's identity (dataset relative to RUN), so a summary committed with its run
  // names no machine's directories.
  const stored = storedIdentity(runDir, plan.identity);
  const summary = summariseCrossval({
    dataset: stored.dataset as string,
    datasetName: basename(resolve(cfg.dataset)),
    name: cfg.name ?? basename(runDir),
    splits,
    records,
    macs,
    patch,
    config: stored,
  });
  const summaryPath = await writeCrossvalSummary(runDir, summary);
  const mixed = summary.tta === null ? ttaNote(summary) : null;
  if (mixed) log(mixed);
  let ensembleDir: string | null = null;
  const noWeights = records.map((r) => join(runDir, `fold_${r.fold}`, 'model')).filter((d) => !modelWeightsPath(d));
  if (complete && noWeights.length && !existsSync(join(runDir, 'ensemble', 'model.json'))) {
    log(
      `all ${K} folds done, but no ensemble folder: ${noWeights.map((d) => relative(runDir, d)).join(', ')} ha${noWeights.length > 1 ? 've' : 's'} no weights (--remake-weights trains ${noWeights.length > 1 ? 'them' : 'it'} again)`,
    );
  } else if (complete) {
    ensembleDir = join(runDir, 'ensemble');
    if (!existsSync(join(ensembleDir, 'model.json'))) {
      await writeEnsembleFolder(
        ensembleDir,
        records.map((r) => ({ name: `fold_${r.fold}`, from: join(runDir, `fold_${r.fold}`, 'model') })),
        {
          name: `${cfg.name ?? basename(resolve(cfg.dataset))}-ensemble`,
          description: `${K}-fold ensemble from uxnet crossval (${basename(runDir)}); every labelled case trained ${K - 1} of the ${K} members`,
          training: {
            crossval: basename(runDir),
            folds: K,
            // What the demo and readers quote for the ensemble: no case is held out of all members.
            crossvalMeanDice: summary.overall.meanDice.mean,
            split: { train: ids, val: [] as string[] },
          },
        },
      );
    }
    log(`all ${K} folds done; ensemble folder ${displayPath(ensembleDir)}`);
  } else {
    log(`${records.length} of ${K} folds done; run again (without --fold) to finish the rest`);
  }
  return { runDir, foldsDone: records.map((r) => r.fold), complete, summaryPath, ensembleDir };
}

/** Runs (or continues) a cross-validation; see the file comment. */
export async function runCrossval(o: CrossvalOptions): Promise<CrossvalResult> {
  const log = o.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const plan = await prepareCrossval(o);
  const foldsToRun = o.fold !== undefined ? [o.fold] : [...plan.splits.folds.keys()];
  for (const k of foldsToRun) {
    // A stop between folds (e.g. while the summary of the last one was written) starts no new fold.
    const outcome = o.signal?.aborted ? 'stopped' : await runCrossvalFold(plan, k, { tta: o.tta, remakeWeights: o.remakeWeights, log, handlers: o.handlers, signal: o.signal });
    if (outcome === 'stopped') {
      const stopped = { fold: k, step: await stoppedFoldStep(plan, k), steps: plan.config.steps };
      // The summary covers the folds finished so far; with none there is nothing to summarise yet.
      const anyDone = plan.splits.folds.some((_, j) => existsSync(join(plan.runDir, `fold_${j}`, 'fold.json')));
      if (anyDone) return { ...(await finishCrossval(plan, log)), stopped };
      return { runDir: plan.runDir, foldsDone: [], complete: false, summaryPath: null, ensembleDir: null, stopped };
    }
    // The summary follows every fold finished now, so `uxnet compare` reads a long run's finished folds while the next one trains.
    if ((outcome === 'trained' || outcome === 'remade') && k !== foldsToRun.at(-1)) await finishCrossval(plan, () => {});
  }
  return finishCrossval(plan, log);
}
