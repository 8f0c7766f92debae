import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { flushBatchNormStats } from '../nn/norm-layers.js';
import { readCached, type CacheEntry } from '../data/cache.js';
import { PatchLoader, type LoadedPatch } from '../data/loader/index.js';
import type { RandomStepSpec } from '../data/step-schema.js';
import { Rng } from '../engine/rng.js';
import { readWeightsFile } from '../io/weights.js';
import { writeSafetensorsFile } from '../io/safetensors.js';
import { displayPath, isInside, writeFileAtomic } from '../io/fs.js';
import { createNetwork, describeNetwork, networkToJSON, type NetworkSpec, type SegmentationNetwork } from '../models/registry.js';
import { specChannels } from '../infer/model-manifest.js';
import { modelPredictor, slidingWindowInference } from '../infer/sliding-window.js';
import { argmaxChannels } from '../infer/predict.js';
import { MODEL_FORMAT, MODEL_VERSION, modelWeightsPath, type ModelManifest } from '../infer/model-folder.js';
import { preprocessDataset, type PreprocessPlan } from '../data/preprocess.js';
import { getBackendName } from '../engine/registry.js';
import { diceFromCounts } from '../metrics/segmentation.js';
import { loadCheckpoint } from './checkpoint.js';
import { DeepSupervisionHeads } from './deep-supervision.js';
import { configuredClasses, resolveConfigPaths, trainNetworkSpec, type TrainConfig } from './config.js';
import type { TrainHandlers } from './events.js';
import { parseSplitFile, readJsonFile } from './split-file.js';
import { DS_PREFIX, Trainer, type Batch, type BatchSource, type ValidationResult } from './trainer.js';
import { TrainRunError } from './errors.js';

export { TrainRunError } from './errors.js';

/** The plan training runs on: what preprocessing returned (and wrote to plan.json). */
export type TrainPlan = PreprocessPlan;

export interface TrainRunOptions {
  /** Continue the run in cfg.outDir from its checkpoint_last. */
  resume?: boolean;
  /** Replace an existing model folder named by cfg.modelDir outside the run folder. */
  force?: boolean;
  handlers?: TrainHandlers;
  /** Shorthand for handlers.onLog. */
  log?: (line: string) => void;
  /** Abort to stop: the step in progress finishes, checkpoint_last is saved, and the result says `stopped`. */
  signal?: AbortSignal;
  /** How the stop's log line tells the user to continue (default: `uxnet train -o RUN --resume`). */
  resumeHint?: string;
}

export interface TrainRunResult {
  outDir: string;
  /** The exported model folder; null when the run was stopped before its last step. */
  modelDir: string | null;
  steps: number;
  /** Steps completed (less than `steps` when stopped). */
  completed: number;
  stopped: boolean;
  best: { step: number; metric: number } | null;
  seconds: number;
}

/** Train/val partition: an explicit split file, else the dataset's val split, else a seeded 20% hold-out. */
export async function splitEntries(entries: CacheEntry[], cfg: TrainConfig): Promise<{ train: CacheEntry[]; val: CacheEntry[] }> {
  if (cfg.split) {
    const s = parseSplitFile(await readJsonFile(cfg.split, 'split file'), cfg.split, (m) => new TrainRunError(m));
    const byId = new Map(entries.map((e) => [e.id, e]));
    const pick = (ids: string[], what: string) =>
      ids.map((id) => {
        const e = byId.get(id);
        if (!e) throw new TrainRunError(`${cfg.split}: ${what} case '${id}' is not in the dataset`);
        return e;
      });
    return { train: pick(s.train, 'train'), val: pick(s.val, 'val') };
  }
  const train = entries.filter((e) => e.split === 'train');
  const val = entries.filter((e) => e.split === 'val');
  if (val.length) return { train, val };
  const ids = train.map((e) => e.id).sort();
  const rng = new Rng(cfg.seed + 7);
  for (let i = ids.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [ids[i], ids[j]] = [ids[j]!, ids[i]!];
  }
  const nVal = Math.max(1, Math.round(0.2 * ids.length));
  const valIds = new Set(ids.slice(0, nVal));
  return { train: train.filter((e) => !valIds.has(e.id)), val: train.filter((e) => valIds.has(e.id)) };
}

