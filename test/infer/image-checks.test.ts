/** The checks every front end (CLI, library, demo, browser) runs on an image before the network. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkImage } from '../../src/infer/image-checks.js';
import { volume } from '../../src/data/volume.js';
import { InputError } from '../../src/engine/errors.js';

const eye = Float64Array.from([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
const img = (data: number[], shape: [number, number, number]) => volume(Float32Array.from(data), shape, eye);

describe('checkImage', () => {
  it('passes an ordinary volume through untouched, without warnings', () => {
    const v = img([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2]);
    const r = checkImage(v, 'a.nii');
    assert.equal(r.image, v);
    assert.deepEqual(r.warnings, []);
    assert.equal(r.nonFinite, 0);
  });

  it('refuses 2-D and 1-D images, naming the file and the shape', () => {
    assert.throws(
      () => checkImage(img([1, 2, 3, 4], [2, 2, 1]), 'slice.nii'),
      (e: unknown) => e instanceof InputError && e.message === 'slice.nii: a 2-D image (2x2x1); the network is 3-D and needs at least 2 voxels along every axis',
    );
    assert.throws(() => checkImage(img([1, 2, 3], [3, 1, 1]), 'line.nii'), /line\.nii: a 1-D image \(3x1x1\)/);
  });

  it('replaces NaN and ±Inf by the lowest finite value and says how many; no finite voxel is an error', () => {
    const r = checkImage(img([5, NaN, 3, Infinity, 9, -Infinity, 4, 7], [2, 2, 2]), 'holes.nii');
    assert.deepEqual(Array.from(r.image.data), [5, 3, 3, 3, 9, 3, 4, 7]);
    assert.equal(r.nonFinite, 3);
    assert.deepEqual(r.warnings, ['holes.nii: 3 of 8 voxels are NaN or infinite; they were set to the lowest finite value (3)']);
    assert.throws(() => checkImage(img(new Array(8).fill(NaN), [2, 2, 2]), 'nan.nii'), /nan\.nii: no voxel is finite \(all 8 are NaN or infinite\)/);
  });

  it('warns about a constant image', () => {
    const r = checkImage(img(new Array(8).fill(0), [2, 2, 2]), 'blank.nii');
    assert.deepEqual(r.warnings, ['blank.nii: every voxel has the value 0 (a blank image); any labels found in it are meaningless']);
  });
});
