/**
 * The library API for the main job: `loadModel(dir).segment(pathOrBytes, opts)` is what `uxnet
 * predict` runs, so a script gets the CLI's labels byte for byte; bytes and paths give the same
 * result; options reach the prediction (probabilities, TTA) and impossible ones are InputErrors.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel, InputError, initWebGPU, slidingWindowInference, type SegmentationModel } from '../../src/index.js';
import { writeNiftiFile, parseNifti, decodeRaw } from '../../src/io/nifti/index.js';
import { mat4 } from '../../src/io/nifti/mat4.js';
import { writeTinyModelFolder } from '../helpers/tiny-model.js';
import { uxnet } from '../helpers/cli.js';

describe('library segment API', () => {
  let dir: string;
  let model: SegmentationModel;
  let img: string;
  const S: [number, number, number] = [20, 22, 18];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'uxnet-segment-'));
    await writeTinyModelFolder(join(dir, 'model'));
    const a = new Float32Array(S[0] * S[1] * S[2]);
    for (let i = 0; i < a.length; i++) a[i] = Math.sin(i * 0.37) * 50 + 100 + (i % 97);
    img = join(dir, 'img.nii.gz');
    await writeNiftiFile(img, {
      data: a,
      shape: S,
      affine: mat4([
        [1.5, 0, 0, -10],
        [0, 1, 0, 5],
        [0, 0, 1.25, 2],
        [0, 0, 0, 1],
      ]),
    });
    model = await loadModel(join(dir, 'model'));
  });
  after(async () => {
    model.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it("gives uxnet predict's labels byte for byte, from a path or from bytes", async () => {
    const fromPath = await model.segment(img);
    const fromBytes = await model.segment(readFileSync(img), { name: 'img.nii.gz' });
    assert.deepEqual(fromBytes.labelsNifti, fromPath.labelsNifti);
    const out = join(dir, 'cli.nii.gz');
    const r = uxnet(['predict', '-i', img, '-o', out, '-m', join(dir, 'model')], { env: { UXNET_QUIET: '1', UXNET_THREADS: '1' } });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(new Uint8Array(readFileSync(out)), fromPath.labelsNifti);
    // The bytes are the label volume on the input grid, with the input's affine.
    const nii = parseNifti(fromPath.labelsNifti);
    assert.deepEqual(nii.shape, S);
    assert.deepEqual(Array.from(decodeRaw(nii) as ArrayLike<number>), Array.from(fromPath.labels.data));
    assert.deepEqual(Array.from(nii.affine), [1.5, 0, 0, -10, 0, 1, 0, 5, 0, 0, 1.25, 2, 0, 0, 0, 1]);
    assert.equal(nii.header.descrip, 'uxnet3d tiny');
    assert.equal(model.labelNames['1'], 'bright');
  });

  it('passes the options through: probabilities whose argmax is the labels, TTA, uncompressed bytes', async () => {
    const r = await model.segment(img, { probabilities: true, tta: true, mode: 'gaussian', overlap: 0.5, gzip: false });
    assert.equal(r.labelsNifti[344], 0x6e, 'uncompressed NIfTI-1 (magic n+1 at byte 344)');
    const p = r.probabilities!;
    assert.equal(p.channels, 3);
    const n = S[0] * S[1] * S[2];
    for (let i = 0; i < n; i += 37) {
      const v = [0, 1, 2].map((c) => p.data[c * n + i]!);
      assert.ok(Math.abs(v[0]! + v[1]! + v[2]! - 1) < 1e-5, `probabilities sum to 1 at ${i}`);
      const best = v.indexOf(Math.max(...v));
      assert.equal(r.labels.data[i], best, `label = argmax at ${i}`);
    }
    assert.deepEqual(parseNifti(r.probabilitiesNifti!).shape, [...S, 3], 'probabilities as a 4-D NIfTI, classes last');
    const plain = await model.segment(img, { mode: 'gaussian', overlap: 0.5 });
    assert.notDeepEqual(Array.from(plain.labels.data), Array.from(r.labels.data), "TTA changes an untrained model's labels");
  });

  it('refuses what the model cannot do, and bad bytes, as InputErrors', async () => {
    await assert.rejects(model.segment(img, { fast: true }), (e: unknown) => e instanceof InputError && /--fast: model 'tiny' offers no faster spacing/.test(e.message));
    await assert.rejects(model.segment(img, { overlap: 1 }), (e: unknown) => e instanceof InputError && /overlap must be in \[0, 1\)/.test(e.message));
    await assert.rejects(model.segment(new Uint8Array(0), { name: 'upload.nii' }), (e: unknown) => e instanceof InputError && e.message === 'upload.nii: the file is empty');
    await assert.rejects(model.segment(new TextEncoder().encode('hello'), { name: 'upload.nii' }), (e: unknown) => e instanceof InputError && /^upload\.nii: /.test(e.message));
  });

  it('exports initWebGPU and the sliding window from the package root', async () => {
    assert.equal(typeof initWebGPU, 'function');
    // One 2x2x2 window over a 2x2x2 volume with an identity predictor returns the input.
    const data = Float32Array.from({ length: 8 }, (_, i) => i);
    const out = await slidingWindowInference({ data, shape: [1, 1, 2, 2, 2] }, [2, 2, 2], (b) => b, { overlap: 0, mode: 'constant' });
    assert.deepEqual(Array.from(out.data), Array.from(data));
  });
});