/** Stacks the crops of a step into an NCDHW batch (the official batch: the crops of one case). */
export function stackPatches(patches: { image: Float32Array; label?: Float32Array; shape: [number, number, number]; channels: number }[]): Batch {
  const p0 = patches[0]!;
  const [d, h, w] = p0.shape;
  const vox = d * h * w;
  const image = new Float32Array(patches.length * p0.channels * vox);
  const label = new Float32Array(patches.length * vox);
  patches.forEach((p, i) => {
    if (p.shape.some((s, k) => s !== p0.shape[k]) || p.channels !== p0.channels) throw new Error('crops of one step differ in shape');
    if (!p.label) throw new Error('training crop without a label');
    image.set(p.image, i * p0.channels * vox);
    label.set(p.label, i * vox);
  });
  return { image, label, shape: [patches.length, p0.channels, d, h, w] };
}

/**
 * The batches of a run from a patch loader: step s stacks the crops of loader requests s*V .. s*V+V-1
 * (V volumes a step). Request n is a pure function of (seed, n), so a run resumed at step s, whose
 * loader starts at request s*V, sees the same batches as an uninterrupted one.
 */
export function stepBatches(loader: () => { next(): Promise<LoadedPatch[]> }, volumesPerStep: number, start: number): BatchSource {
  let expected = start;
  return {
    async batch(step) {
      if (step !== expected) throw new Error(`internal: batch ${step} requested, loader is at ${expected}`);
      expected++;
      const patches: LoadedPatch[] = [];
      for (let v = 0; v < volumesPerStep; v++) patches.push(...(await loader().next()));
      return stackPatches(patches);
    },
  };
}

/**
 * Dice per foreground class on the preprocessed grid (as the official validation does), with the one
 * convention `evaluate` and `demo` use too (diceFromCounts): a class absent from both sides is NaN and
 * left out of means, as MONAI's DiceMetric reduction does; one side empty gives 0.
 */
export function dicePerClass(pred: ArrayLike<number>, gt: ArrayLike<number>, classes: number): number[] {
  const inter = new Float64Array(classes),
    ps = new Float64Array(classes),
    gs = new Float64Array(classes);
  for (let i = 0; i < gt.length; i++) {
    const p = pred[i]!,
      g = gt[i]!;
    ps[p]++;
    gs[g]++;
    if (p === g) inter[p]++;
  }
  const out: number[] = [];
  for (let c = 1; c < classes; c++) out.push(diceFromCounts(inter[c]!, ps[c]!, gs[c]!));
  return out;
}

/** Mean of the non-NaN values (NaN when there is none). */
export function nanMean(values: readonly number[]): number {
  const v = values.filter((x) => !Number.isNaN(x));
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
}

/** Loads matching tensors from `path` into the model; a differently shaped tensor keeps its fresh init (the out block when the class count differs). */
export async function initFromWeights(model: SegmentationNetwork, path: string): Promise<{ loaded: string[]; reinitialised: string[]; skipped: string[] }> {
  const weights = await readWeightsFile(path);
  const own = new Map(model.namedParameters());
  const loadable = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  const reinitialised: string[] = [];
  const skipped: string[] = [];
  // Constant buffers (SwinUNETR's relative_position_index) are recomputed by the model, not loaded.
  const buffers = new Set(model.namedBuffers().map(([k]) => k));
  for (const [k, t] of weights) {
    const p = own.get(k);
    if (!p) {
      if (!buffers.has(k)) skipped.push(k);
      continue;
    }
    if (p.shape.length !== t.shape.length || p.shape.some((d, i) => d !== t.shape[i])) {
      reinitialised.push(k);
      continue;
    }
    loadable.set(k, t);
  }
  for (const k of own.keys()) if (!weights.has(k) && !reinitialised.includes(k)) reinitialised.push(k);
  // BatchNorm running statistics of the same shape come along (they are skipped above, not being parameters).
  for (const [k, b] of model.namedBuffers()) {
    const t = weights.get(k);
    if (!b.mutable || !t) continue;
    skipped.splice(skipped.indexOf(k), 1);
    if (t.shape.length === b.shape.length && t.shape.every((d, i) => d === b.shape[i])) loadable.set(k, t);
  }
  if (loadable.size === 0) throw new TrainRunError(`${path}: no tensor matches this network (is it a state dict of the same architecture?)`);
  await model.loadStateDictAsync(loadable, { strict: false });
  return { loaded: [...loadable.keys()], reinitialised, skipped };
}

