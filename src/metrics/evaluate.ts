/**
 * Scoring predicted label maps against ground truth, as `uxnet evaluate` does: list and pair the
 * files, check shapes from the headers alone, then one pass computing Dice / HD95 / NSD per case and
 * class with the ground truth's voxel spacing.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { loadVolume, VolumeError } from '../data/load.js';
import type { VoxelData } from '../data/volume.js';
import { headerShape, NiftiError, readNiftiHeaderFile, voxelSpacing } from '../io/nifti/index.js';
import { computeSegmentationMetrics, type ClassMetrics } from './segmentation.js';
import type { Spacing3 } from './edt.js';

/** Something about the inputs the user must fix (names the path or case). */
export class EvaluationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EvaluationError';
  }
}

const NIFTI_SUFFIX = /\.nii(\.gz)?$/i;
/** `uxnet predict --probabilities` writes these next to the labels: they are not label maps. */
const PROBABILITIES = /_probabilities\.nii(\.gz)?$/i;

/** The NIfTI label maps of one side: a folder's files, or a single file. */
export interface LabelFiles {
  dir: string;
  /** case id -> file name in `dir`. */
  cases: Map<string, string>;
  single: boolean;
}

export const caseId = (name: string) => name.replace(NIFTI_SUFFIX, '');

