/**
 * What an image must be before it reaches the network, checked once for every front end (CLI,
 * library, demo, browser): the network is 3-D, so a 2-D image is refused rather than segmented as a
 * one-slice volume; non-finite voxels would turn the z-score (and so every prediction) into NaN, so
 * they are counted, replaced and reported; a constant image is segmented but flagged, since any
 * labels found in it are meaningless. Browser-safe (no node:*).
 */
import { InputError } from '../engine/errors.js';
import { withData, type Volume } from '../data/volume.js';

export interface CheckedImage {
  /** The image to segment: the input itself, or a copy with non-finite voxels replaced. */
  image: Volume<Float32Array>;
  /** Sentences for the user (already prefixed with `name`). */
  warnings: string[];
  /** How many voxels were NaN or ±Inf. */
  nonFinite: number;
}

export function checkImage(image: Volume<Float32Array>, name: string): CheckedImage {
  const shape = image.shape;
  if (shape.some((d) => d < 2)) {
    const dims = shape.filter((d) => d > 1).length;
    throw new InputError(`${name}: a ${dims}-D image (${shape.join('x')}); the network is 3-D and needs at least 2 voxels along every axis`);
  }
  const a = image.data;
  let nonFinite = 0;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < a.length; i++) {
    const v = a[i]!;
    if (!Number.isFinite(v)) nonFinite++;
    else {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (nonFinite === a.length) throw new InputError(`${name}: no voxel is finite (all ${a.length} are NaN or infinite)`);
  const warnings: string[] = [];
  let out = image;
  if (nonFinite) {
    // The lowest finite value stands for "nothing here" in both CT (air) and MRI (background).
    const data = a.slice();
    for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i]!)) data[i] = lo;
    out = withData(image, data);
    warnings.push(`${name}: ${nonFinite} of ${a.length} voxels are NaN or infinite; they were set to the lowest finite value (${lo})`);
  }
  if (lo === hi) warnings.push(`${name}: every voxel has the value ${lo} (a blank image); any labels found in it are meaningless`);
  return { image: out, warnings, nonFinite };
}
