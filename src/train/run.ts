import { existsSync } from 'node:fs';
import { flushBatchNormStats } from '../nn/norm-layers.js';
import { mkdir, readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { readCached, type CacheEntry } from '../data/cache.js';
import { PatchLoader } from '../data/loader/index.js';
import type { RandomStepSpec } from '../data/presets.js';
import type { StepSpec } from '../data/pipeline.js';
import { Rng } from '../data/rng.js';
import { readWeightsFile } from '../io/weights.js';
import { writeFileAtomic, writeSafetensorsFile } from '../io/safetensors.js';
import { createNetwork, describeNetwork, networkToJSON, type NetworkSpec, type SegmentationNetwork } from '../models/registry.js';
import { specChannels } from '../infer/model-manifest.js';
import { modelPredictor, slidingWindowInference } from '../infer/sliding-window.js';
import { argmaxChannels } from '../infer/predict.js';
import { MODEL_FORMAT, type ModelManifest } from '../infer/model-folder.js';
import { runPreprocess } from '../cli/commands/preprocess.js';
import { getBackendName } from '../engine/registry.js';
import { loadCheckpoint } from './checkpoint.js';
import { configuredClasses, trainNetworkSpec, type TrainConfig } from './config.js';
import { Trainer, type Batch, type BatchSource, type ValidationResult } from './trainer.js';

/** A problem with the run's inputs (dataset, split, weights, output folder) that the user must fix. */
export class TrainRunError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainRunError';
  }
}

export interface TrainPlan {
  name: string;
  numClasses?: number;
  roiSize: [number, number, number];
  val: StepSpec[];
  train: RandomStepSpec[];
  dataset?: { labels?: Record<string, string> | null };
  cache: CacheEntry[];
}

export interface TrainRunResult {
  outDir: string;
  modelDir: string;
  steps: number;
  best: { step: number; metric: number } | null;
  seconds: number;
}

