import { compactLabelArray, decodeFloat32, NiftiError, readNiftiFile, type NiftiImage } from '../io/nifti/index.js';
import { volume, type Vec3, type Volume, type VoxelData } from './volume.js';

export class VolumeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VolumeError';
  }
}

/**
 * Spatial shape and channel count of a NIfTI image for the pipeline: 1-D/2-D images get singleton
 * axes, a 4th axis becomes channels (a trailing singleton is simply one channel; MONAI 0.9.0 keeps it
 * as a 4th spatial axis and then fails in Orientationd), and 5-D+ is refused.
 */
export function pipelineShape(img: NiftiImage): { shape: Vec3; channels: number } {
  const s = img.shape;
  if (s.length > 4 && s.slice(4).some((d) => d !== 1)) {
    throw new VolumeError(`${img.file ?? 'image'}: ${s.length}-D image (${s.join('x')}) is not supported; expected 3-D, or 4-D with channels last`);
  }
  return { shape: [s[0]!, s[1] ?? 1, s[2] ?? 1], channels: s[3] ?? 1 };
}

/** Turns a parsed NIfTI into a Volume with MONAI LoadImage's float32 values and meta affine. */
export function niftiToVolume(img: NiftiImage, kind: 'image' | 'label' = 'image'): Volume<VoxelData> {
  const { shape, channels } = pipelineShape(img);
  const values = decodeFloat32(img, { channelFirst: true });
  // Labels are held in the smallest exact integer type: a quarter of the memory of MONAI's float32.
  const data: VoxelData = kind === 'label' ? compactLabelArray(values) : values;
  return volume(data, shape, Float64Array.from(img.monaiAffine), channels, img.header);
}

export async function loadVolume(path: string, kind: 'image' | 'label' = 'image'): Promise<Volume<VoxelData>> {
  return niftiToVolume(await readNiftiFile(path), kind);
}

export async function loadImage(path: string): Promise<Volume<Float32Array>> {
  return (await loadVolume(path, 'image')) as Volume<Float32Array>;
}

export { NiftiError };
