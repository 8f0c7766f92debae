/**
 * NIfTI image <-> pipeline Volume, on bytes already parsed (no files): shared by the Node loaders
 * (./load.ts, ./save.ts) and the browser app, so both read and write volumes identically.
 */
import { decodeFloat32, type NiftiImage } from '../io/nifti/parse.js';
import { compactLabelArray, type NiftiWriteInput } from '../io/nifti/encode.js';
import type { Mat4 } from '../io/nifti/mat4.js';
import { volume, type Vec3, type Volume, type VoxelData } from './volume.js';
import { InputError } from '../engine/errors.js';

export class VolumeError extends InputError {
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

export interface VolumeWriteOptions {
  /** Store as the smallest exact integer type (label maps). */
  label?: boolean;
  /** Defaults to the volume's own meta affine. */
  affine?: Mat4;
  description?: string;
}

/**
 * What to encode for a volume: C order over (x, y, z[, c]) as nibabel holds it, multi-channel
 * volumes with the channels as the 4th axis, and the source header so the geometry is carried over.
 */
export function volumeToNifti(v: Volume<VoxelData>, opts: VolumeWriteOptions = {}): NiftiWriteInput {
  const n = v.shape[0] * v.shape[1] * v.shape[2];
  let data: VoxelData = v.data;
  if (v.channels > 1) {
    // Channel-first -> channels-last, the NIfTI 4-D convention.
    const out = new (v.data.constructor as new (n: number) => VoxelData)(v.data.length);
    for (let c = 0; c < v.channels; c++) for (let i = 0; i < n; i++) out[i * v.channels + c] = v.data[c * n + i]!;
    data = out;
  }
  if (opts.label) data = compactLabelArray(data);
  const shape = v.channels > 1 ? [...v.shape, v.channels] : [...v.shape];
  return { data, shape, affine: opts.affine ?? v.affine, source: v.header, description: opts.description };
}
