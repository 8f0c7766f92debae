/**
 * Per-case, per-class segmentation metrics on integer label maps: Dice, HD95 and normalised surface
 * Dice (NSD), spacing-aware. Semantics follow MONAI (compute_meandice / compute_hausdorff_distance
 * with percentile=95 / compute_surface_dice, euclidean, no sub-voxel surfaces); surfaces and
 * distances are defined in ./surface.ts.
 *
 * Empty-mask conventions (chosen here; MONAI's defaults differ in places, noted):
 * - Both pred and gt empty for a class: Dice, HD95, NSD are all NaN, and NaN is excluded from means
 *   (nnU-Net does the same for Dice; MONAI DiceMetric with ignore_empty=True gives NaN whenever gt
 *   is empty, even if pred is not, and 1.0 with ignore_empty=False).
 * - Exactly one empty: Dice 0, HD95 = Infinity, NSD 0. (MONAI's get_surface_distance gives inf
 *   distances in both directions there too, so HD95 is inf and NSD 0; its Dice gives NaN when only
 *   gt is empty, under ignore_empty=True.) Infinity is written as null in JSON.
 * - HD95 = max of the two directed 95th percentiles (numpy 'linear' interpolation), MONAI style;
 *   not the 95th percentile of the pooled distances.
 * - NSD (Nikolov et al. / MONAI compute_surface_dice): (#pred-surface voxels within tol of gt
 *   surface + #gt-surface voxels within tol of pred surface) / (#pred + #gt surface voxels), with
 *   tolerance `tol` in the spacing unit (mm) and `distance <= tol` counting as within.
 */
import type { Spacing3 } from './edt.js';
import { boxShape, maskEdges, directedDistances, percentile, type Box3, type Shape3 } from './surface.js';

export type LabelArray = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array;

export interface SegmentationMetricOptions {
  /** Label ids to evaluate, e.g. [1, 2] (background 0 usually left out). */
  classes: readonly number[];
  /** Voxel spacing along D, H, W (mm). Default [1, 1, 1]. */
  spacing?: Spacing3;
  /** NSD tolerance in mm: one value for all classes or one per entry of `classes`. Default 1. */
  nsdTolerance?: number | readonly number[];
  /** Percentile for the Hausdorff distance (default 95; the field is still called hd95). */
  percentile?: number;
}

export interface ClassMetrics {
  label: number;
  dice: number;
  /** Infinity when exactly one of pred/gt is empty; NaN when both are. */
  hd95: number;
  nsd: number;
  predVoxels: number;
  gtVoxels: number;
}

function checkShape(shape: Shape3, pred: LabelArray, gt: LabelArray): void {
  if (shape.length !== 3 || !shape.every((s) => Number.isInteger(s) && s > 0)) throw new RangeError(`shape must be 3 positive integers, got ${JSON.stringify(shape)}`);
  const n = shape[0] * shape[1] * shape[2];
  if (pred.length !== n || gt.length !== n) throw new RangeError(`pred (${pred.length}) and gt (${gt.length}) must both have ${shape.join('x')} = ${n} voxels`);
}

/** Dice from counts: 2|A∩B| / (|A|+|B|), NaN when both are empty. */
export function diceFromCounts(intersection: number, predCount: number, gtCount: number): number {
  const den = predCount + gtCount;
  return den === 0 ? NaN : (2 * intersection) / den;
}

/** HD (percentile) and NSD of two binary masks already cropped to the box of their union. */
function surfaceMetrics(predMask: Uint8Array, gtMask: Uint8Array, shape: Shape3, spacing: Spacing3, pct: number, tol: number): { hd: number; nsd: number } {
  const ep = maskEdges(predMask, shape);
  const eg = maskEdges(gtMask, shape);
  const pg = directedDistances(ep, eg, shape, spacing);
  const gp = directedDistances(eg, ep, shape, spacing);
  const hd = Math.max(percentile(pg, pct), percentile(gp, pct));
  let within = 0;
  for (const d of pg) if (d <= tol) within++;
  for (const d of gp) if (d <= tol) within++;
  return { hd, nsd: within / (pg.length + gp.length) };
}

/**
 * Dice, HD95 and NSD for each requested class of one case. pred and gt are label maps of `shape`
 * ([D, H, W], C order) holding class ids (float label maps are compared with ===, so they must hold
 * exact integers, as MONAI's LoadImaged float32 labels do).
 */
