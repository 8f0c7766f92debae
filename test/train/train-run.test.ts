/**
 * The training workflow end to end on a tiny synthetic dataset: checkpoints, logs, curves and the
 * exported model folder; --resume reproducing an uninterrupted run bit for bit; fine-tuning across
 * class counts; refusing to overwrite a run.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSyntheticDataset } from '../helpers/synthetic-dataset.js';
import { tinyTrainConfig } from '../helpers/tiny-train.js';
import type { TrainConfig } from '../../src/train/config.js';
import { runTraining, initFromWeights, splitEntries, stepBatches, TrainRunError } from '../../src/train/run.js';
import type { CacheEntry } from '../../src/data/cache.js';
import type { LoadedPatch } from '../../src/data/loader/index.js';
import { loadCheckpoint } from '../../src/train/checkpoint.js';
import { loadModelFolder } from '../../src/infer/model-folder.js';
import { UXNet } from '../../src/models/uxnet.js';
import '../../src/backends/index.js';

let dir: string;
const quiet = () => {};

const config = (out: string, over: Partial<TrainConfig> = {}): TrainConfig => tinyTrainConfig(dir, out, over);

describe('uxnet train workflow', () => {
  before(async () => {
    process.env.UXNET_QUIET = '1';
    dir = await mkdtemp(join(tmpdir(), 'uxnet-train-'));
    await writeSyntheticDataset(join(dir, 'data'), 5);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('trains, validates, checkpoints and exports a model folder', async () => {
    const out = join(dir, 'run');
    const r = await runTraining(config(out), { log: quiet });
    for (const f of ['checkpoint_last.safetensors', 'checkpoint_best.safetensors', 'metrics.jsonl', 'curves.svg', 'config.json', 'model/model.json', 'model/weights.safetensors']) {
      assert.ok(existsSync(join(out, f)), `${f} written`);
    }
    const lines = (await readFile(join(out, 'metrics.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((l) => l.step),
      [1, 2, 3],
    );
    for (const l of lines) assert.ok(Math.abs(l.loss - (l.loss_dice + l.loss_ce)) < 1e-5, 'loss = dice + ce');
    assert.equal(lines[1].val_dice.length, 2, 'per-class Dice for both foreground classes');
    assert.ok(r.best && r.best.step >= 2);
    const ck = await loadCheckpoint(join(out, 'checkpoint_last.safetensors'));
    assert.equal(ck.state.step, 3);
    assert.ok(ck.optimizer && ck.optimizer.state.size > 0, 'optimiser moments saved');
    const svg = await readFile(join(out, 'curves.svg'), 'utf8');
    assert.match(svg, /<svg[^>]*>/);
    assert.match(svg, /<path d="M/);
    // The model folder carries the run's curves and per-step log, byte for byte.
    assert.equal(await readFile(join(out, 'model', 'training-curves.svg'), 'utf8'), svg);
    assert.equal(await readFile(join(out, 'model', 'training-metrics.jsonl'), 'utf8'), await readFile(join(out, 'metrics.jsonl'), 'utf8'));
    const loaded = await loadModelFolder(join(out, 'model'));
    assert.equal((loaded.manifest.network as { outChans: number }).outChans, 3);
    assert.deepEqual(Object.values(loaded.manifest.labels), ['background', 'bright', 'dark']);
    loaded.model.dispose();
  });

  /** Trains `a` 3 steps straight and `b` 2 steps then resumed to 3, both with `over`; returns the two run folders. */
  const straightAndResumed = async (name: string, over: Partial<TrainConfig> = {}) => {
    const a = join(dir, `${name}a`);
    const b = join(dir, `${name}b`);
    await runTraining(config(a, { steps: 3, ...over }), { log: quiet });
    await runTraining(config(b, { steps: 2, ...over }), { log: quiet });
    await runTraining(config(b, { steps: 3, ...over }), { resume: true, log: quiet });
    return [a, b] as const;
  };

  it('--resume continues exactly as an uninterrupted run', async () => {
    const [a, b] = await straightAndResumed('');
    const wa = await readFile(join(a, 'checkpoint_last.safetensors'));
    const wb = await readFile(join(b, 'checkpoint_last.safetensors'));
    // Same parameters and optimiser state byte for byte (metadata holds timings, so compare tensors).
    const ca = await loadCheckpoint(join(a, 'checkpoint_last.safetensors'));
    const cb = await loadCheckpoint(join(b, 'checkpoint_last.safetensors'));
    assert.ok(wa.length > 0 && wb.length > 0);
    for (const [k, t] of ca.model) assert.deepEqual(cb.model.get(k)!.data, t.data, `parameter ${k}`);
    for (const [k, s] of ca.optimizer!.state) assert.deepEqual(cb.optimizer!.state.get(k)!.expAvgSq, s.expAvgSq, `AdamW v of ${k}`);
  });

  it('--resume with 2 volumes a step continues exactly as an uninterrupted run', async () => {
    // The loader of a run resumed at step s must start at request 2s; starting at s would train step 2 on other cases.
    const [a, b] = await straightAndResumed('v2', { volumesPerStep: 2, cropsPerVolume: 1 });
    const ca = await loadCheckpoint(join(a, 'checkpoint_last.safetensors'));
    const cb = await loadCheckpoint(join(b, 'checkpoint_last.safetensors'));
    for (const [k, t] of ca.model) assert.deepEqual(cb.model.get(k)!.data, t.data, `parameter ${k}`);
    const losses = async (d: string) =>
      (await readFile(join(d, 'metrics.jsonl'), 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).loss as number);
    assert.deepEqual(await losses(b), await losses(a));
  });

  it('deep supervision: heads train and resume exactly, and the model folder holds the network alone', async () => {
    const [a, b] = await straightAndResumed('ds', { deepSupervision: 2 });
    const ca = await loadCheckpoint(join(a, 'checkpoint_last.safetensors'));
    const cb = await loadCheckpoint(join(b, 'checkpoint_last.safetensors'));
    const dsKeys = [...ca.model.keys()].filter((k) => k.startsWith('ds.'));
    assert.deepEqual(dsKeys, ['ds.0.weight', 'ds.0.bias', 'ds.1.weight', 'ds.1.bias']);
    assert.deepEqual(ca.model.get('ds.1.weight')!.shape, [3, 16, 1, 1, 1], 'a 1x1x1 head from the 1/4 level (16 channels) to 3 classes');
    for (const [k, t] of ca.model) assert.deepEqual(cb.model.get(k)!.data, t.data, `parameter ${k}`);
    for (const [k, s] of ca.optimizer!.state) assert.deepEqual(cb.optimizer!.state.get(k)!.expAvgSq, s.expAvgSq, `AdamW v of ${k}`);
    assert.ok(ca.optimizer!.state.has('ds.0.weight'), 'the heads are optimised');
    const lines = async (d: string) =>
      (await readFile(join(d, 'metrics.jsonl'), 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { loss: number; loss_ds: number });
    const la = await lines(a);
    assert.deepEqual(
      await lines(b).then((l) => l.map((e) => [e.loss, e.loss_ds])),
      la.map((e) => [e.loss, e.loss_ds]),
    );
    for (const e of la) assert.ok(Number.isFinite(e.loss_ds) && e.loss_ds !== e.loss, 'loss_ds is the weighted sum, loss the full-resolution term');
    // The exported network has the plain UX-Net's tensors, and none of the heads'.
    const loaded = await loadModelFolder(join(a, 'model'));
    const keys = loaded.model.namedParameters().map(([k]) => k);
    assert.deepEqual(
      keys,
      new UXNet({ featSize: [4, 8, 16, 32], hiddenSize: 16, depths: [1, 1, 1, 1], outChans: 3 }, { meta: true }).namedParameterShapes().map(([k]) => k),
    );
    loaded.model.dispose();
    // A run started with deep supervision does not resume without it (or the other way round).
    await assert.rejects(
      runTraining(config(b, { steps: 4 }), { resume: true, log: quiet }),
      (e: Error) => e instanceof TrainRunError && /saved with deep supervision, but the run's config asks for none/.test(e.message),
    );
    await assert.rejects(
      runTraining(config(b, { steps: 4, deepSupervision: 1 }), { resume: true, log: quiet }),
      (e: Error) => e instanceof TrainRunError && e.message === "--resume: the checkpoint was saved with deep supervision on 2 level(s), but the run's config asks for 1",
    );
    await assert.rejects(
      runTraining(config(join(dir, 'ds4'), { deepSupervision: 4 }), { log: quiet }),
      (e: Error) => e instanceof TrainRunError && e.message === "deepSupervision: 4 levels asked for, but the network's decoder has 3 below full resolution",
    );
  });

  it('refuses to overwrite an existing run, and to resume a missing one', async () => {
    await assert.rejects(runTraining(config(join(dir, 'run')), { log: quiet }), (e: Error) => e instanceof TrainRunError && /--resume/.test(e.message));
    await assert.rejects(runTraining(config(join(dir, 'nothing')), { resume: true, log: quiet }), TrainRunError);
  });

  it('a split file picks its cases; an unreadable or wrong one is a one-line error naming the file', async () => {
    const entries = ['a', 'b', 'c'].map((id) => ({ id, split: 'train' }) as CacheEntry);
    const file = join(dir, 'split-abc.json');
    await writeFile(file, JSON.stringify({ train: ['c', 'a'], val: ['b'] }));
    const s = await splitEntries(entries, { split: file } as TrainConfig);
    assert.deepEqual({ train: s.train.map((e) => e.id), val: s.val.map((e) => e.id) }, { train: ['c', 'a'], val: ['b'] });
    const err = (f: string) =>
      splitEntries(entries, { split: f } as TrainConfig).then(
        () => 'no error',
        (e: Error) => (e instanceof TrainRunError ? e.message : `not a TrainRunError: ${e.message}`),
      );
    assert.equal(await err(join(dir, 'missing.json')), `cannot read split file '${join(dir, 'missing.json')}': no such file`);
    assert.equal(await err(dir), `cannot read split file '${dir}': it is a folder`);
    await writeFile(join(dir, 'split-bad.json'), '{ not json');
    assert.match(await err(join(dir, 'split-bad.json')), /^split file '.*split-bad\.json' is not valid JSON: /);
    await writeFile(join(dir, 'split-other.json'), JSON.stringify({ train: ['a', 'z'], val: ['b'] }));
    assert.equal(await err(join(dir, 'split-other.json')), `${join(dir, 'split-other.json')}: train case 'z' is not in the dataset`);
  });

  it('fine-tuning loads matching tensors and reinitialises the out block for a new class count', async () => {
    const net = { featSize: [4, 8, 16, 32], hiddenSize: 16, depths: [1, 1, 1, 1] };
    const m5 = new UXNet({ ...net, outChans: 5 }, { seed: 3 });
    const r = await initFromWeights(m5, join(dir, 'run', 'model', 'weights.safetensors'));
    assert.deepEqual(r.reinitialised.sort(), ['out.conv.conv.bias', 'out.conv.conv.weight']);
    assert.equal(r.skipped.length, 0);
    assert.equal(r.loaded.length, m5.namedParameters().length - 2);
    m5.dispose();
  });
});

