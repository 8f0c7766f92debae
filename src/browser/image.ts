/** Reading the user's NIfTI image in the browser (page and worker): gzip or not, the content decides. */
import { parseNiftiAsync } from '../io/nifti/parse.js';
import { gunzip } from '../io/web-compression.js';
import { niftiToVolume } from '../data/nifti-volume.js';
import type { Volume } from '../data/volume.js';
import { InputError } from './errors.js';

/** The pipeline's float32 volume of a NIfTI file's bytes; NiftiError/VolumeError/InputError say what is wrong. */
export async function readImage(bytes: Uint8Array, name: string): Promise<Volume<Float32Array>> {
  if (bytes.byteLength === 0) throw new InputError(`${name}: the file is empty`);
  const img = await parseNiftiAsync(bytes, gunzip, name);
  return niftiToVolume(img, 'image') as Volume<Float32Array>;
}