export function computeSegmentationMetrics(pred: LabelArray, gt: LabelArray, shape: Shape3, opts: SegmentationMetricOptions): ClassMetrics[] {
  checkShape(shape, pred, gt);
  const spacing = opts.spacing ?? [1, 1, 1];
  if (spacing.length !== 3 || !spacing.every((s) => s > 0 && Number.isFinite(s))) throw new RangeError(`spacing must be 3 positive numbers, got ${JSON.stringify(spacing)}`);
  const pct = opts.percentile ?? 95;
  const classes = [...opts.classes];
  if (new Set(classes).size !== classes.length) throw new RangeError(`duplicate class in ${JSON.stringify(classes)}`);
  const tols = typeof (opts.nsdTolerance ?? 1) === 'number' ? classes.map(() => (opts.nsdTolerance ?? 1) as number) : [...(opts.nsdTolerance as readonly number[])];
  if (tols.length !== classes.length || !tols.every((t) => t >= 0)) throw new RangeError(`nsdTolerance must be one non-negative value or one per class (${classes.length})`);

  // One pass over the volume: counts and the union bounding box per class.
  const nc = classes.length;
  const index = new Map<number, number>();
  classes.forEach((c, i) => index.set(c, i));
  const inter = new Float64Array(nc);
  const pc = new Float64Array(nc);
  const gc = new Float64Array(nc);
  const lo = Array.from({ length: nc }, () => [Infinity, Infinity, Infinity] as [number, number, number]);
  const hi = Array.from({ length: nc }, () => [-1, -1, -1] as [number, number, number]);
  const [D, H, W] = shape;
  const grow = (k: number, d: number, h: number, w: number) => {
    const l = lo[k]!,
      u = hi[k]!;
    if (d < l[0]) l[0] = d;
    if (d > u[0]) u[0] = d;
    if (h < l[1]) l[1] = h;
    if (h > u[1]) u[1] = h;
    if (w < l[2]) l[2] = w;
    if (w > u[2]) u[2] = w;
  };
  let i = 0;
  for (let d = 0; d < D; d++)
    for (let h = 0; h < H; h++)
      for (let w = 0; w < W; w++, i++) {
        const p = pred[i]!;
        const g = gt[i]!;
        const kp = index.get(p);
        const kg = p === g ? kp : index.get(g);
        if (kp !== undefined) {
          pc[kp]++;
          grow(kp, d, h, w);
        }
        if (kg !== undefined) {
          gc[kg]++;
          if (kg !== kp) grow(kg, d, h, w);
          else inter[kg]++;
        }
      }

  return classes.map((label, k) => {
    const base = { label, predVoxels: pc[k]!, gtVoxels: gc[k]! };
    const dice = diceFromCounts(inter[k]!, pc[k]!, gc[k]!);
    if (pc[k] === 0 && gc[k] === 0) return { ...base, dice: NaN, hd95: NaN, nsd: NaN };
    if (pc[k] === 0 || gc[k] === 0) return { ...base, dice: 0, hd95: Infinity, nsd: 0 };
    const box: Box3 = { lo: lo[k]!, hi: [hi[k]![0] + 1, hi[k]![1] + 1, hi[k]![2] + 1] };
    const pm = binaryMask(pred, label, shape, box);
    const gm = binaryMask(gt, label, shape, box);
    const { hd, nsd } = surfaceMetrics(pm, gm, boxShape(box), spacing, pct, tols[k]!);
    return { ...base, dice, hd95: hd, nsd };
  });
}

/** (labels === label) inside the box, as a cropped 0/1 mask. */
function binaryMask(labels: LabelArray, label: number, shape: Shape3, box: Box3): Uint8Array {
  const [, H, W] = shape;
  const [cd, ch, cw] = boxShape(box);
  const out = new Uint8Array(cd * ch * cw);
  let p = 0;
  for (let d = 0; d < cd; d++)
    for (let h = 0; h < ch; h++) {
      const src = ((box.lo[0] + d) * H + box.lo[1] + h) * W + box.lo[2];
      for (let w = 0; w < cw; w++, p++) if (labels[src + w] === label) out[p] = 1;
    }
  return out;
}
