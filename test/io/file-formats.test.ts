import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import '../../src/backends/index.js';
import { loadModelFolder, validateManifest, ModelFolderError } from '../../src/infer/model-folder.js';
import { BUILTIN_PRESETS, loadPreset, parsePreset } from '../../src/data/presets.js';
import { parsePlan } from '../../src/data/plan-schema.js';
import { resolveTrainConfig, TrainConfigError } from '../../src/train/config.js';
import { parseSplitFile } from '../../src/train/split-file.js';
import { readRecipeFile } from '../../src/train/recipe-file.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const json = (rel: string) => JSON.parse(readFileSync(root + rel, 'utf8')) as Record<string, unknown>;
const readRecipe = (rel: string) => readRecipeFile(root + rel);

/** Asserts `fn` throws exactly `message`, on one line. */
function throwsLine(fn: () => unknown, message: string, type: new (...a: never[]) => Error = Error): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof type, `a ${type.name}`);
    assert.equal((e as Error).message, message);
    assert.ok(!(e as Error).message.includes('\n'));
    return true;
  });
}

describe('file formats: one schema each, errors naming file, field and expectation', () => {
  // The single model shipped before the 5-fold ensemble, written before model.json had a version field.
  const manifest = json('test/fixtures/legacy-model.json');

  it('model.json: a folder written before the version field still loads; the shipped members load', async () => {
    assert.equal(manifest.version, undefined, 'the old model.json has no version field');
    const m = validateManifest(manifest, 'model.json');
    assert.equal((m.network as { outChans: number }).outChans, 3);
    assert.deepEqual(m.inference.roiSize, [48, 64, 48]);
    assert.deepEqual(m.preprocessing.steps, [{ op: 'orientation', axcodes: 'RAS' }, { op: 'zScore' }]);
    const loaded = await loadModelFolder(root + 'models/hippocampus/fold_0');
    assert.equal(loaded.model.numParameters(), 6_009_395); // the README's 6.0 M
    assert.deepEqual(loaded.manifest.labels, { 0: 'background', 1: 'anterior', 2: 'posterior' });
    loaded.model.dispose();
  });

  it('model.json: a bad field names the file, the field path and what was expected', () => {
    const bad = (patch: (m: Record<string, any>) => void) => {
      const m = structuredClone(manifest) as Record<string, any>;
      patch(m);
      return () => validateManifest(m, 'm/model.json');
    };
    throwsLine(
      bad((m) => {
        m.inference.roiSize[1] = 60;
      }),
      'm/model.json: inference.roiSize: 48x60x48 does not fit the network: UX-Net input spatial size 48×60×48 is invalid: every spatial dimension must be a positive multiple of 16 (the network downsamples 4 times by 2 and concatenates skip connections); pad or crop the volume, or use sliding-window inference',
      ModelFolderError,
    );
    throwsLine(
      bad((m) => {
        m.inference.mode = 'median';
      }),
      'm/model.json: inference.mode: expected one of "gaussian", "constant", got "median"',
      ModelFolderError,
    );
    throwsLine(
      bad((m) => {
        m.preprocessing.steps[1] = { op: 'blur' };
      }),
      'm/model.json: preprocessing.steps[1].op: unknown op "blur" (known: spacing, orientation, scaleIntensityRange, zScore, clipPercentiles, cropForeground, spatialPad)',
      ModelFolderError,
    );
    throwsLine(
      bad((m) => {
        m.preprocessing.steps[0] = { op: 'spacing', pixdim: [1, 1, -1] };
      }),
      'm/model.json: preprocessing.steps[0].pixdim[2]: expected number to be >0, got -1',
      ModelFolderError,
    );
    throwsLine(
      bad((m) => {
        m.version = 2;
      }),
      'm/model.json: version: expected 1, got 2',
      ModelFolderError,
    );
    throwsLine(
      bad((m) => {
        delete m.labels['2'];
      }),
      'm/model.json: labels: names 2 classes but the network has 3 outputs',
      ModelFolderError,
    );
    throwsLine(
      bad((m) => {
        m.network.featSize = [8, 16];
      }),
      'm/model.json: network: featSize (feat_size) must be a list of 4 integers, got [8,16]',
      ModelFolderError,
    );
  });

  it('presets: every built-in preset loads; a bad random step names its index and field', () => {
    for (const name of BUILTIN_PRESETS) assert.equal(loadPreset(name).name, name);
    assert.equal(loadPreset(root + 'recipes/hippocampus/preset.json').train.length, 4, 'an unversioned preset loads');
    throwsLine(() => parsePreset({ name: 'x', train: [{ op: 'randFlip', prob: 1.5 }] }, 'p.json'), 'p.json: train[0].prob: expected number to be <=1, got 1.5');
    throwsLine(
      () => parsePreset({ name: 'x', train: [{ op: 'randAffine', prob: 1, rotateRange: [0, 0], scaleRange: [0, 0, 0] }] }, 'p.json'),
      'p.json: train[0].rotateRange: expected array to have >=3 items, got [0,0]',
    );
    throwsLine(() => parsePreset({ name: 'x', val: [{ op: 'spatialPad', size: [96, 96, 96], mode: 'end' }] }, 'p.json'), 'p.json: val[0]: unknown field "mode"');
    throwsLine(() => parsePreset({ name: 'x', roiSize: [96, 96] }, 'p.json'), 'p.json: roiSize: expected array to have >=3 items, got [96,96]');
  });

  it('plan.json: a bad cache entry names the field', () => {
    const plan = {
      name: 'auto-plan',
      version: 1,
      roiSize: [48, 64, 48],
      val: [{ op: 'zScore' }],
      train: [],
      cache: [{ id: 'a', split: 'train', shape: [4, 5, 6], channels: 1, image: 'a.nii', ops: [] }],
    };
    assert.equal(parsePlan(plan, 'plan.json').cache[0]!.id, 'a');
    throwsLine(() => parsePlan({ ...plan, cache: [{ ...plan.cache[0], shape: [4, 0, 6] }] }, 'c/plan.json'), 'c/plan.json: cache[0].shape[1]: expected number to be >0, got 0');
    throwsLine(() => parsePlan({ ...plan, cache: undefined }, 'c/plan.json'), 'c/plan.json: cache: is required (expected array)');
  });

  it('training config: the recipe (no version) resolves; a bad field names the config file', () => {
    const recipe = json('recipes/hippocampus/train.json');
    const cfg = resolveTrainConfig(recipe, {}, 'recipes/hippocampus/train.json');
    assert.equal(cfg.steps, 2500);
    assert.equal(cfg.schedule.type, 'cosine');
    throwsLine(() => resolveTrainConfig({ ...recipe, lr: -1 }, {}, 'train.json'), 'train.json: lr: expected number to be >0, got -1', TrainConfigError);
    throwsLine(
      () => resolveTrainConfig({ ...recipe, schedule: { type: 'step' } } as never, {}, 'train.json'),
      'train.json: schedule.type: expected one of "constant", "poly", "cosine", got "step"',
      TrainConfigError,
    );
    throwsLine(() => resolveTrainConfig({ ...recipe, version: 3 } as never, {}, 'train.json'), 'train.json: version: expected 1, got 3', TrainConfigError);
    throwsLine(() => resolveTrainConfig({ ...recipe, deepSupervision: 1.5 }, {}, 'train.json'), 'train.json: deepSupervision: expected int, got 1.5', TrainConfigError);
    throwsLine(() => resolveTrainConfig({}, { outDir: 'o' }), 'training config: dataset: is required (expected string)', TrainConfigError);
  });

  it('every shipped hippocampus recipe resolves (its extends chain followed) and its preset loads', async () => {
    const dir = 'recipes/hippocampus/';
    const recipes = readdirSync(root + dir).filter((f) => /^(train|finetune).*\.json$/.test(f));
    assert.ok(recipes.length >= 8, `recipes found: ${recipes.join(', ')}`);
    for (const f of recipes) {
      const recipe = await readRecipe(dir + f);
      const cfg = resolveTrainConfig(recipe, {}, dir + f);
      assert.ok(cfg.steps > 0, f);
      const preset = loadPreset(root + (recipe as { preset: string }).preset);
      assert.equal(preset.train[0]!.op, 'randCropByPosNegLabel', `${f}: crops come first`);
      // Mirroring along the anterior-posterior axis moves the anterior label behind the posterior one, so only the pilot
      // that tests nnU-Net's all-axes mirroring (pinned below) does it; every other recipe mirrors left-right only.
      if (f !== 'train-p32-aff02-flip3.json') for (const step of preset.train) if (step.op === 'randFlip') assert.deepEqual(step.axes, [0], `${f}: left-right flips only`);
    }
    const aug = loadPreset(root + dir + 'preset-aug.json').train;
    assert.deepEqual(
      aug.map((s) => s.op),
      ['randCropByPosNegLabel', 'randShiftIntensity', 'randGamma', 'randAffine', 'randFlip'],
    );
    const affine = aug[3] as { rotateRange: number[]; scaleRange: number[] };
    assert.deepEqual(affine.rotateRange, [Math.PI / 12, Math.PI / 12, Math.PI / 12]);
    assert.deepEqual(affine.scaleRange, [0.15, 0.15, 0.15]);
    // The aff02 pilot changes exactly one number of the shipped preset: the affine's probability.
    const base = loadPreset(root + dir + 'preset.json').train;
    const aff02 = loadPreset(root + dir + 'preset-aff02.json').train;
    assert.deepEqual(
      aff02,
      base.map((s) => (s.op === 'randAffine' ? { ...s, prob: 0.2 } : s)),
    );
    assert.equal((base.find((s) => s.op === 'randAffine') as { prob: number }).prob, 1);
    // The 2-volume pilot changes only the batch's make-up (1 crop from each of 2 volumes, not 2 from one) and its folder.
    const r2 = (await readRecipe(dir + 'train-p32-aff02-2vol.json')) as Record<string, unknown>;
    assert.deepEqual(r2, { ...json(dir + 'train-p32-aff02.json'), cropsPerVolume: 1, volumesPerStep: 2, outDir: 'runs/hippocampus-p32-aff02-2vol' });
    // The intensity pilot adds nnU-Net's noise, brightness and gamma after the affine of preset-aff02, and nothing else.
    const int = loadPreset(root + dir + 'preset-aff02-int.json').train;
    const at = aff02.findIndex((s) => s.op === 'randAffine') + 1;
    assert.deepEqual(int, [
      ...aff02.slice(0, at),
      { op: 'randGaussianNoise', prob: 0.1, std: 0.3 },
      { op: 'randScaleIntensity', factors: 0.25, prob: 0.15 },
      { op: 'randGamma', prob: 0.3, gamma: [0.7, 1.5] },
      ...aff02.slice(at),
    ]);
    assert.deepEqual(await readRecipe(dir + 'train-p32-aff02-int.json'), {
      ...json(dir + 'train-p32-aff02.json'),
      preset: 'recipes/hippocampus/preset-aff02-int.json',
      outDir: 'runs/hippocampus-p32-aff02-int',
    });
    // The all-axes mirroring pilot mirrors along each axis on its own (probability 0.5 each), and changes nothing else.
    const flip3 = loadPreset(root + dir + 'preset-aff02-flip3.json').train;
    assert.deepEqual(flip3, [
      ...aff02.filter((s) => s.op !== 'randFlip'),
      { op: 'randFlip', prob: 0.5, axes: [0] },
      { op: 'randFlip', prob: 0.5, axes: [1] },
      { op: 'randFlip', prob: 0.5, axes: [2] },
    ]);
    assert.deepEqual(aff02.at(-1), { op: 'randFlip', prob: 0.5, axes: [0] });
    // The deep-supervision pilot adds nnU-Net's deep supervision on the 1/2 and 1/4 decoder levels, and nothing else.
    assert.deepEqual(await readRecipe(dir + 'train-p32-aff02-ds.json'), { ...json(dir + 'train-p32-aff02.json'), deepSupervision: 2, outDir: 'runs/hippocampus-p32-aff02-ds' });
    // The nnU-Net-range pilot widens the affine to nnU-Net's ranges (rotation up to 30 degrees about every axis, scaling by up
    // to 30%), still on 20% of crops, and changes nothing else.
    const nnrange = loadPreset(root + dir + 'preset-aff02-nnrange.json').train;
    assert.deepEqual(
      nnrange,
      aff02.map((s) => (s.op === 'randAffine' ? { ...s, rotateRange: [Math.PI / 6, Math.PI / 6, Math.PI / 6], scaleRange: [0.3, 0.3, 0.3] } : s)),
    );
    assert.deepEqual(await readRecipe(dir + 'train-p32-aff02-nnrange.json'), {
      ...json(dir + 'train-p32-aff02.json'),
      preset: 'recipes/hippocampus/preset-aff02-nnrange.json',
      outDir: 'runs/hippocampus-p32-aff02-nnrange',
    });
    // The long pilot trains the shipped recipe for twice the steps (its cosine schedule stretched over them), validating only at the end.
    assert.deepEqual(await readRecipe(dir + 'train-p32-aff02-15k.json'), {
      ...json(dir + 'train-p32-aff02.json'),
      steps: 15000,
      valEvery: 15000,
      outDir: 'runs/hippocampus-p32-aff02-15k',
    });
    assert.deepEqual(await readRecipe(dir + 'train-p32-aff02-flip3.json'), {
      ...json(dir + 'train-p32-aff02.json'),
      preset: 'recipes/hippocampus/preset-aff02-flip3.json',
      outDir: 'runs/hippocampus-p32-aff02-flip3',
    });
  });

  it('split files: the recipe split (no version) parses; a bad field names the file', () => {
    const split = parseSplitFile(json('recipes/hippocampus/split-fold0.json'), 'split-fold0.json');
    assert.equal(split.train.length + split.val.length, 208);
    throwsLine(() => parseSplitFile({ train: ['a'], val: 'b' }, 's.json'), 's.json: val: expected array, got "b"');
    throwsLine(() => parseSplitFile({ train: ['a', 7], val: [] }, 's.json'), 's.json: train[1]: expected string, got 7');
  });
});
