import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tensor, type Tensor } from '../../src/engine/index.js';
import type { RawTensorMap } from '../../src/io/safetensors.js';
import { readWeightsFile } from '../../src/io/weights.js';
import { FIXTURES, fixture, get, maxAbsDiff, relL2 } from './fixtures.js';

/** The baseline networks' fixtures' folder inside test/fixtures, and their per-tensor tolerances (README "Tolerances"). */
export const BASELINES = 'baselines/';
interface Tol {
  kind: string;
  tol?: string;
  tol_abs?: number;
  tol_rel_l2?: number;
}
/** SwinUNETR/UNETR and nnFormer/TransBTS tolerances come in two files; their fixture file names are distinct. */
const TOLERANCE_FILES = ['baseline_tolerances.json', 'baseline_tolerances_nnformer_transbts.json'];
let tolerances: Record<string, Record<string, Tol>> | null = null;

function tol(file: string, name: string): Tol {
  tolerances ??= Object.assign({}, ...TOLERANCE_FILES.map((f) => JSON.parse(readFileSync(join(FIXTURES, BASELINES, f), 'utf8')).files));
  const t = tolerances![file]?.[name];
  if (!t) throw new Error(`no tolerance for ${file}:${name}`);
  return t;
}

/** A fixture tensor of the baseline folder as an engine tensor (on the current backend). */
export function baselineInput(file: string, name: string): Tensor {
  const t = get(BASELINES + file, name);
  return tensor(t.data, t.shape);
}

const weightsCache = new Map<string, Promise<RawTensorMap>>();
/** A baseline state dict, read once per process (.pth through our importer, .safetensors directly). */
export function baselineWeights(file: string): Promise<RawTensorMap> {
  let w = weightsCache.get(file);
  if (!w) weightsCache.set(file, (w = file.endsWith('.pth') ? readWeightsFile(join(FIXTURES, BASELINES, file)) : Promise.resolve(fixture(BASELINES + file))));
  return w;
}

/**
 * Exact tensors bit for bit, forward tensors elementwise within tol_abs. Returns a failure line or null.
 * `refName`: the fixture tensor (and tolerance) to compare with, when it is stored under another name.
 */
export function checkForward(ours: ArrayLike<number>, file: string, name: string, refName = name): string | null {
  const ref = get(BASELINES + file, refName).data;
  if (ours.length !== ref.length) return `${name}: ${ours.length} values, expected ${ref.length}`;
  const t = tol(file, refName);
  const d = maxAbsDiff(ours, ref);
  const limit = t.tol === 'exact' ? 0 : t.tol_abs!;
  return d <= limit ? null : `${name}: max |Δ| ${d.toExponential(3)} > ${limit.toExponential(3)}`;
}

/** Gradients: rel-L2 ≤ tol_rel_l2, or elementwise ≤ tol_abs (gradients that are mathematically ≈ 0). */
export function checkGrad(ours: ArrayLike<number>, file: string, name: string): string | null {
  const ref = get(BASELINES + file, name).data;
  const t = tol(file, name);
  const r = relL2(ours, ref);
  if (r <= t.tol_rel_l2!) return null;
  const d = maxAbsDiff(ours, ref);
  return d <= t.tol_abs! ? null : `${name}: rel-L2 ${r.toExponential(2)} > ${t.tol_rel_l2!.toExponential(2)} and max |Δ| ${d.toExponential(2)} > ${t.tol_abs!.toExponential(2)}`;
}
