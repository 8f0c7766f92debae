/**
 * The browser app's folder picker logic (src/browser/model-folder.ts) in Node: Blobs with the paths
 * <input webkitdirectory> gives. Which files make the model, what the page shows for an ensemble,
 * and the messages for folders that are not model folders.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pickedModel, type PickedFile } from '../../src/browser/model-folder.js';
import { ModelFolderError } from '../../src/infer/model-manifest.js';

const LABELS = { '0': 'background', '1': 'a', '2': 'b' };
function unetr(mirrorAxes: number[]): string {
  return JSON.stringify({
    format: 'uxnet3d-model/1',
    name: 'u',
    network: 'unetr',
    networkArgs: { in_channels: 1, out_channels: 3, img_size: [32, 32, 32], feature_size: 4, hidden_size: 16, mlp_dim: 16, num_heads: 2 },
    inference: { roiSize: [32, 32, 32], overlap: 0.25, mode: 'constant', swBatchSize: 1, mirrorAxes },
    labels: LABELS,
  });
}
const file = (path: string, content: string | Uint8Array): PickedFile => ({ path, file: new Blob([content as BlobPart]) });

test('a model folder: model.json with weights.safetensors (preferred over weights.pth), read when asked', async () => {
  const m = await pickedModel([file('run/model.json', unetr([0])), file('run/weights.pth', 'pth'), file('run/weights.safetensors', new Uint8Array([1, 2, 3]))]);
  assert.equal(m.name, 'run');
  assert.equal(m.view.name, 'u');
  assert.deepEqual(m.view.inference.roiSize, [32, 32, 32]);
  const b = await m.bytes();
  assert.equal(b.weightsName, 'run/weights.safetensors');
  assert.deepEqual([...b.weights], [1, 2, 3]);
  assert.equal(b.manifestName, 'run/model.json');
  assert.equal(b.members, undefined);
  // Another folder's contents give another key, so the worker does not reuse the first model.
  const other = await pickedModel([file('run/model.json', unetr([0])), file('run/weights.safetensors', new Uint8Array([1, 2, 3, 4]))]);
  assert.notEqual(other.key, m.key);
});

test('an ensemble folder: members under it, the page shows its name and labels; TTA only if every member was trained with flips', async () => {
  const ens = JSON.stringify({ format: 'uxnet3d-ensemble/1', name: 'ens', labels: LABELS, members: [{ path: 'f0' }, { path: 'f1' }] });
  const m = await pickedModel([
    file('ens/model.json', ens),
    file('ens/f0/model.json', unetr([0, 1])),
    file('ens/f0/weights.safetensors', new Uint8Array([7])),
    file('ens/f1/model.json', unetr([])),
    file('ens/f1/weights.pth', new Uint8Array([8, 9])),
  ]);
  assert.equal(m.view.name, 'ens');
  assert.equal(m.view.description, 'ensemble of 2 models');
  assert.deepEqual(m.view.inference.mirrorAxes, []);
  const b = await m.bytes();
  assert.deepEqual(
    b.members!.map((x) => [x.manifestName, x.weightsName, [...x.weights]]),
    [
      ['ens/f0/model.json', 'ens/f0/weights.safetensors', [7]],
      ['ens/f1/model.json', 'ens/f1/weights.pth', [8, 9]],
    ],
  );
});

test("the page preselects mirroring TTA as uxnet predict would run it: the ensemble's inference.tta, else a member's own", async () => {
  const ens = (inference?: object) =>
    JSON.stringify({ format: 'uxnet3d-ensemble/1', name: 'ens', labels: LABELS, members: [{ path: 'f0' }, { path: 'f1' }], ...(inference ? { inference } : {}) });
  const member = (tta?: boolean) => JSON.stringify({ ...JSON.parse(unetr([0])), inference: { ...JSON.parse(unetr([0])).inference, ...(tta === undefined ? {} : { tta }) } });
  const pick = (top: string, t0?: boolean, t1?: boolean) =>
    pickedModel([
      file('ens/model.json', top),
      file('ens/f0/model.json', member(t0)),
      file('ens/f0/weights.safetensors', new Uint8Array([7])),
      file('ens/f1/model.json', member(t1)),
      file('ens/f1/weights.safetensors', new Uint8Array([8])),
    ]);
  assert.equal((await pick(ens())).view.inference.tta, false);
  assert.equal((await pick(ens({ tta: true }))).view.inference.tta, true);
  assert.equal((await pick(ens(), false, true)).view.inference.tta, true);
  assert.equal((await pick(ens({ tta: false }), true, true)).view.inference.tta, false);
  assert.equal((await pickedModel([file('run/model.json', member(true)), file('run/weights.safetensors', new Uint8Array([1]))])).view.inference.tta, true);
});

test('folders that are not model folders are named with what is missing', async () => {
  await assert.rejects(pickedModel([]), /the chosen folder is empty/);
  await assert.rejects(pickedModel([file('notes/a.txt', 'x')]), (e) => e instanceof ModelFolderError && e.message === 'notes is not a model folder: model.json is missing');
  await assert.rejects(pickedModel([file('run/model.json', unetr([]))]), /^ModelFolderError: run: weights\.safetensors is missing$/);
  await assert.rejects(pickedModel([file('run/model.json', '{"format":')]), /run\/model\.json: not valid JSON/);
  const ens = JSON.stringify({ format: 'uxnet3d-ensemble/1', name: 'ens', labels: LABELS, members: [{ path: 'f0' }] });
  await assert.rejects(pickedModel([file('ens/model.json', ens)]), /ens\/f0 is not a model folder: model\.json is missing/);
});
