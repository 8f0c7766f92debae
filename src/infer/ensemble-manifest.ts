/**
 * Ensembles of model folders (nnU-Net's fold ensembles): a folder whose model.json is
 *
 *   {"format": "uxnet3d-ensemble/1", "name": "...", "labels": {"0": "background", ...},
 *    "members": [{"path": "fold_0"}, {"path": "fold_1"}, ...], "training": {...}}
 *
 * where each member path is a model folder inside the ensemble folder (relative, no "..", so the
 * folder can be moved, shipped or served as static files). Members may be different networks and
 * may even preprocess differently; they must agree on input channels and on the classes.
 *
 * Prediction averages the members' softmax probabilities (each after its own mirroring TTA when
 * asked) and then takes the argmax, as nnU-Net does. Members with the same preprocessing chain are
 * averaged on that chain's grid (one inversion at the end, exactly nnU-Net's fold ensemble); if the
 * chains differ, each member's probabilities are first mapped back to the input grid (linear
 * interpolation) and averaged there.
 *
 * Browser-safe: no file system here (./ensemble.ts reads and writes folders).
 */
import { manifestChannels } from './model-manifest.js';
import { runSteps } from '../data/pipeline.js';
import { invert } from '../data/invert.js';
import type { Volume, VoxelData } from '../data/volume.js';
import { ModelFolderError, MODEL_FORMAT, type LoadedModel, type ModelManifest } from './model-manifest.js';
import { argmaxChannels, modelProbabilities, predictVolume, preprocessingSteps, type Prediction, type PredictOptions } from './predict.js';

export const ENSEMBLE_FORMAT = 'uxnet3d-ensemble/1';

export interface EnsembleMember {
  /** A model folder, relative to the ensemble folder. */
  path: string;
}

export interface EnsembleManifest {
  format: typeof ENSEMBLE_FORMAT;
  name: string;
  description?: string;
  /** Class index -> name, background included; every member must have the same. */
  labels: Record<string, string>;
  members: EnsembleMember[];
  /**
   * `tta`: mirroring test-time augmentation for every member unless the caller says otherwise (as
   * a model folder's inference.tta; unset, each member's own default applies). Every member must
   * have been trained with flips.
   */
  inference?: { tta?: boolean };
  /** Free-form provenance (e.g. the crossval run, folds, held-out cases in `split.val`). */
  training?: Record<string, unknown>;
}

export interface LoadedEnsemble {
  manifest: EnsembleManifest;
  members: LoadedModel[];
  dir: string;
}

/** What `uxnet predict -m` accepts: one model folder or an ensemble folder. */
export type Segmenter = LoadedModel | LoadedEnsemble;

export function isEnsemble(s: Segmenter): s is LoadedEnsemble {
  return (s as LoadedEnsemble).members !== undefined;
}

/** The format string of a parsed model.json, to choose between a model and an ensemble. */
export function manifestFormat(json: unknown): unknown {
  return json && typeof json === 'object' ? (json as { format?: unknown }).format : undefined;
}

/** A member path must name a folder inside the ensemble folder. */
export function validMemberPath(p: unknown): p is string {
  return (
    typeof p === 'string' && p.length > 0 && !p.startsWith('/') && !p.includes('\\') && !/^[A-Za-z]:/.test(p) && p.split('/').every((s) => s !== '..' && s !== '' && s !== '.')
  );
}

export function validateEnsembleManifest(m: unknown, where: string): EnsembleManifest {
  const o = m as Partial<EnsembleManifest>;
  if (!o || typeof o !== 'object') throw new ModelFolderError(`${where}: not a JSON object`);
  if (o.format !== ENSEMBLE_FORMAT) throw new ModelFolderError(`${where}: format is ${JSON.stringify(o.format)}, expected "${ENSEMBLE_FORMAT}"`);
  if (typeof o.name !== 'string' || !o.name) throw new ModelFolderError(`${where}: name must be a non-empty string`);
  if (!Array.isArray(o.members) || o.members.length === 0) throw new ModelFolderError(`${where}: members must list at least one model folder, e.g. [{"path": "fold_0"}]`);
  const seen = new Set<string>();
  o.members.forEach((mem, i) => {
    const p = (mem as EnsembleMember | null)?.path;
    if (!validMemberPath(p)) throw new ModelFolderError(`${where}: members[${i}].path must be a folder inside the ensemble folder (relative, no '..'), got ${JSON.stringify(p)}`);
    if (seen.has(p)) throw new ModelFolderError(`${where}: members[${i}].path '${p}' is listed twice`);
    seen.add(p);
  });
  const inf = o.inference as Record<string, unknown> | undefined;
  if (inf !== undefined) {
    if (!inf || typeof inf !== 'object' || Array.isArray(inf) || Object.keys(inf).some((k) => k !== 'tta'))
      throw new ModelFolderError(`${where}: inference must be an object with at most "tta" (true or false), got ${JSON.stringify(inf)}`);
    if (inf.tta !== undefined && typeof inf.tta !== 'boolean') throw new ModelFolderError(`${where}: inference.tta must be true or false, got ${JSON.stringify(inf.tta)}`);
  }
  const labels = o.labels;
  if (!labels || typeof labels !== 'object' || Object.keys(labels).length < 2) throw new ModelFolderError(`${where}: labels must name the classes, background included`);
  return o as EnsembleManifest;
}