export async function exportModelFolder(
  dir: string,
  model: SegmentationNetwork,
  spec: NetworkSpec,
  plan: Omit<TrainPlan, 'cache' | 'chainHash'> & Partial<TrainPlan>,
  cfg: TrainConfig,
  extra: Record<string, unknown>,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  const K = specChannels(spec).outChannels;
  const names = plan.dataset?.labels ?? null;
  const labels: Record<string, string> = {};
  for (let c = 0; c < K; c++) labels[String(c)] = names?.[String(c)] ?? (c === 0 ? 'background' : `class ${c}`);
  const spacing = plan.val.find((s) => s.op === 'spacing') as { pixdim: [number, number, number] } | undefined;
  const manifest: ModelManifest = {
    format: MODEL_FORMAT,
    version: MODEL_VERSION,
    name: cfg.name ?? basename(resolve(cfg.dataset)),
    description: `${spec.network === 'uxnet' ? '3D UX-Net' : describeNetwork(spec)} trained with uxnet3d on ${basename(resolve(cfg.dataset))} (plan: ${plan.name})`,
    ...networkToJSON(spec),
    preprocessing: { steps: plan.val, ...(spacing ? { fastPixdim: spacing.pixdim.map((p) => p * 2) as [number, number, number] } : {}) },
    inference: {
      roiSize: model.fixedInputSize ?? cfg.roiSize ?? plan.roiSize,
      overlap: 0.5,
      mode: 'gaussian',
      swBatchSize: 1,
      mirrorAxes: [...new Set(plan.train.flatMap((s) => (s.op === 'randFlip' ? (s.axes ?? [0, 1, 2]) : [])))].sort(),
    },
    labels,
    training: extra,
  };
  const entries: [string, { shape: readonly number[]; data: Float32Array }][] = [];
  for (const [k, t] of model.namedParameters()) entries.push([k, { shape: t.shape, data: await t.data() }]);
  // BatchNorm running statistics (TransBTS) are state too.
  await flushBatchNormStats(model);
  entries.push(...model.namedStateBuffers());
  await writeSafetensorsFile(join(dir, 'weights.safetensors'), entries, { format: 'pt' }, { dtype: cfg.modelDtype ?? 'F32' });
  await writeFileAtomic(join(dir, 'model.json'), new TextEncoder().encode(JSON.stringify(manifest, null, 2) + '\n'));
}

/** What a run folder may hold besides temporaries: anything else means it is not one. */
const RUN_ENTRIES = new Set([
  'cache',
  'config.json',
  'metrics.jsonl',
  'curves.svg',
  'checkpoint_last.safetensors',
  'checkpoint_best.safetensors',
  'model',
  // what the run's own drivers keep beside it: a crossval fold (split, result, memory, predictions), a queued job's owner
  'split.json',
  'fold.json',
  'peak-memory.json',
  'predictions',
  'queue-job.json',
]);

