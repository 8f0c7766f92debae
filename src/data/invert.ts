import { columnNorms, mat4 } from './mat4.js';
import { axcodesOf, orientation } from './transforms/orientation.js';
import { spacing } from './transforms/spacing.js';
import { crop, padArray } from './transforms/croppad.js';
import { flip, rotate90 } from './transforms/flip.js';
import type { InterpMode } from './transforms/resample.js';
import type { Volume, VoxelData } from './volume.js';

/**
 * Maps a prediction made on a transformed volume back onto the original image grid by undoing the
 * reference volume's recorded steps in reverse, as MONAI's Invertd does: crops are zero-padded back
 * (everything outside the box is 0, so probabilities there argmax to class 0), pads are cropped,
 * orientation is undone exactly, and Spacing is inverted by resampling to the original voxel size
 * with the original shape forced. `mode` is 'nearest' for label maps and 'bilinear' for class
 * probabilities (MONAI's official post-processing).
 *
 * The result carries the original affine and header, so writing it gives a file that overlays the
 * input exactly. `pred` must have the reference's final spatial shape; any channel count is fine.
 */
export function invert<T extends VoxelData>(pred: { data: T; channels: number }, reference: Volume, mode: InterpMode): Volume<VoxelData> {
  const n = reference.shape[0] * reference.shape[1] * reference.shape[2];
  if (pred.data.length !== pred.channels * n) {
    throw new Error(`prediction has ${pred.data.length} values; ${pred.channels} channel(s) on the transformed grid ${reference.shape.join('x')} need ${pred.channels * n}`);
  }
  let v: Volume<VoxelData> = { ...reference, data: pred.data, channels: pred.channels, ops: [] };
  for (let i = reference.ops.length - 1; i >= 0; i--) {
    const op = reference.ops[i]!;
    switch (op.kind) {
      case 'crop':
        v = { ...v, data: padArray(v.data, v.channels, v.shape, op.start, op.inShape), shape: op.inShape };
        break;
      case 'pad': {
        const end = [op.before[0] + op.inShape[0], op.before[1] + op.inShape[1], op.before[2] + op.inShape[2]] as typeof op.inShape;
        v = crop(v, op.before, end);
        break;
      }
      case 'orientation':
        v = orientation({ ...v, affine: mat4(op.outAffine) }, axcodesOf(mat4(op.inAffine)));
        break;
      case 'spacing':
        v = op.resampled
          ? spacing({ ...v, affine: mat4(op.outAffine) }, columnNorms(mat4(op.inAffine)), mode, op.inShape)
          : { ...v, shape: op.inShape };
        break;
      case 'flip':
        v = flip(v, op.axes);
        break;
      case 'rotate90':
        v = rotate90(v, -op.k, op.axes);
        break;
    }
    if (v.shape.some((d, k) => d !== ('inShape' in op ? op.inShape[k] : v.shape[k]))) {
      throw new Error(`invert: step ${op.kind} did not restore shape ${'inShape' in op ? op.inShape.join('x') : '?'}`);
    }
  }
  const first = reference.ops[0];
  const affine = first && 'inAffine' in first ? mat4(first.inAffine) : v.affine;
  return { ...v, affine, gridAffine: affine, ops: [] };
}
