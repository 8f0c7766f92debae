/**
 * The package as npm ships it: `npm pack`, installed into an empty folder, must run `uxnet demo`,
 * `uxnet predict`, `uxnet transform --preset flare`, `uxnet train --preset auto` and an `import` with
 * nothing from this checkout but the tarball. Nothing is downloaded: the runtime dependencies are packed
 * from this checkout's node_modules and installed with --offline. The C++ build is skipped there
 * (UXNET_SKIP_NATIVE=1; npm does not run install scripts it was not allowed to anyway); when this
 * checkout has a built addon it is copied in, as a successful build would have placed it, so the
 * commands run at native speed (the reference backend takes minutes per case).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/cli.js';
import { loadImage, loadVolume } from '../../src/data/load.js';
import { computeSegmentationMetrics } from '../../src/metrics/segmentation.js';

const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const env = { ...process.env, UXNET_SKIP_NATIVE: '1', UXNET_QUIET: '1', UXNET_THREADS: process.env.UXNET_THREADS ?? '2' };

function run(cmd: string, args: string[], cwd: string, timeout = 180_000): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  return r;
}

/**
 * `npm install --offline` of local tarballs takes about 10 s here, but once in a CI run (2026-12-05) npm stalled
 * after reading the first manifests and was killed at 180 s with nothing on stdout or stderr; the same install
 * passed alone right after. A stalled npm is not a defect of the package, so a killed install is tried once more;
 * an install that fails (non-zero exit) fails at once.
 */
function npmInstallOffline(args: string[], cwd: string): void {
  const first = spawnSync(NPM, args, { cwd, env, encoding: 'utf8', timeout: 120_000 });
  if (first.status === null && first.signal) {
    console.log(`npm install was killed (${first.signal}) after 120 s; trying once more`);
    run(NPM, args, cwd, 240_000);
    return;
  }
  assert.equal(first.status, 0, `npm ${args.join(' ')} failed:\n${first.stdout}\n${first.stderr}`);
}

