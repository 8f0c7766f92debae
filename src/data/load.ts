import { NiftiError, readNiftiFile } from '../io/nifti/index.js';
import { niftiToVolume } from './nifti-volume.js';
import type { Volume, VoxelData } from './volume.js';

// The conversion itself is in ./nifti-volume.ts (browser-safe); this module reads files.
export { VolumeError, pipelineShape, niftiToVolume } from './nifti-volume.js';

export async function loadVolume(path: string, kind: 'image' | 'label' = 'image'): Promise<Volume<VoxelData>> {
  return niftiToVolume(await readNiftiFile(path), kind);
}

export async function loadImage(path: string): Promise<Volume<Float32Array>> {
  return (await loadVolume(path, 'image')) as Volume<Float32Array>;
}

export { NiftiError };