/** Members must read the same input and predict the same classes as the ensemble says. */
export function checkMembers(manifest: EnsembleManifest, members: LoadedModel[], where: string): void {
  const want = JSON.stringify(Object.entries(manifest.labels).sort(([a], [b]) => Number(a) - Number(b)));
  members.forEach((m, i) => {
    const path = manifest.members[i]!.path;
    const got = JSON.stringify(Object.entries(m.manifest.labels).sort(([a], [b]) => Number(a) - Number(b)));
    if (got !== want) throw new ModelFolderError(`${where}: member '${path}' has labels ${got}, the ensemble ${want}`);
    const c0 = manifestChannels(members[0]!.manifest).inChannels;
    if (manifestChannels(m.manifest).inChannels !== c0)
      throw new ModelFolderError(`${where}: member '${path}' reads ${manifestChannels(m.manifest).inChannels} input channel(s), member '${manifest.members[0]!.path}' ${c0}`);
    if (manifest.inference?.tta && !(m.manifest.inference.mirrorAxes ?? []).length)
      throw new ModelFolderError(`${where}: inference.tta is true but member '${path}' was not trained with flips (its inference.mirrorAxes is empty)`);
  });
}

/** A member's format must be a plain model (nested ensembles are refused). */
export function checkMemberFormat(json: unknown, where: string): void {
  const f = manifestFormat(json);
  if (f === ENSEMBLE_FORMAT) throw new ModelFolderError(`${where}: a member must be a model folder, not another ensemble`);
  if (f !== MODEL_FORMAT) throw new ModelFolderError(`${where}: format is ${JSON.stringify(f)}, expected "${MODEL_FORMAT}"`);
}

export function segmenterName(s: Segmenter): string {
  return s.manifest.name;
}

export function segmenterLabels(s: Segmenter): Record<string, string> {
  return s.manifest.labels;
}

export function segmenterParameters(s: Segmenter): number {
  return isEnsemble(s) ? s.members.reduce((a, m) => a + m.model.numParameters(), 0) : s.model.numParameters();
}

/** Whether prediction mirrors (TTA) when the caller does not say: the ensemble's inference.tta, else any member's own default. */
export function segmenterDefaultTta(s: Segmenter): boolean {
  if (!isEnsemble(s)) return !!s.manifest.inference.tta;
  return s.manifest.inference?.tta ?? s.members.some((m) => !!m.manifest.inference.tta);
}

export function disposeSegmenter(s: Segmenter): void {
  for (const m of isEnsemble(s) ? s.members : [s]) m.model.dispose();
}

/**
 * Segments one image with every member and averages their probabilities (see the file comment).
 * `probabilities` in the result are the averaged ones on the input grid.
 */
export async function predictEnsemble(ens: LoadedEnsemble, image: Volume<Float32Array>, given: PredictOptions = {}): Promise<Prediction> {
  // The caller's tta, else the ensemble's default, else (undefined) each member's own.
  const opts: PredictOptions = { ...given, tta: given.tta ?? ens.manifest.inference?.tta };
  const K = Object.keys(ens.manifest.labels).length;
  const M = ens.members.length;
  const c0 = manifestChannels(ens.members[0]!.manifest).inChannels;
  if (image.channels !== c0) throw new Error(`the image has ${image.channels} channel(s) but ensemble '${ens.manifest.name}' expects ${c0}`);
  const chains = ens.members.map((m) => preprocessingSteps(m, !!opts.fast));
  const shared = chains.every((c) => JSON.stringify(c) === JSON.stringify(chains[0]));
  const progressOf = (i: number) => (opts.onProgress ? (d: number, t: number) => opts.onProgress!(i * t + d, M * t) : undefined);
  if (shared) {
    const net = runSteps({ image }, chains[0]!).sample.image;
    let sum: Float32Array | null = null;
    for (const [i, m] of ens.members.entries()) {
      const p = await modelProbabilities(m, net, opts, progressOf(i));
      if (!sum) sum = p;
      else for (let j = 0; j < sum.length; j++) sum[j] = sum[j]! + p[j]!;
    }
    for (let j = 0; j < sum!.length; j++) sum![j] = sum![j]! / M;
    const labels = invert({ data: argmaxChannels(sum!, K), channels: 1 }, net, 'nearest');
    const probabilities = opts.probabilities ? invert({ data: sum!, channels: K }, net, 'bilinear') : undefined;
    return { labels, probabilities, networkShape: net.shape };
  }
  // Different grids: average on the input's own grid.
  let sum: Float32Array | null = null;
  let ref: Volume<VoxelData> | null = null;
  let networkShape: [number, number, number] = [0, 0, 0];
  for (const [i, m] of ens.members.entries()) {
    const net = runSteps({ image }, chains[i]!).sample.image;
    if (i === 0) networkShape = net.shape;
    const p = invert({ data: await modelProbabilities(m, net, opts, progressOf(i)), channels: K }, net, 'bilinear');
    const data = p.data as Float32Array;
    if (!sum) {
      sum = data;
      ref = p;
    } else for (let j = 0; j < sum.length; j++) sum[j] = sum[j]! + data[j]!;
  }
  for (let j = 0; j < sum!.length; j++) sum![j] = sum![j]! / M;
  const labels: Volume<VoxelData> = { ...ref!, data: argmaxChannels(sum!, K), channels: 1 };
  return { labels, probabilities: opts.probabilities ? { ...ref!, data: sum!, channels: K } : undefined, networkShape };
}

/** `uxnet predict`'s entry point for either kind of model folder. */
export function segmentVolume(s: Segmenter, image: Volume<Float32Array>, opts: PredictOptions = {}): Promise<Prediction> {
  return isEnsemble(s) ? predictEnsemble(s, image, opts) : predictVolume(s, image, opts);
}

/** Manifest-like view used by reports: labels and name for either kind. */
export type AnyManifest = ModelManifest | EnsembleManifest;