/** Everything that could destroy what the user has is refused here, before any compute. */
function checkOutputs(outDir: string, modelDir: string, opts: TrainRunOptions): void {
  const lastPath = join(outDir, 'checkpoint_last.safetensors');
  if (existsSync(outDir)) {
    if (!statSync(outDir).isDirectory()) throw new TrainRunError(`${outDir} is not a folder`);
    const foreign = readdirSync(outDir).filter((n) => !RUN_ENTRIES.has(n) && !/\.tmp(-|$)/.test(n));
    if (foreign.length)
      throw new TrainRunError(
        `${outDir} holds files that are not a training run's (${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', …' : ''}); choose a new or empty run folder`,
      );
  }
  if (!opts.resume && existsSync(lastPath)) throw new TrainRunError(`${outDir} already holds a training run; pass --resume to continue it, or choose another output folder`);
  if (opts.resume && !existsSync(lastPath)) throw new TrainRunError(`--resume: ${lastPath} does not exist`);
  if (!isInside(outDir, modelDir) && existsSync(modelDir)) {
    if (!statSync(modelDir).isDirectory()) throw new TrainRunError(`model export target ${modelDir} exists and is not a folder`);
    if (readdirSync(modelDir).length > 0 && !opts.force) throw new TrainRunError(`model export target ${modelDir} already exists; pass --force to replace it, or export elsewhere`);
  }
  if (isInside(modelDir, outDir) && modelDir !== join(outDir, 'model')) throw new TrainRunError(`model export target ${modelDir} contains the run folder ${outDir}`);
}

/** Writes the model folder; an existing folder outside the run is replaced only once the new one is complete. */
async function exportReplacing(modelDir: string, outDir: string, write: (dir: string) => Promise<void>): Promise<void> {
  if (isInside(outDir, modelDir) || !existsSync(modelDir)) return write(modelDir);
  const fresh = `${modelDir}.tmp-${process.pid}`;
  const old = `${modelDir}.old-${process.pid}`;
  await rm(fresh, { recursive: true, force: true });
  try {
    await write(fresh);
  } catch (e) {
    await rm(fresh, { recursive: true, force: true });
    throw e;
  }
  await rename(modelDir, old);
  await rename(fresh, modelDir);
  await rm(old, { recursive: true, force: true });
}

/**
 * A training run: preprocess (cached), then the official loop; writes checkpoints, logs and curves in
 * the run folder `cfg.outDir` and exports the best model to `cfg.modelDir` (default RUN/model).
 * Nothing is written outside the run folder except that export target. Reports through `handlers`.
 */
