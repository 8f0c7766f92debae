import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, get, maxAbsDiff, relL2 } from './fixtures.js';

/** The SwinUNETR/UNETR fixtures' folder inside test/fixtures, and their per-tensor tolerances (README "Tolerances"). */
export const BASELINES = 'baselines/';
interface Tol {
  kind: string;
  tol?: string;
  tol_abs?: number;
  tol_rel_l2?: number;
}
let tolerances: { files: Record<string, Record<string, Tol>> } | null = null;

function tol(file: string, name: string): Tol {
  tolerances ??= JSON.parse(readFileSync(join(FIXTURES, BASELINES, 'baseline_tolerances.json'), 'utf8'));
  const t = tolerances!.files[file]?.[name];
  if (!t) throw new Error(`no tolerance for ${file}:${name}`);
  return t;
}

/** Exact tensors bit for bit, forward tensors elementwise within tol_abs. Returns a failure line or null. */
export function checkForward(ours: ArrayLike<number>, file: string, name: string): string | null {
  const ref = get(BASELINES + file, name).data;
  if (ours.length !== ref.length) return `${name}: ${ours.length} values, expected ${ref.length}`;
  const t = tol(file, name);
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
