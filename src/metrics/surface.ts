/**
 * Surface extraction and surface distances, following MONAI's `get_mask_edges` +
 * `get_surface_distance` (monai/metrics/utils.py, 0.9 .. 1.3, euclidean, no sub-voxel surfaces):
 *
 * - Surface ("edges") of a binary mask = mask XOR binary_erosion(mask), where scipy's
 *   binary_erosion uses the 6-neighbour (face) cross and border_value 0. So a foreground voxel is on
 *   the surface iff one of its 6 face neighbours is background **or lies outside the volume**:
 *   objects touching the volume border have a surface there.
 * - MONAI first crops both masks to the bounding box of (pred | gt). That never changes the edges
 *   (a voxel on the box boundary has its outside neighbour outside the union, hence background)
 *   nor the distances (all edge voxels lie inside the box), so we crop too, purely for speed.
 *   (MONAI's crop squeezes singleton box dimensions with np.squeeze; we do not replicate that quirk,
 *   which would turn a one-slice object into a 2-D problem.)
 * - Directed distances pred -> gt = EDT of (not gt-edges), with voxel spacing, sampled at the pred
 *   edge voxels: distances are between surface voxel centres.
 */
import { squaredEdt, type Spacing3 } from './edt.js';

export type Shape3 = readonly [number, number, number];

export interface Box3 {
  lo: [number, number, number];
  /** exclusive */
  hi: [number, number, number];
}

/** Surface voxels of a binary mask (6-neighbourhood, outside the array counts as background). */
export function maskEdges(mask: Uint8Array, shape: Shape3): Uint8Array {
  const [D, H, W] = shape;
  const HW = H * W;
  const edges = new Uint8Array(mask.length);
  for (let d = 0; d < D; d++) {
    for (let h = 0; h < H; h++) {
      const row = d * HW + h * W;
      for (let w = 0; w < W; w++) {
        const i = row + w;
        if (!mask[i]) continue;
        if (
          w === 0 ||
          w === W - 1 ||
          h === 0 ||
          h === H - 1 ||
          d === 0 ||
          d === D - 1 ||
          !mask[i - 1] ||
          !mask[i + 1] ||
          !mask[i - W] ||
          !mask[i + W] ||
          !mask[i - HW] ||
          !mask[i + HW]
        )
          edges[i] = 1;
      }
    }
  }
  return edges;
}

/** Distances (spacing units) from every `from` voxel to the nearest `to` voxel; Infinity when `to` is empty. */
export function directedDistances(from: Uint8Array, to: Uint8Array, shape: Shape3, spacing: Spacing3): Float64Array {
  let count = 0;
  for (let i = 0; i < from.length; i++) if (from[i]) count++;
  const out = new Float64Array(count);
  let any = false;
  for (let i = 0; i < to.length; i++)
    if (to[i]) {
      any = true;
      break;
    }
  if (!any) return out.fill(Infinity);
  const dt = squaredEdt(to, shape, spacing);
  let k = 0;
  for (let i = 0; i < from.length; i++) if (from[i]) out[k++] = Math.sqrt(dt[i]!);
  return out;
}

export interface SurfaceDistances {
  /** distance from each prediction surface voxel to the ground-truth surface */
  predToGt: Float64Array;
  /** distance from each ground-truth surface voxel to the prediction surface */
  gtToPred: Float64Array;
}

/**
 * Both directed surface-distance sets of two binary masks of the same shape, computed inside the
 * bounding box of their union (see the module comment for why that is exact). `box` may be passed
 * when the caller already knows it. Empty union -> two empty sets.
 */
export function surfaceDistances(pred: Uint8Array, gt: Uint8Array, shape: Shape3, spacing: Spacing3 = [1, 1, 1], box?: Box3): SurfaceDistances {
  const b = box ?? unionBox(pred, gt, shape);
  if (!b) return { predToGt: new Float64Array(0), gtToPred: new Float64Array(0) };
  const [cp, cg, cshape] = [crop(pred, shape, b), crop(gt, shape, b), boxShape(b)];
  const ep = maskEdges(cp, cshape);
  const eg = maskEdges(cg, cshape);
  return { predToGt: directedDistances(ep, eg, cshape, spacing), gtToPred: directedDistances(eg, ep, cshape, spacing) };
}

export function boxShape(b: Box3): [number, number, number] {
  return [b.hi[0] - b.lo[0], b.hi[1] - b.lo[1], b.hi[2] - b.lo[2]];
}

/** Bounding box of a | b, or null when both are empty. */
export function unionBox(a: Uint8Array, b: Uint8Array, shape: Shape3): Box3 | null {
  const [D, H, W] = shape;
  const lo: [number, number, number] = [D, H, W];
  const hi: [number, number, number] = [-1, -1, -1];
  let i = 0;
  for (let d = 0; d < D; d++)
    for (let h = 0; h < H; h++)
      for (let w = 0; w < W; w++, i++) {
        if (a[i] || b[i]) {
          if (d < lo[0]) lo[0] = d;
          if (d > hi[0]) hi[0] = d;
          if (h < lo[1]) lo[1] = h;
          if (h > hi[1]) hi[1] = h;
          if (w < lo[2]) lo[2] = w;
          if (w > hi[2]) hi[2] = w;
        }
      }
  if (hi[0] < 0) return null;
  return { lo, hi: [hi[0] + 1, hi[1] + 1, hi[2] + 1] };
}

/** Copies the box out of a [D,H,W] volume. */
export function crop(v: Uint8Array, shape: Shape3, b: Box3): Uint8Array {
  const [, H, W] = shape;
  const [cd, ch, cw] = boxShape(b);
  const out = new Uint8Array(cd * ch * cw);
  let p = 0;
  for (let d = 0; d < cd; d++)
    for (let h = 0; h < ch; h++, p += cw) {
      const src = ((b.lo[0] + d) * H + b.lo[1] + h) * W + b.lo[2];
      out.set(v.subarray(src, src + cw), p);
    }
  return out;
}

/**
 * numpy.percentile(values, p) with the default 'linear' method, reproducing numpy >= 1.22's
 * arithmetic (virtual index (n − 1)·q with q = p/100, and its two-sided lerp) bit for bit.
 * NaN for an empty set.
 */
export function percentile(values: ArrayLike<number>, p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be in [0, 100], got ${p}`);
  const n = values.length;
  if (n === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  const q = p / 100;
  const virtual = (n - 1) * q;
  const prev = Math.min(Math.max(Math.floor(virtual), 0), n - 1);
  const next = Math.min(prev + 1, n - 1);
  const t = virtual - Math.floor(virtual);
  const a = sorted[prev]!;
  const b = sorted[next]!;
  if (a === b) return a; // also keeps Infinity (inf − inf would be NaN)
  const diff = b - a;
  return t >= 0.5 ? b - diff * (1 - t) : a + diff * t;
}