describe('stepBatches', () => {
  // A fake loader: request n gives `crops` 1x1x2 crops whose voxels are 10n + crop index (labels: the request n).
  const fakeLoader = (first: number, crops: number) => {
    let n = first;
    return {
      async next(): Promise<LoadedPatch[]> {
        const r = n++;
        return Array.from({ length: crops }, (_, j) => ({
          image: new Float32Array([10 * r + j, 10 * r + j]),
          label: new Float32Array([r, r]),
          shape: [1, 1, 2] as [number, number, number],
          channels: 1,
        }));
      },
    };
  };

  it('stacks the crops of V consecutive requests per step, in request order', async () => {
    const loader = fakeLoader(0, 2);
    const src = stepBatches(() => loader, 2, 0);
    const b0 = await src.batch(0);
    assert.deepEqual(b0.shape, [4, 1, 1, 1, 2]);
    assert.deepEqual([...b0.image], [0, 0, 1, 1, 10, 10, 11, 11]);
    assert.deepEqual([...b0.label], [0, 0, 0, 0, 1, 1, 1, 1]);
    const b1 = await src.batch(1);
    assert.deepEqual([...b1.image], [20, 20, 21, 21, 30, 30, 31, 31]);
  });

  it('a source resumed at step s over a loader started at request s*V gives the same batch; steps out of order are refused', async () => {
    const loader = fakeLoader(6, 1);
    const resumed = stepBatches(() => loader, 3, 2);
    const b2 = await resumed.batch(2);
    assert.deepEqual([...b2.image], [60, 60, 70, 70, 80, 80]);
    const src = stepBatches(() => fakeLoader(0, 1), 1, 0);
    await assert.rejects(src.batch(1), /batch 1 requested, loader is at 0/);
  });
});