describe('the packed npm package, installed into an empty folder', () => {
  let tmp: string;
  let app: string;
  let pkg: string;
  let tarball: string;
  const uxnet = (args: string[], cwd = app) => run(process.execPath, [join(app, 'node_modules', '.bin', 'uxnet'), ...args], cwd);
  const data = () => join(pkg, 'datasets', 'msd-hippocampus');

  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'uxnet-pack-'));
    // dist/ is built by `npm test` before the suite runs; --ignore-scripts skips `prepare` rebuilding it.
    const packed = run(NPM, ['pack', '--ignore-scripts', '--silent', '--pack-destination', tmp], ROOT).stdout.trim().split('\n');
    tarball = join(tmp, packed.at(-1)!);
    const deps = run(NPM, ['ls', '--omit=dev', '--all', '--parseable'], ROOT).stdout.trim().split('\n').slice(1);
    mkdirSync(join(tmp, 'deps'));
    const depTarballs = run(NPM, ['pack', '--ignore-scripts', '--silent', '--pack-destination', join(tmp, 'deps'), ...deps], ROOT)
      .stdout.trim()
      .split('\n')
      .map((f) => join(tmp, 'deps', f));
    app = join(tmp, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    npmInstallOffline(['install', '--offline', '--no-audit', '--no-fund', tarball, ...depTarballs], app);
    pkg = join(app, 'node_modules', 'uxnet3d');
    const addon = join(ROOT, 'build', 'Release', 'uxnet_native.node');
    if (existsSync(addon)) {
      mkdirSync(join(pkg, 'build', 'Release'), { recursive: true });
      copyFileSync(addon, join(pkg, 'build', 'Release', 'uxnet_native.node'));
    }
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('carries what is read at run time and none of the sources or tests', () => {
    const files = run('tar', ['-tzf', tarball], tmp)
      .stdout.trim()
      .split('\n')
      .map((f) => f.replace(/^package\//, ''));
    for (const f of [
      'presets/auto.json',
      'presets/flare.json',
      'models/hippocampus/model.json',
      ...[0, 1, 2, 3, 4].flatMap((k) => [`models/hippocampus/fold_${k}/model.json`, `models/hippocampus/fold_${k}/weights.safetensors`]),
      'recipes/hippocampus/train.json',
      'recipes/hippocampus/train-p32.json',
      'recipes/hippocampus/train-p32-aff02.json',
      'recipes/hippocampus/preset-aff02.json',
      'datasets/msd-hippocampus/README.md',
      'datasets/msd-hippocampus/imagesTr/hippocampus_053.nii.gz',
      'datasets/msd-hippocampus/labelsTr/hippocampus_053.nii.gz',
      'dist/src/cli/main.js',
      'bin/uxnet.js',
      'native/build.cjs',
    ]) {
      assert.ok(files.includes(f), `${f} is packed`);
    }
    assert.ok(!files.some((f) => f.startsWith('test/') || f.startsWith('dist/test/') || f.startsWith('src/')), 'no tests or TypeScript sources');
    // The model is bundled bit for bit.
    for (const k of [0, 4]) {
      const w = join('models', 'hippocampus', `fold_${k}`, 'weights.safetensors');
      assert.deepEqual(readFileSync(join(pkg, w)), readFileSync(join(ROOT, w)));
    }
  });

  it('uxnet demo segments the bundled cases with the bundled ensemble', () => {
    const r = uxnet(['demo', '--limit', '2', '-o', 'demo-out']);
    // the package carries three cases (fold 0's first held-out ones); the ensemble trained on all of them
    assert.match(r.stdout, /^model 'hippocampus' is the 5-fold ensemble of crossval run 'cv-uxnet-p32-aff02': every case trained 4 of its 5 members/m);
    const m = JSON.parse(readFileSync(join(app, 'demo-out', 'metrics.json'), 'utf8'));
    assert.deepEqual(
      m.cases.map((c: { caseId: string }) => c.caseId),
      ['hippocampus_053', 'hippocampus_058'],
    );
    for (const c of m.cases) for (const k of c.classes) assert.ok(k.dice > 0.75, `${c.caseId} class ${k.label}: Dice ${k.dice}`);
  });

  it('uxnet predict writes labels on the input grid that match the expert labels', async () => {
    const img = join(data(), 'imagesTr', 'hippocampus_065.nii.gz');
    uxnet(['predict', '-i', img, '-o', 'pred.nii.gz', '-m', join(pkg, 'models', 'hippocampus')]);
    const pred = await loadVolume(join(app, 'pred.nii.gz'), 'label');
    const gt = await loadVolume(join(data(), 'labelsTr', 'hippocampus_065.nii.gz'), 'label');
    assert.deepEqual(pred.shape, gt.shape);
    const dice = computeSegmentationMetrics(pred.data, gt.data, gt.shape, { classes: [1, 2] }).map((c) => c.dice);
    assert.ok(
      dice.every((d) => d > 0.75),
      `Dice ${dice}`,
    );
  });

  it('uxnet transform --preset flare gives what the checkout gives', async () => {
    const img = join(data(), 'imagesTr', 'hippocampus_053.nii.gz');
    const lbl = join(data(), 'labelsTr', 'hippocampus_053.nii.gz');
    uxnet(['transform', '-i', img, '--label', lbl, '--preset', 'flare', '-o', 't-pkg']);
    run(process.execPath, [join(ROOT, 'bin', 'uxnet.js'), 'transform', '-i', img, '--label', lbl, '--preset', 'flare', '-o', join(tmp, 't-clone')], ROOT);
    for (const f of ['image.nii.gz', 'label.nii.gz']) {
      const kind = f === 'label.nii.gz' ? 'label' : 'image';
      const a = await loadVolume(join(app, 't-pkg', f), kind);
      const b = await loadVolume(join(tmp, 't-clone', f), kind);
      assert.deepEqual(a.shape, b.shape);
      assert.deepEqual(a.data, b.data, f);
    }
    const meta = JSON.parse(readFileSync(join(app, 't-pkg', 'meta.json'), 'utf8'));
    assert.equal(meta.preset, 'flare');
    const image = await loadImage(join(app, 't-pkg', 'image.nii.gz'));
    // flare windows -125..275 HU to 0..1 (clipped): the MRI's background 0 maps to 125/400, its bright
    // voxels (far above 275) to 1.
    let lo = Infinity,
      hi = -Infinity;
    for (const v of image.data) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    assert.ok(Math.abs(lo - 125 / 400) < 1e-5, `min ${lo}`);
    assert.equal(hi, 1);
  });

  it('uxnet train --preset auto runs 2 steps of a tiny network and exports a model', () => {
    const ds = join(app, 'ds');
    for (const sub of ['imagesTr', 'labelsTr']) {
      mkdirSync(join(ds, sub), { recursive: true });
      for (const id of ['hippocampus_053', 'hippocampus_058', 'hippocampus_065']) cpSync(join(data(), sub, `${id}.nii.gz`), join(ds, sub, `${id}.nii.gz`));
    }
    uxnet([
      'train',
      '--dataset',
      'ds',
      '--preset',
      'auto',
      '-o',
      'run',
      '--steps',
      '2',
      '--feat-size',
      '4,8,16,32',
      '--hidden-size',
      '16',
      '--depths',
      '1,1,1,1',
      '--crops',
      '1',
      '--workers',
      '1',
      '--val-every',
      '2',
    ]);
    const steps = readFileSync(join(app, 'run', 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      steps.map((s) => s.step),
      [1, 2],
    );
    assert.equal(steps[1].val_dice.length, 2);
    const manifest = JSON.parse(readFileSync(join(app, 'run', 'model', 'model.json'), 'utf8'));
    assert.deepEqual(manifest.network.featSize, [4, 8, 16, 32]);
    assert.deepEqual(manifest.training.split.train.length + manifest.training.split.val.length, 3);
  });

  it('import works from the installed package', () => {
    const r = run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "import { UXNet, runTraining, preprocessDataset, nifti } from 'uxnet3d'; console.log(UXNet.countParameters({ inChans: 1, outChans: 13 }), typeof runTraining, typeof preprocessDataset, typeof nifti.readNiftiFile);",
      ],
      app,
    );
    assert.equal(r.stdout.trim(), '53006461 function function function');
  });
});
