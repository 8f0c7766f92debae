import { mat4 } from '../io/nifti/mat4.js';
import { invertOrientation } from './transforms/orientation.js';
import { invertSpacing } from './transforms/spacing.js';
import { invertCrop, invertPad } from './transforms/croppad.js';
import { invertFlip, invertRotate90 } from './transforms/flip.js';
import type { InterpMode } from './transforms/resample.js';
import type { AppliedOp, Volume, VoxelData } from './volume.js';

/** Each transform owns its inverse beside its forward; this only dispatches on the recorded kind. */
export function invertStep(v: Volume<VoxelData>, op: AppliedOp, mode: InterpMode): Volume<VoxelData> {
  switch (op.kind) {
    case 'crop':
      return invertCrop(v, op);
    case 'pad':
      return invertPad(v, op);
    case 'orientation':
      return invertOrientation(v, op);
    case 'spacing':
      return invertSpacing(v, op, mode);
    case 'flip':
      return invertFlip(v, op);
    case 'rotate90':
      return invertRotate90(v, op);
    default: {
      // A new AppliedOp kind without a case here fails to compile.
      const unhandled: never = op;
      throw new Error(`invert: unknown step kind ${JSON.stringify((unhandled as { kind?: unknown }).kind)}`);
    }
  }
}

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
    v = invertStep(v, op, mode);
    if (v.shape.some((d, k) => d !== ('inShape' in op ? op.inShape[k] : v.shape[k]))) {
      throw new Error(`invert: step ${op.kind} did not restore shape ${'inShape' in op ? op.inShape.join('x') : '?'}`);
    }
  }
  const first = reference.ops[0];
  const affine = first && 'inAffine' in first ? mat4(first.inAffine) : v.affine;
  return { ...v, affine, gridAffine: affine, ops: [] };
}
