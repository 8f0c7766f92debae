import type { Mat4 } from '../io/nifti/mat4.js';
import type { NiftiHeader } from '../io/nifti/header.js';

/** Voxel storage of a volume: float32 for images and probabilities; labels may use an integer type. */
export type VoxelData = Float32Array | Float64Array | Uint8Array | Int8Array | Int16Array | Uint16Array | Int32Array | Uint32Array;

/**
 * A channel-first 3-D volume, laid out exactly as MONAI holds it after LoadImaged + AddChanneld:
 * C order over (C, X, Y, Z), where X, Y, Z are the NIfTI voxel axes i, j, k (no transpose on load)
 * and Z varies fastest. The network's N C D H W input is this array with D, H, W = i, j, k.
 *
 * `affine` follows MONAI 0.9.0's meta-data `affine`: voxel (i, j, k) -> world (mm, RAS+ scanner
 * space as NIfTI defines it). Like MONAI, crops and pads leave it alone (it then describes the grid
 * before the crop); `gridAffine` is always the true affine of this array's own grid.
 */
export interface Volume<T extends VoxelData = VoxelData> {
  data: T;
  channels: number;
  shape: [number, number, number];
  affine: Mat4;
  gridAffine: Mat4;
  /** Every spatial step applied since loading, oldest first; `invert` replays it backwards. */
  ops: AppliedOp[];
  /** The header of the file it came from, for writing results with the same geometry. */
  header?: NiftiHeader;
}

export type Vec3 = [number, number, number];
export type Rows4 = number[][];

/** What a deterministic spatial step did, in JSON-serialisable form (affines as 4x4 row lists). */
export type AppliedOp =
  | { kind: 'spacing'; inShape: Vec3; inAffine: Rows4; outShape: Vec3; outAffine: Rows4; pixdim: Vec3; resampled: boolean }
  | { kind: 'orientation'; inShape: Vec3; inAffine: Rows4; outAffine: Rows4; axcodes: string; ornt: [number, number][] }
  | { kind: 'crop'; inShape: Vec3; start: Vec3; end: Vec3 }
  | { kind: 'pad'; inShape: Vec3; before: Vec3; after: Vec3 }
  | { kind: 'flip'; axes: number[] }
  | { kind: 'rotate90'; inShape: Vec3; k: number; axes: [number, number] };

export function voxelCount(shape: readonly number[]): number {
  return shape[0]! * shape[1]! * shape[2]!;
}

export function sameKind<T extends VoxelData>(a: T, n: number): T {
  return new (a.constructor as new (n: number) => T)(n);
}

export function volume<T extends VoxelData>(data: T, shape: Vec3, affine: Mat4, channels = 1, header?: NiftiHeader): Volume<T> {
  if (data.length !== channels * voxelCount(shape)) {
    throw new Error(`volume data has ${data.length} values; ${channels} x ${shape.join('x')} needs ${channels * voxelCount(shape)}`);
  }
  return { data, channels, shape, affine, gridAffine: affine, ops: [], header };
}

export function withData<T extends VoxelData, U extends VoxelData>(v: Volume<T>, data: U, channels = v.channels): Volume<U> {
  return { ...v, data, channels, ops: v.ops };
}
