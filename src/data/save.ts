import { compactLabelArray, writeNiftiFile } from '../io/nifti/index.js';
import type { Mat4 } from './mat4.js';
import type { Volume, VoxelData } from './volume.js';

/**
 * Writes a volume as NIfTI with C order over (x, y, z[, c]) as nibabel holds it. Multi-channel
 * volumes get the channels as the 4th axis. `affine` defaults to the volume's own meta affine.
 */
export async function saveVolume(path: string, v: Volume<VoxelData>, opts: { label?: boolean; affine?: Mat4; description?: string } = {}): Promise<void> {
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
  await writeNiftiFile(path, { data, shape, affine: opts.affine ?? v.affine, source: v.header, description: opts.description });
}