export async function runTraining(cfgIn: TrainConfig, opts: TrainRunOptions = {}): Promise<TrainRunResult> {
  const h: TrainHandlers = { ...opts.handlers };
  const log = (s: string) => (h.onLog ?? opts.log)?.(s);
  // Relative paths are the caller's (cwd); config.json stores them absolute, so a resume works from anywhere.
  const cfg = resolveConfigPaths(cfgIn, process.cwd());
  const outDir = resolve(cfg.outDir);
  const lastPath = join(outDir, 'checkpoint_last.safetensors');
  const modelDir = resolve(cfg.modelDir ?? join(outDir, 'model'));
  checkOutputs(outDir, modelDir, opts);
  await mkdir(outDir, { recursive: true });

  const { plan } = await preprocessDataset({
    dataset: cfg.dataset,
    preset: cfg.preset,
    cache: cfg.cacheDir ?? join(outDir, 'cache'),
    workers: cfg.workers,
    onProgress: h.onProgress,
  });
  const { train, val } = await splitEntries(plan.cache, cfg);
  if (!train.length) throw new TrainRunError('no training cases (with labels) were found');
  const K = configuredClasses(cfg) ?? plan.numClasses;
  if (!K) throw new Error("the number of classes is unknown: set the network's out_channels");
  let spec: NetworkSpec;
  try {
    spec = trainNetworkSpec(cfg, train[0]!.channels, K, cfg.roiSize ?? plan.roiSize);
  } catch (e) {
    throw new TrainRunError(`network: ${(e as Error).message}`);
  }
  const model = createNetwork(spec, { seed: cfg.seed });
  // A network with one fixed input size (UNETR's img_size) trains on crops of that size and validates with it as the window.
  const roi = model.fixedInputSize ?? cfg.roiSize ?? plan.roiSize;
  if (model.fixedInputSize && cfg.roiSize && cfg.roiSize.some((d, i) => d !== roi[i])) {
    model.dispose();
    throw new TrainRunError(
      `roiSize ${cfg.roiSize.join('x')} differs from the network's img_size ${roi.join('x')}, the only input size it takes; drop --roi or set img_size to it`,
    );
  }
  try {
    model.checkInputShape([1, train[0]!.channels, ...roi]);
  } catch (e) {
    model.dispose();
    throw new TrainRunError(`the training crop ${roi.join('x')} does not fit the network: ${(e as Error).message}; choose another --roi`);
  }
  const dsLevels = cfg.deepSupervision ?? 0;
  let heads: DeepSupervisionHeads | undefined;
  if (dsLevels > 0) {
    const channels = model.decoderChannels ?? [];
    if (!model.forwardDecoder || !channels.length) {
      model.dispose();
      throw new TrainRunError(`deepSupervision: ${describeNetwork(spec)} does not expose its decoder levels; only uxnet trains with deep supervision`);
    }
    if (dsLevels > channels.length) {
      model.dispose();
      throw new TrainRunError(`deepSupervision: ${dsLevels} levels asked for, but the network's decoder has ${channels.length} below full resolution`);
    }
    heads = new DeepSupervisionHeads(channels.slice(0, dsLevels), K, { seed: cfg.seed });
  }
  const tail = plan.train.map((s) => (s.op === 'randCropByPosNegLabel' ? { ...s, spatialSize: roi, numSamples: cfg.cropsPerVolume } : s)) as RandomStepSpec[];
  const volumes = cfg.volumesPerStep ?? 1;
  log(
    `${describeNetwork(spec)} on backend '${getBackendName()}': ${model.numParameters().toLocaleString('en-US')} parameters, ${K} classes; ${train.length} training and ${val.length} validation cases; crops ${roi.join('x')} x ${cfg.cropsPerVolume}${volumes > 1 ? ` from each of ${volumes} volumes a step` : ''}${heads ? `; deep supervision on ${dsLevels} decoder level(s), weights ${heads.weights.map((w) => w.toFixed(3)).join('/')}` : ''}`,
  );
  await writeFileAtomic(join(outDir, 'config.json'), new TextEncoder().encode(JSON.stringify(cfg, null, 2) + '\n'));

  const validate = val.length
    ? async (m: SegmentationNetwork): Promise<ValidationResult> => {
        m.eval();
        const perCase: number[][] = [];
        for (const e of val) {
          const s = await readCached(e);
          const { data } = await slidingWindowInference({ data: s.image.data, shape: [1, s.image.channels, ...s.image.shape] }, roi, modelPredictor(m), {
            overlap: cfg.valOverlap,
            mode: cfg.valMode,
          });
          perCase.push(dicePerClass(argmaxChannels(data, K), s.label!.data, K));
        }
        m.train();
        return { dicePerClass: Array.from({ length: K - 1 }, (_, c) => nanMean(perCase.map((d) => d[c]!))) };
      }
    : null;

  const ck = opts.resume ? await loadCheckpoint(lastPath) : null;
  const start = ck?.state.step ?? 0;
  if (start > cfg.steps) throw new TrainRunError(`--resume: the checkpoint is at step ${start}, past the ${cfg.steps} steps asked for`);
  let loader: PatchLoader | null = null;
  const source: BatchSource = stepBatches(() => loader!, volumes, start);
  const { cache: _cache, ...planNoCache } = plan;
  const trainer = new Trainer(model, source, validate, {
    steps: cfg.steps,
    lr: cfg.lr,
    weightDecay: cfg.weightDecay,
    schedule: cfg.schedule,
    valEvery: cfg.valEvery,
    saveEvery: cfg.saveEvery,
    outDir,
    config: cfg,
    plan: planNoCache,
    handlers: h,
    signal: opts.signal,
    deepSupervision: heads,
  });
  if (ck) {
    // The deep-supervision heads' tensors sit beside the network's under their prefix.
    const own = new Map([...ck.model].filter(([k]) => !k.startsWith(DS_PREFIX)));
    const dsState = new Map([...ck.model].filter(([k]) => k.startsWith(DS_PREFIX)).map(([k, t]) => [k.slice(DS_PREFIX.length), t]));
    if (!heads !== !dsState.size)
      throw new TrainRunError(
        `--resume: the checkpoint was saved ${dsState.size ? 'with' : 'without'} deep supervision, but the run's config asks for ${heads ? dsLevels + ' level(s)' : 'none'}`,
      );
    // Heads are registered as "0", "1", ...: their count is the number of levels the checkpoint trained.
    const savedLevels = new Set([...dsState.keys()].map((k) => k.split('.')[0])).size;
    if (heads && savedLevels !== dsLevels)
      throw new TrainRunError(`--resume: the checkpoint was saved with deep supervision on ${savedLevels} level(s), but the run's config asks for ${dsLevels}`);
    await model.loadStateDictAsync(own, { strict: true });
    if (heads) await heads.loadStateDictAsync(dsState, { strict: true });
    if (ck.optimizer) trainer.optimizer.loadStateDict(ck.optimizer);
    trainer.resumeFrom(ck.state);
    log(`resuming at step ${start} of ${cfg.steps}`);
  } else if (cfg.init) {
    // A model folder stands for its weights file.
    const initFile = modelWeightsPath(cfg.init) ?? cfg.init;
    const r = await initFromWeights(model, initFile);
    log(
      `--init ${cfg.init}: loaded ${r.loaded.length} tensors, reinitialised ${r.reinitialised.length}${r.reinitialised.length ? ` (${r.reinitialised.join(', ')})` : ''}, skipped ${r.skipped.length}${r.skipped.length ? ` (${r.skipped.slice(0, 5).join(', ')}${r.skipped.length > 5 ? ', …' : ''})` : ''}`,
    );
  }
  // Workers start only now, so a bad --init or checkpoint leaves no threads behind.
  loader = new PatchLoader(train, tail, { workers: cfg.workers, seed: cfg.seed, start: start * volumes });
  model.train();
  let result;
  try {
    result = await trainer.run();
  } finally {
    await loader.close();
    heads?.dispose();
  }
  if (result.stopped) {
    log(
      `stopped after step ${result.completed} of ${cfg.steps}; ${result.completed > start ? `checkpoint saved in ${lastPath}` : 'no step was run'}; continue with: ${opts.resumeHint ?? `uxnet train -o ${outDir} --resume`}`,
    );
    model.dispose();
    return { outDir, modelDir: null, steps: cfg.steps, completed: result.completed, stopped: true, best: result.best, seconds: result.seconds };
  }
  const bestPath = join(outDir, 'checkpoint_best.safetensors');
  if (existsSync(bestPath)) {
    const best = await loadCheckpoint(bestPath);
    await model.loadStateDictAsync(best.model, { strict: true });
  }
  await exportReplacing(modelDir, outDir, async (dir) => {
    await exportModelFolder(dir, model, spec, plan, cfg, {
      steps: cfg.steps,
      best: result.best,
      seconds: result.seconds,
      split: { train: train.map((e) => e.id), val: val.map((e) => e.id) },
    });
    // The model folder is self-describing: it carries the curves and per-step log of the run that made it.
    for (const [from, to] of [
      ['curves.svg', 'training-curves.svg'],
      ['metrics.jsonl', 'training-metrics.jsonl'],
    ] as const) {
      if (existsSync(join(outDir, from))) await writeFileAtomic(join(dir, to), await readFile(join(outDir, from)));
    }
  });
  model.dispose();
  log(
    `done in ${(result.seconds / 60).toFixed(1)} min; best validation Dice ${result.best ? `${result.best.metric.toFixed(4)} at step ${result.best.step}` : 'n/a'}; model folder ${displayPath(modelDir)}`,
  );
  return { outDir, modelDir, steps: cfg.steps, completed: result.completed, stopped: false, best: result.best, seconds: result.seconds };
}
