/**
 * Ensemble folders: two members' averaged softmax equals the hand-averaged probabilities of the two
 * single-model predictions (same preprocessing: averaged on the network grid; different
 * preprocessing: averaged on the input grid), with and without TTA, through the library and the CLI;
 * malformed ensembles are refused with one line naming the problem.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile, cp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSyntheticDataset } from '../helpers/synthetic-dataset.js';
import { uxnet, assertUserError } from '../helpers/cli.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { runTraining } from '../../src/train/run.js';
import { loadModelFolder } from '../../src/infer/model-folder.js';
import { predictVolume, argmaxChannels } from '../../src/infer/predict.js';
import { loadSegmenter, writeEnsembleFolder, isEnsemble, predictEnsemble, disposeSegmenter, type LoadedEnsemble } from '../../src/infer/ensemble.js';
import { loadImage, loadVolume } from '../../src/data/load.js';
import '../../src/backends/index.js';

let dir: string;
const net = { featSize: [4, 8, 16, 32], hiddenSize: 16, depths: [1, 1, 1, 1] };

async function train(out: string, seed: number): Promise<string> {
  await runTraining(
    resolveTrainConfig(
      {},
      {
        dataset: join(dir, 'data'),
        outDir: out,
        preset: 'auto',
        cacheDir: join(dir, 'cache'),
        network: net,
        roiSize: [32, 32, 32],
        steps: 2,
        valEvery: 2,
        workers: 1,
        lr: 1e-2,
        seed,
      },
    ),
    { log: () => {} },
  );
  return join(out, 'model');
}

/** max |a - b| */
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function handAverage(members: string[], imagePath: string, tta: boolean): Promise<{ probs: Float32Array; labels: ArrayLike<number>[] }> {
  const image = await loadImage(imagePath);
  let sum: Float32Array | null = null;
  const labels: ArrayLike<number>[] = [];
  for (const m of members) {
    const loaded = await loadModelFolder(m);
    const p = await predictVolume(loaded, image, { probabilities: true, tta });
    loaded.model.dispose();
    const d = p.probabilities!.data as Float32Array;
    labels.push(p.labels.data);
    sum = sum ? sum.map((v, i) => v + d[i]!) : Float32Array.from(d);
  }
  return { probs: sum!.map((v) => v / members.length), labels };
}