/** Train/val partition: an explicit split file, else the dataset's val split, else a seeded 20% hold-out. */
export async function splitEntries(entries: CacheEntry[], cfg: TrainConfig): Promise<{ train: CacheEntry[]; val: CacheEntry[] }> {
  if (cfg.split) {
    const s = JSON.parse(await readFile(cfg.split, 'utf8')) as { train?: string[]; val?: string[] };
    if (!Array.isArray(s.train) || !Array.isArray(s.val)) throw new TrainRunError(`${cfg.split}: a split file is {"train": [case ids], "val": [case ids]}`);
    const byId = new Map(entries.map((e) => [e.id, e]));
    const pick = (ids: string[], what: string) => ids.map((id) => {
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
  for (let i = ids.length - 1; i > 0; i--) { const j = rng.int(i + 1); [ids[i], ids[j]] = [ids[j]!, ids[i]!]; }
  const nVal = Math.max(1, Math.round(0.2 * ids.length));
  const valIds = new Set(ids.slice(0, nVal));
  return { train: train.filter((e) => !valIds.has(e.id)), val: train.filter((e) => valIds.has(e.id)) };
}

/** Stacks the crops of one volume into an NCDHW batch (the official batch: crops of one case). */
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

/** Dice per foreground class on the preprocessed grid (as the official validation does). */
export function dicePerClass(pred: ArrayLike<number>, gt: ArrayLike<number>, classes: number): number[] {
  const inter = new Float64Array(classes), ps = new Float64Array(classes), gs = new Float64Array(classes);
  for (let i = 0; i < gt.length; i++) {
    const p = pred[i]!, g = gt[i]!;
    ps[p]++; gs[g]++;
    if (p === g) inter[p]++;
  }
  const out: number[] = [];
  for (let c = 1; c < classes; c++) out.push(ps[c]! + gs[c]! === 0 ? 1 : (2 * inter[c]!) / (ps[c]! + gs[c]!));
  return out;
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
    if (!p) { if (!buffers.has(k)) skipped.push(k); continue; }
    if (p.shape.length !== t.shape.length || p.shape.some((d, i) => d !== t.shape[i])) { reinitialised.push(k); continue; }
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

export async function exportModelFolder(dir: string, model: SegmentationNetwork, spec: NetworkSpec, plan: TrainPlan, cfg: TrainConfig, extra: Record<string, unknown>): Promise<void> {
  await mkdir(dir, { recursive: true });
  const K = specChannels(spec).outChannels;
  const names = plan.dataset?.labels ?? null;
  const labels: Record<string, string> = {};
  for (let c = 0; c < K; c++) labels[String(c)] = names?.[String(c)] ?? (c === 0 ? 'background' : `class ${c}`);
  const spacing = plan.val.find((s) => s.op === 'spacing') as { pixdim: [number, number, number] } | undefined;
  const manifest: ModelManifest = {
    format: MODEL_FORMAT,
    name: cfg.name ?? basename(resolve(cfg.dataset)),
    description: `${spec.network === 'uxnet' ? '3D UX-Net' : describeNetwork(spec)} trained with uxnet3d on ${basename(resolve(cfg.dataset))} (plan: ${plan.name})`,
    ...networkToJSON(spec),
    preprocessing: { steps: plan.val, ...(spacing ? { fastPixdim: spacing.pixdim.map((p) => p * 2) as [number, number, number] } : {}) },
    inference: {
      roiSize: model.fixedInputSize ?? cfg.roiSize ?? plan.roiSize, overlap: 0.5, mode: 'gaussian', swBatchSize: 1,
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

/** `uxnet train`: preprocess (cached), then the official loop; writes checkpoints, logs, curves and a model folder. */
export async function runTraining(cfg: TrainConfig, opts: { resume?: boolean; log?: (s: string) => void } = {}): Promise<TrainRunResult> {
  const log = opts.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const outDir = resolve(cfg.outDir);
  const lastPath = join(outDir, 'checkpoint_last.safetensors');
  if (!opts.resume && existsSync(lastPath)) throw new TrainRunError(`${outDir} already holds a training run; pass --resume to continue it, or choose another output folder`);
  if (opts.resume && !existsSync(lastPath)) throw new TrainRunError(`--resume: ${lastPath} does not exist`);
  await mkdir(outDir, { recursive: true });

  const { planPath } = await runPreprocess({ dataset: cfg.dataset, preset: cfg.preset, cache: cfg.cacheDir ?? join(outDir, 'cache'), workers: cfg.workers });
  const plan = JSON.parse(await readFile(planPath, 'utf8')) as TrainPlan;
  const { train, val } = await splitEntries(plan.cache, cfg);
  if (!train.length) throw new TrainRunError('no training cases (with labels) were found');
  const K = configuredClasses(cfg) ?? plan.numClasses;
  if (!K) throw new Error('the number of classes is unknown: set the network\'s out_channels');
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
    throw new TrainRunError(`roiSize ${cfg.roiSize.join('x')} differs from the network's img_size ${roi.join('x')}, the only input size it takes; drop --roi or set img_size to it`);
  }
  try {
    model.checkInputShape([1, train[0]!.channels, ...roi]);
  } catch (e) {
    model.dispose();
    throw new TrainRunError(`the training crop ${roi.join('x')} does not fit the network: ${(e as Error).message}; choose another --roi`);
  }
  const tail = plan.train.map((s) => (s.op === 'randCropByPosNegLabel' ? { ...s, spatialSize: roi, numSamples: cfg.cropsPerVolume } : s)) as RandomStepSpec[];
  log(`${describeNetwork(spec)} on backend '${getBackendName()}': ${model.numParameters().toLocaleString('en-US')} parameters, ${K} classes; ${train.length} training and ${val.length} validation cases; crops ${roi.join('x')} x ${cfg.cropsPerVolume}`);
  await writeFileAtomic(join(outDir, 'config.json'), new TextEncoder().encode(JSON.stringify(cfg, null, 2) + '\n'));

  const validate = val.length
    ? async (m: SegmentationNetwork): Promise<ValidationResult> => {
        m.eval();
        const sums = new Array(K - 1).fill(0);
        for (const e of val) {
          const s = await readCached(e);
          const { data } = await slidingWindowInference({ data: s.image.data, shape: [1, s.image.channels, ...s.image.shape] }, roi, modelPredictor(m), { overlap: cfg.valOverlap, mode: cfg.valMode });
          const d = dicePerClass(argmaxChannels(data, K), s.label!.data, K);
          d.forEach((v, i) => (sums[i] += v));
        }
        m.train();
        return { dicePerClass: sums.map((v) => v / val.length) };
      }
    : null;

  const ck = opts.resume ? await loadCheckpoint(lastPath) : null;
  const start = ck?.state.step ?? 0;
  let loader: PatchLoader | null = null;
  let expected = start;
  const source: BatchSource = {
    async batch(step) {
      // One request per step: request n is a pure function of (seed, n), so a resumed run sees the same crops.
      if (step !== expected) throw new Error(`internal: batch ${step} requested, loader is at ${expected}`);
      expected++;
      return stackPatches(await loader!.next());
    },
  };
  const trainer = new Trainer(model, source, validate, {
    steps: cfg.steps, lr: cfg.lr, weightDecay: cfg.weightDecay, schedule: cfg.schedule, valEvery: cfg.valEvery, saveEvery: cfg.saveEvery,
    outDir, config: cfg, plan: { ...plan, cache: undefined },
  });
  if (ck) {
    await model.loadStateDictAsync(ck.model, { strict: true });
    if (ck.optimizer) trainer.optimizer.loadStateDict(ck.optimizer);
    trainer.resumeFrom(ck.state);
    log(`resuming at step ${start} of ${cfg.steps}`);
  } else if (cfg.init) {
    const r = await initFromWeights(model, cfg.init);
    log(`--init ${cfg.init}: loaded ${r.loaded.length} tensors, reinitialised ${r.reinitialised.length}${r.reinitialised.length ? ` (${r.reinitialised.join(', ')})` : ''}, skipped ${r.skipped.length}${r.skipped.length ? ` (${r.skipped.slice(0, 5).join(', ')}${r.skipped.length > 5 ? ', …' : ''})` : ''}`);
  }
  // Workers start only now, so a bad --init or checkpoint leaves no threads behind.
  loader = new PatchLoader(train, tail, { workers: cfg.workers, seed: cfg.seed, start });
  model.train();
  let result;
  try {
    result = await trainer.run();
  } finally {
    await loader.close();
  }
  const modelDir = resolve(cfg.modelDir ?? join(outDir, 'model'));
  const bestPath = join(outDir, 'checkpoint_best.safetensors');
  if (existsSync(bestPath)) {
    const best = await loadCheckpoint(bestPath);
    await model.loadStateDictAsync(best.model, { strict: true });
  }
  await exportModelFolder(modelDir, model, spec, plan, cfg, { steps: cfg.steps, best: result.best, seconds: result.seconds, split: { train: train.map((e) => e.id), val: val.map((e) => e.id) } });
  // The model folder is self-describing: it carries the curves and per-step log of the run that made it.
  for (const [from, to] of [['curves.svg', 'training-curves.svg'], ['metrics.jsonl', 'training-metrics.jsonl']] as const) {
    if (existsSync(join(outDir, from))) await writeFileAtomic(join(modelDir, to), await readFile(join(outDir, from)));
  }
  log(`done in ${(result.seconds / 60).toFixed(1)} min; best validation Dice ${result.best ? `${result.best.metric.toFixed(4)} at step ${result.best.step}` : 'n/a'}; model folder ${modelDir}`);
  return { outDir, modelDir, steps: cfg.steps, best: result.best, seconds: result.seconds };
}