/** Lists `path` (a folder, or one NIfTI file); `*_probabilities` files are skipped, two files of one case refused. */
export async function listLabelFiles(path: string, what: string): Promise<LabelFiles> {
  let isFile = false;
  try {
    isFile = (await stat(path)).isFile();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new EvaluationError(`cannot read ${what} '${path}': ${code === 'ENOENT' ? 'no such file or directory' : (code ?? (e as Error).message)}`);
  }
  if (isFile) {
    if (!NIFTI_SUFFIX.test(path)) throw new EvaluationError(`${what} '${path}' is not a .nii or .nii.gz file`);
    return { dir: dirname(path), cases: new Map([[caseId(basename(path)), basename(path)]]), single: true };
  }
  let names: string[];
  try {
    names = (await readdir(path, { withFileTypes: true })).filter((d) => d.isFile() || d.isSymbolicLink()).map((d) => d.name);
  } catch (e) {
    throw new EvaluationError(`cannot read ${what} directory '${path}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const cases = new Map<string, string>();
  for (const name of names.sort()) {
    if (!NIFTI_SUFFIX.test(name) || PROBABILITIES.test(name)) continue;
    const id = caseId(name);
    const prev = cases.get(id);
    if (prev !== undefined) throw new EvaluationError(`${what} directory '${path}' holds two files for case '${id}' ('${prev}' and '${name}'); keep one`);
    cases.set(id, name);
  }
  return { dir: path, cases, single: false };
}

export interface CasePair {
  id: string;
  pred: string;
  gt: string;
}

/** Pairs by case id; two single files pair whatever their names (the case takes the ground truth's). */
export function pairCases(pred: LabelFiles, gt: LabelFiles): { pairs: CasePair[]; missingInPred: string[]; missingInGt: string[] } {
  const at = (side: LabelFiles, id: string) => `${side.dir}/${side.cases.get(id)}`;
  if (pred.single && gt.single) {
    const [pid] = pred.cases.keys();
    const [gid] = gt.cases.keys();
    return { pairs: [{ id: gid!, pred: at(pred, pid!), gt: at(gt, gid!) }], missingInPred: [], missingInGt: [] };
  }
  const ids = [...gt.cases.keys()];
  return {
    pairs: ids.filter((id) => pred.cases.has(id)).map((id) => ({ id, pred: at(pred, id), gt: at(gt, id) })),
    missingInPred: ids.filter((id) => !pred.cases.has(id)),
    missingInGt: [...pred.cases.keys()].filter((id) => !gt.cases.has(id)),
  };
}

const inCase =
  (id: string, side: string) =>
  (e: unknown): never => {
    if (e instanceof NiftiError || e instanceof VolumeError) throw new EvaluationError(`case '${id}' ${side}: ${e.message}`);
    throw e;
  };

/** Refuses pairs that are not 3-D or differ in shape, reading headers only; names every mismatched case. */
export async function checkPairShapes(pairs: CasePair[]): Promise<string[]> {
  const mismatched: string[] = [];
  for (const p of pairs) {
    const ps = headerShape(await readNiftiHeaderFile(p.pred).catch(inCase(p.id, 'prediction')));
    const gs = headerShape(await readNiftiHeaderFile(p.gt).catch(inCase(p.id, 'ground truth')));
    if (gs.length > 3) throw new EvaluationError(`case '${p.id}': ground truth '${basename(p.gt)}' is ${gs.join('x')}; a label map is 3-D`);
    if (ps.length > 3)
      throw new EvaluationError(`case '${p.id}': prediction '${basename(p.pred)}' is ${ps.join('x')}; a label map is 3-D (write argmax labels, not probabilities)`);
    if (ps.join('x') !== gs.join('x')) mismatched.push(`'${p.id}' (prediction ${ps.join('x')}, ground truth ${gs.join('x')})`);
  }
  return mismatched;
}

/** Sorted labels > 0 present in a label map. */
export function labelsOf(data: VoxelData): number[] {
  const seen = new Set<number>();
  let last = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v !== last) {
      last = v;
      if (v > 0) seen.add(v);
    }
  }
  return [...seen].sort((a, b) => a - b);
}

export interface ScoredCase {
  id: string;
  spacing: Spacing3;
  shape: number[];
  metrics: Map<number, ClassMetrics>;
  gtLabels: number[];
}

/**
 * One case's metrics for `classes` (default: the labels either side holds), with the spacing of the
 * ground truth's header: the same place `demo` takes it from.
 */
export async function scorePair(p: CasePair, opts: { classes?: number[]; tolerance: (label: number) => number }): Promise<ScoredCase> {
  const gt = await loadVolume(p.gt, 'label').catch(inCase(p.id, 'ground truth'));
  const pred = await loadVolume(p.pred, 'label').catch(inCase(p.id, 'prediction'));
  if (pred.data instanceof Float32Array) {
    throw new EvaluationError(`case '${p.id}': prediction '${basename(p.pred)}' holds non-integer values; evaluate expects label maps (argmax of the logits), not probabilities`);
  }
  if (pred.shape.join('x') !== gt.shape.join('x'))
    throw new EvaluationError(`case '${p.id}': prediction ${pred.shape.join('x')} and ground truth ${gt.shape.join('x')} differ in shape`);
  const spacing = voxelSpacing(gt.header!);
  const gtLabels = labelsOf(gt.data);
  const labels = opts.classes ?? [...new Set([...gtLabels, ...labelsOf(pred.data)])].sort((a, b) => a - b);
  const metrics = new Map<number, ClassMetrics>();
  if (labels.length) {
    for (const r of computeSegmentationMetrics(pred.data, gt.data, gt.shape, { classes: labels, spacing, nsdTolerance: labels.map(opts.tolerance) })) metrics.set(r.label, r);
  }
  return { id: p.id, spacing, shape: [...gt.shape], metrics, gtLabels };
}

/**
 * Label names from JSON: {"1": "liver"}, ["background", "liver"] (index = label), nnU-Net v2
 * {"background": 0, "liver": 1}, or any of these under a "labels" key (MSD / nnU-Net dataset.json,
 * a uxnet3d model.json).
 */
export async function readLabelNames(path: string): Promise<Map<number, string>> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new EvaluationError(code ? `cannot read labels file '${path}': ${code}` : `labels file '${path}' is not valid JSON: ${(e as Error).message}`);
  }
  if (raw && typeof raw === 'object' && !Array.isArray(raw) && 'labels' in raw) raw = (raw as { labels: unknown }).labels;
  const names = new Map<number, string>();
  const bad = () => new EvaluationError(`labels file '${path}': expected {"1": "name", ...}, ["background", "name", ...] or {"name": 1, ...} (optionally under "labels")`);
  if (Array.isArray(raw)) {
    raw.forEach((n, i) => {
      if (typeof n !== 'string') throw bad();
      names.set(i, n);
    });
  } else if (raw && typeof raw === 'object') {
    for (const [k, v] of Object.entries(raw)) {
      if (typeof v === 'string' && /^\d+$/.test(k)) names.set(Number(k), v);
      else if (typeof v === 'number' && Number.isInteger(v) && v >= 0) names.set(v, k);
      else throw bad();
    }
  } else {
    throw bad();
  }
  return names;
}