describe('ensemble folders', () => {
  let a: string, b: string, ens: string;
  before(async () => {
    process.env.UXNET_QUIET = '1';
    dir = await mkdtemp(join(tmpdir(), 'uxnet-ensemble-'));
    await writeSyntheticDataset(join(dir, 'data'), 4);
    a = await train(join(dir, 'a'), 1);
    b = await train(join(dir, 'b'), 2);
    ens = join(dir, 'ens');
    await writeEnsembleFolder(
      ens,
      [
        { name: 'm_a', from: a },
        { name: 'm_b', from: b },
      ],
      { name: 'pair' },
    );
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes a self-contained folder whose model.json lists the members', async () => {
    const m = JSON.parse(await readFile(join(ens, 'model.json'), 'utf8'));
    assert.equal(m.format, 'uxnet3d-ensemble/1');
    assert.deepEqual(m.members, [{ path: 'm_a' }, { path: 'm_b' }]);
    assert.deepEqual(m.labels, { 0: 'background', 1: 'bright', 2: 'dark' });
    assert.deepEqual(await readFile(join(ens, 'm_b', 'weights.safetensors')), await readFile(join(b, 'weights.safetensors')));
  });

  for (const tta of [false, true]) {
    it(`averages the members' probabilities, then argmax${tta ? " (after each member's TTA)" : ''}`, async () => {
      const image = join(dir, 'data', 'imagesTr', 'case_001.nii.gz');
      const hand = await handAverage([a, b], image, tta);
      assert.ok(maxDiff(hand.labels[0]!, hand.labels[1]!) > 0, 'the two members disagree somewhere, so the average matters');
      const s = await loadSegmenter(ens);
      assert.ok(isEnsemble(s));
      const p = await predictEnsemble(s as LoadedEnsemble, await loadImage(image), { probabilities: true, tta });
      disposeSegmenter(s);
      assert.ok(maxDiff(p.probabilities!.data, hand.probs) < 1e-6, `probabilities ${maxDiff(p.probabilities!.data, hand.probs)}`);
      // This dataset needs no resampling, so mapping back is pure re-indexing and argmax commutes with it.
      assert.deepEqual(Array.from(p.labels.data), Array.from(argmaxChannels(hand.probs, 3)));
    });
  }

  it('members with different preprocessing are averaged on the input grid', async () => {
    const b2 = join(dir, 'b2');
    await cp(b, b2, { recursive: true });
    const mj = JSON.parse(await readFile(join(b2, 'model.json'), 'utf8'));
    mj.preprocessing.steps.push({ op: 'spacing', pixdim: [1.25, 1.25, 1.25] });
    await writeFile(join(b2, 'model.json'), JSON.stringify(mj));
    const mixed = join(dir, 'mixed');
    await writeEnsembleFolder(
      mixed,
      [
        { name: 'a', from: a },
        { name: 'b2', from: b2 },
      ],
      { name: 'mixed' },
    );
    const image = join(dir, 'data', 'imagesTr', 'case_002.nii.gz');
    const hand = await handAverage([a, b2], image, false);
    const s = await loadSegmenter(mixed);
    const p = await predictEnsemble(s as LoadedEnsemble, await loadImage(image), { probabilities: true });
    disposeSegmenter(s);
    assert.ok(maxDiff(p.probabilities!.data, hand.probs) < 1e-6);
    assert.deepEqual(Array.from(p.labels.data), Array.from(argmaxChannels(hand.probs, 3)));
  });

  it('uxnet predict -m ENSEMBLE writes the averaged result', async () => {
    const image = join(dir, 'data', 'imagesTr', 'case_003.nii.gz');
    const out = join(dir, 'pred', 'case_003.nii.gz');
    const r = uxnet(['predict', '-i', image, '-o', out, '-m', ens, '--probabilities'], { env: { UXNET_QUIET: '1', UXNET_THREADS: '1' } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /ensemble of 2 'pair'/);
    const hand = await handAverage([a, b], image, false);
    const probs = await loadVolume(join(dir, 'pred', 'case_003_probabilities.nii.gz'));
    assert.equal(probs.channels, 3);
    assert.ok(maxDiff(probs.data, hand.probs) < 1e-6);
    const labels = await loadVolume(out, 'label');
    assert.deepEqual(Array.from(labels.data as Uint8Array), Array.from(argmaxChannels(hand.probs, 3)));
  });

  it('uxnet demo segments and scores the held-out cases an ensemble records', async () => {
    const held = join(dir, 'ens-held');
    await writeEnsembleFolder(
      held,
      [
        { name: 'm_a', from: a },
        { name: 'm_b', from: b },
      ],
      { name: 'pair', training: { split: { train: [], val: ['case_003'] } } },
    );
    const out = join(dir, 'demo');
    const r = uxnet(['demo', '-m', held, '--dataset', join(dir, 'data'), '-o', out], { env: { UXNET_QUIET: '1', UXNET_THREADS: '1' } });
    assert.equal(r.status, 0, r.stderr);
    const metrics = JSON.parse(await readFile(join(out, 'metrics.json'), 'utf8'));
    assert.deepEqual(
      metrics.cases.map((c: { caseId: string }) => c.caseId),
      ['case_003'],
    );
    // the same labels as `uxnet predict -m ENSEMBLE` wrote for this case in the test above
    const demoLabels = await loadVolume(join(out, 'case_003.nii.gz'), 'label');
    const predLabels = await loadVolume(join(dir, 'pred', 'case_003.nii.gz'), 'label');
    assert.deepEqual(Array.from(demoLabels.data), Array.from(predLabels.data));
  });

  it('uxnet demo with a crossval ensemble (no held-out case) scores the first training cases and says they were trained on', async () => {
    const cv = join(dir, 'ens-cv');
    await writeEnsembleFolder(
      cv,
      [
        { name: 'fold_0', from: a },
        { name: 'fold_1', from: b },
      ],
      { name: 'pair-cv', training: { crossval: 'cv-pair', folds: 2, crossvalMeanDice: 0.61234, split: { train: ['case_002', 'case_003', 'case_001'], val: [] } } },
    );
    const out = join(dir, 'demo-cv');
    const r = uxnet(['demo', '-m', cv, '--dataset', join(dir, 'data'), '-o', out, '--limit', '2'], { env: { UXNET_QUIET: '1', UXNET_THREADS: '1' } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      /model 'pair-cv' is the 2-fold ensemble of crossval run 'cv-pair': every case trained 1 of its 2 members, so these scores are not held-out; its cross-validated mean foreground Dice is 0\.6123/,
    );
    assert.match(r.stdout, /segmenting 2 training cases/);
    const metrics = JSON.parse(await readFile(join(out, 'metrics.json'), 'utf8'));
    assert.equal(metrics.heldOut, false);
    assert.deepEqual(
      metrics.cases.map((c: { caseId: string }) => c.caseId),
      ['case_002', 'case_003'],
    );
    const demoLabels = await loadVolume(join(out, 'case_003.nii.gz'), 'label');
    const predLabels = await loadVolume(join(dir, 'pred', 'case_003.nii.gz'), 'label');
    assert.deepEqual(Array.from(demoLabels.data), Array.from(predLabels.data));
  });

  it("the browser app's loadModel/segment (bytes in memory, no file system) take an ensemble and match uxnet predict", async () => {
    const { loadModel, segment } = await import('../../src/browser/segment.js');
    const bytesOf = async (d: string, name: string) => ({
      manifestText: await readFile(join(d, 'model.json'), 'utf8'),
      manifestName: `${name}/model.json`,
      weights: new Uint8Array(await readFile(join(d, 'weights.safetensors'))),
      weightsName: `${name}/weights.safetensors`,
    });
    const loaded = await loadModel({
      manifestText: await readFile(join(ens, 'model.json'), 'utf8'),
      manifestName: 'model.json',
      weights: new Uint8Array(0),
      weightsName: '',
      members: [await bytesOf(join(ens, 'm_a'), 'm_a'), await bytesOf(join(ens, 'm_b'), 'm_b')],
    });
    assert.ok(isEnsemble(loaded));
    const image = await loadImage(join(dir, 'data', 'imagesTr', 'case_003.nii.gz'));
    const r = await segment(loaded, image);
    disposeSegmenter(loaded);
    const expected = await loadVolume(join(dir, 'pred', 'case_003.nii.gz'), 'label');
    const counts = [0, 0, 0];
    for (const v of expected.data) counts[v as number]!++;
    assert.deepEqual(
      r.classes.map((c) => c.voxels),
      counts.slice(1),
      'per-class voxel counts equal those of predict -m ENSEMBLE',
    );
    await assert.rejects(
      loadModel({ manifestText: await readFile(join(ens, 'model.json'), 'utf8'), manifestName: 'model.json', weights: new Uint8Array(0), weightsName: '', members: [] }),
      /lists 2 members but 0 were given/,
    );
  });

  it("a model's or an ensemble's inference.tta is the default mirroring; the caller's tta (or --no-tta) overrides it", async () => {
    const image = join(dir, 'data', 'imagesTr', 'case_001.nii.gz');
    const withTta = async (from: string, to: string, edit: (m: Record<string, any>) => void) => {
      await cp(from, to, { recursive: true });
      const m = JSON.parse(await readFile(join(to, 'model.json'), 'utf8'));
      edit(m);
      await writeFile(join(to, 'model.json'), JSON.stringify(m));
      return to;
    };
    const aTta = await withTta(a, join(dir, 'a-tta'), (m) => {
      m.inference.tta = true;
    });
    const ensTta = await withTta(ens, join(dir, 'ens-tta'), (m) => {
      m.inference = { tta: true };
    });
    const probs = async (model: string, tta: boolean | undefined) => {
      const s = await loadSegmenter(model);
      const img = await loadImage(image);
      const p = isEnsemble(s) ? await predictEnsemble(s, img, { probabilities: true, tta }) : await predictVolume(s, img, { probabilities: true, tta });
      disposeSegmenter(s);
      return p.probabilities!.data;
    };
    const [plain, mirrored] = [await probs(a, false), await probs(a, true)];
    assert.ok(maxDiff(plain, mirrored) > 1e-4, 'mirroring changes this model, so the checks below can tell the two apart');
    assert.deepEqual(await probs(aTta, undefined), mirrored);
    assert.deepEqual(await probs(aTta, false), plain);
    assert.deepEqual(await probs(ensTta, undefined), await probs(ens, true));
    assert.deepEqual(await probs(ensTta, false), await probs(ens, false));
    // The CLI says when the model's default mirrors, and --no-tta turns it off.
    const env = { env: { UXNET_QUIET: '1', UXNET_THREADS: '1' } };
    const outs = {
      byDefault: join(dir, 'tta', 'default.nii.gz'),
      asked: join(dir, 'tta', 'asked.nii.gz'),
      off: join(dir, 'tta', 'off.nii.gz'),
      plain: join(dir, 'tta', 'plain.nii.gz'),
    };
    const r = uxnet(['predict', '-i', image, '-o', outs.byDefault, '-m', ensTta, '--probabilities'], env);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /mirroring TTA \(the model's default; --no-tta to skip\)/);
    assert.equal(uxnet(['predict', '-i', image, '-o', outs.asked, '-m', ens, '--tta', '--probabilities'], env).status, 0);
    const off = uxnet(['predict', '-i', image, '-o', outs.off, '-m', ensTta, '--no-tta', '--probabilities'], env);
    assert.equal(off.status, 0, off.stderr);
    assert.doesNotMatch(off.stdout, /mirroring TTA/);
    assert.equal(uxnet(['predict', '-i', image, '-o', outs.plain, '-m', ens, '--probabilities'], env).status, 0);
    const p = async (f: string) => (await loadVolume(f.replace('.nii.gz', '_probabilities.nii.gz'))).data;
    assert.deepEqual(await p(outs.byDefault), await p(outs.asked));
    assert.deepEqual(await p(outs.off), await p(outs.plain));
    assert.ok(maxDiff(await p(outs.byDefault), await p(outs.off)) > 1e-4);
    // A default that cannot be honoured is refused when the folder is read.
    const noFlips = await withTta(a, join(dir, 'a-tta-noflips'), (m) => {
      m.inference.tta = true;
      m.inference.mirrorAxes = [];
    });
    assertUserError(uxnet(['predict', '-i', image, '-o', join(dir, 'x.nii.gz'), '-m', noFlips], env), /inference\.tta.*is true but inference\.mirrorAxes names no axis/);
    const badEns = await withTta(ens, join(dir, 'ens-tta-bad'), (m) => {
      m.inference = { tta: 'yes' };
    });
    assertUserError(uxnet(['predict', '-i', image, '-o', join(dir, 'x.nii.gz'), '-m', badEns], env), /inference\.tta must be true or false, got "yes"/);
  });

  it('refuses malformed ensembles with one line naming the problem', async () => {
    const bad = async (name: string, edit: (m: Record<string, unknown>) => void, re: RegExp) => {
      const d = join(dir, name);
      await cp(ens, d, { recursive: true });
      const m = JSON.parse(await readFile(join(d, 'model.json'), 'utf8'));
      edit(m);
      await writeFile(join(d, 'model.json'), JSON.stringify(m));
      const r = uxnet(['predict', '-i', join(dir, 'data', 'imagesTr', 'case_000.nii.gz'), '-o', join(dir, 'x.nii.gz'), '-m', d]);
      assertUserError(r, re);
    };
    await bad(
      'up',
      (m) => {
        m.members = [{ path: '../a/model' }];
      },
      /members\[0\]\.path must be a folder inside the ensemble folder/,
    );
    await bad(
      'none',
      (m) => {
        m.members = [];
      },
      /members must list at least one model folder/,
    );
    await bad(
      'missing',
      (m) => {
        m.members = [{ path: 'm_a' }, { path: 'nope' }];
      },
      /model folder '.*nope' does not exist/,
    );
    await bad(
      'labels',
      (m) => {
        m.labels = { 0: 'background', 1: 'x', 2: 'dark' };
      },
      /member 'm_a' has labels/,
    );
  });

  it('uxnet ensemble builds one folder from model and ensemble folders, checked before it writes, replaced only with --force', async () => {
    const env = { env: { UXNET_QUIET: '1', UXNET_THREADS: '1' } };
    const built = join(dir, 'built');
    // a model folder (RUN/model: named after the run) and an ensemble (its members, flattened)
    let r = uxnet(['ensemble', '-o', built, a, ens], env);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /ensemble 'built' of 3 members \(a, ens-m_a, ens-m_b\), labels background, bright, dark; no ensemble-wide mirroring default/);
    const m = JSON.parse(await readFile(join(built, 'model.json'), 'utf8'));
    assert.deepEqual(m.members, [{ path: 'a' }, { path: 'ens-m_a' }, { path: 'ens-m_b' }]);
    assert.equal(m.inference, undefined);
    assert.deepEqual(await readFile(join(built, 'ens-m_b', 'weights.safetensors')), await readFile(join(b, 'weights.safetensors')));
    // it predicts the average of its three members: a twice, b once
    const image = join(dir, 'data', 'imagesTr', 'case_002.nii.gz');
    const hand = await handAverage([a, a, b], image, false);
    const s = await loadSegmenter(built);
    const p = await predictEnsemble(s as LoadedEnsemble, await loadImage(image), { probabilities: true });
    disposeSegmenter(s);
    assert.ok(maxDiff(p.probabilities!.data, hand.probs) < 1e-6);
    // an existing folder is kept without --force, replaced with it
    assertUserError(uxnet(['ensemble', '-o', built, b], env), /output '.*built' already exists; pass --force/);
    assert.deepEqual(JSON.parse(await readFile(join(built, 'model.json'), 'utf8')).members.length, 3);
    r = uxnet(['ensemble', '-o', built, b, a, a, '--force', '--tta', '--name', 'baa'], env);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /ensemble 'baa' of 3 members \(b, a, a-2\).*mirroring TTA by default/);
    const m2 = JSON.parse(await readFile(join(built, 'model.json'), 'utf8'));
    assert.deepEqual(m2.inference, { tta: true });
    assert.deepEqual(await readFile(join(built, 'b', 'weights.safetensors')), await readFile(join(b, 'weights.safetensors')));
    assert.deepEqual(await readFile(join(built, 'a-2', 'weights.safetensors')), await readFile(join(a, 'weights.safetensors')));
    assert.ok(!(await readdir(built)).includes('ens-m_a'), 'the replaced folder is gone, not merged');
    // a member whose weights are a link to a file elsewhere is copied whole
    const linked = join(dir, 'linked', 'model');
    await mkdir(linked, { recursive: true });
    await cp(join(a, 'model.json'), join(linked, 'model.json'));
    await symlink(join(a, 'weights.safetensors'), join(linked, 'weights.safetensors'));
    r = uxnet(['ensemble', '-o', join(dir, 'built-linked'), linked], env);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(await readFile(join(dir, 'built-linked', 'linked', 'weights.safetensors')), await readFile(join(a, 'weights.safetensors')));
    // a source that mirrors by default passes that on
    const ensTta = join(dir, 'ens-tta-src');
    await cp(ens, ensTta, { recursive: true });
    await writeFile(join(ensTta, 'model.json'), JSON.stringify({ ...JSON.parse(await readFile(join(ens, 'model.json'), 'utf8')), inference: { tta: true } }));
    r = uxnet(['ensemble', '-o', join(dir, 'built-tta'), ensTta, a], env);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(await readFile(join(dir, 'built-tta', 'model.json'), 'utf8')).inference, { tta: true });
    r = uxnet(['ensemble', '-o', join(dir, 'built-notta'), ensTta, '--no-tta'], env);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(await readFile(join(dir, 'built-notta', 'model.json'), 'utf8')).inference, { tta: false });
    // members that do not fit together are refused before anything is written
    const other = join(dir, 'other-labels');
    await cp(a, other, { recursive: true });
    const om = JSON.parse(await readFile(join(other, 'model.json'), 'utf8'));
    om.labels = { 0: 'background', 1: 'bright', 2: 'grey' };
    await writeFile(join(other, 'model.json'), JSON.stringify(om));
    const refused = join(dir, 'refused');
    assertUserError(uxnet(['ensemble', '-o', refused, a, other], env), /member 'other-labels' has labels .*"grey".*, the ensemble .*"dark"/);
    assertUserError(uxnet(['ensemble', '-o', refused, a, join(dir, 'nope')], env), /model folder '.*nope' does not exist/);
    assertUserError(uxnet(['ensemble', '-o', join(ens, 'inner'), ens], env), /output '.*inner' is inside the source/);
    const run = join(dir, 'a-crossval');
    await mkdir(join(run, 'fold_0'), { recursive: true });
    await writeFile(join(run, 'crossval.json'), '{}');
    assertUserError(uxnet(['ensemble', '-o', refused, run], env), /'.*a-crossval' is a crossval run folder, not a model folder: give a fold's model, '.*fold_0\/model'/);
    assert.ok(!(await readdir(dir)).some((n) => n.startsWith('refused')), 'no folder, no temporary left behind');
  });
});
