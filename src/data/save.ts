import { writeNiftiFile } from '../io/nifti/index.js';
import { volumeToNifti, type VolumeWriteOptions } from './nifti-volume.js';
import type { Volume, VoxelData } from './volume.js';

/**
 * Writes a volume as NIfTI with C order over (x, y, z[, c]) as nibabel holds it. Multi-channel
 * volumes get the channels as the 4th axis. `affine` defaults to the volume's own meta affine.
 */
export async function saveVolume(path: string, v: Volume<VoxelData>, opts: VolumeWriteOptions = {}): Promise<void> {
  await writeNiftiFile(path, volumeToNifti(v, opts));
}
