/**
 * `uxnet predict` never destroys what a user has and fails before computing: an output that is an
 * input (same file, through a symlink or a relative path, or a same-folder run whose names collide)
 * is refused, as are a file name for a folder of inputs, two inputs written to one output, existing
 * files uxnet did not write (without --force) and unwritable locations; failures leave no folder
 * behind. Odd inputs: a folder run goes on past bad cases and lists them, 2-D and all-NaN images
 * are errors, NaN voxels and constant images are warnings, --fast is refused up front when the
 * model offers no fast spacing.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { decodeRaw, writeNiftiFile, readNiftiFile } from '../../src/io/nifti/index.js';
import { mat4 } from '../../src/io/nifti/mat4.js';
import { uxnet as runCli, assertUserError, ROOT } from '../helpers/cli.js';
import { writeTinyModelFolder } from '../helpers/tiny-model.js';

const env = { UXNET_QUIET: '1', UXNET_THREADS: '1' };
const uxnet = (...args: string[]) => runCli(args, { env });
const AFFINE = mat4([
  [1, 0, 0, 0],
  [0, 1, 0, 0],
  [0, 0, 1, 0],
  [0, 0, 0, 1],
]);

function blob(shape: [number, number, number], seed = 1): Float32Array {
  const [X, Y, Z] = shape;
  const a = new Float32Array(X * Y * Z);
  let s = seed;
  for (let x = 0; x < X; x++)
    for (let y = 0; y < Y; y++)
      for (let z = 0; z < Z; z++) {
        s = (Math.imul(s, 1103515245) + 12345) >>> 0;
        const r = ((x - X / 2) / 5) ** 2 + ((y - Y / 2) / 6) ** 2 + ((z - Z / 2) / 4) ** 2;
        a[(x * Y + y) * Z + z] = (r < 1 ? 200 : 100) + (s / 4294967296) * 20;
      }
  return a;
}

describe('uxnet predict: safety and odd inputs', () => {
  let dir: string;
  let model: string;
  let img: string;
  const S: [number, number, number] = [20, 22, 18];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'uxnet-predict-safety-'));
    model = join(dir, 'model');
    await writeTinyModelFolder(model);
    img = join(dir, 'in', 'a.nii.gz');
    mkdirSync(join(dir, 'in'));
    await writeNiftiFile(img, { data: blob(S), shape: S, affine: AFFINE });
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses an output that is the input: same path, through a symlink, through a relative path', () => {
    const before = readFileSync(img);
    const link = join(dir, 'link.nii.gz');
    symlinkSync(img, link);
    const rel = relative(ROOT, join(dir, 'in', '..', 'in', 'a.nii.gz'));
    for (const [i, o] of [
      [img, img],
      [link, img],
      [img, link],
      [img, rel],
    ] as const) {
      assertUserError(uxnet('predict', '-i', i, '-o', o, '-m', model), /would replace the input .*predict never overwrites an input/);
    }
    assert.deepEqual(readFileSync(img), before, 'the input is untouched');
  });

  it('refuses -i DIR -o DIR when names collide, and -i DIR -o file.nii.gz with the reason', () => {
    assertUserError(uxnet('predict', '-i', join(dir, 'in'), '-o', join(dir, 'in'), '-m', model), /output '.*a\.nii\.gz' would replace the input '.*a\.nii\.gz'/);
    symlinkSync(join(dir, 'in'), join(dir, 'in-link'));
    assertUserError(uxnet('predict', '-i', join(dir, 'in'), '-o', join(dir, 'in-link'), '-m', model), /output '.*in-link\/a\.nii\.gz' would replace the input '.*in\/a\.nii\.gz'/);
    const r = uxnet('predict', '-i', join(dir, 'in'), '-o', join(dir, 'x.nii.gz'), '-m', model);
    assertUserError(r, /input '.*in' is a folder, so --output must be a folder too, but '.*x\.nii\.gz' is a file name/);
    assert.equal(existsSync(join(dir, 'x.nii.gz')), false, 'no folder named x.nii.gz');
  });

  it('segments -i DIR -o DIR when nothing collides (MSD _0000 inputs give case-named labels)', async () => {
    const d = join(dir, 'msd');
    mkdirSync(d);
    copyFileSync(img, join(d, 'case_0000.nii.gz'));
    const r = uxnet('predict', '-i', d, '-o', d, '-m', model);
    assert.equal(r.status, 0, r.stderr);
    const pred = await readNiftiFile(join(d, 'case.nii.gz'));
    assert.deepEqual(pred.shape, S);
    assert.deepEqual(readFileSync(join(d, 'case_0000.nii.gz')), readFileSync(img));
  });

  it('-i FILE -o DIR/ writes DIR/<case>.nii.gz, creating DIR', async () => {
    const r = uxnet('predict', '-i', img, '-o', join(dir, 'into') + '/', '-m', model);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual((await readNiftiFile(join(dir, 'into', 'a.nii.gz'))).shape, S);
  });

  it('refuses two inputs that would be written to one output', () => {
    const d = join(dir, 'dup');
    mkdirSync(d);
    copyFileSync(img, join(d, 'b.nii.gz'));
    writeFileSync(join(d, 'b.nii'), readFileSync(img));
    assertUserError(uxnet('predict', '-i', d, '-o', join(dir, 'dup-out'), '-m', model), /inputs '.*b\.nii' and '.*b\.nii\.gz' would both be written to '.*b\.nii\.gz'/);
    assert.equal(existsSync(join(dir, 'dup-out')), false);
  });

  it('replaces its own earlier predictions but no other existing file unless --force', async () => {
    const out = join(dir, 'own.nii.gz');
    assert.equal(uxnet('predict', '-i', img, '-o', out, '-m', model).status, 0);
    const again = uxnet('predict', '-i', img, '-o', out, '-m', model);
    assert.equal(again.status, 0, again.stderr);
    const foreign = join(dir, 'foreign.nii.gz');
    copyFileSync(img, foreign); // someone's MRI, not a uxnet prediction
    assertUserError(uxnet('predict', '-i', img, '-o', foreign, '-m', model), /'.*foreign\.nii\.gz' already exists and was not written by uxnet; pass --force/);
    assert.deepEqual(readFileSync(foreign), readFileSync(img));
    const forced = uxnet('predict', '-i', img, '-o', foreign, '-m', model, '--force');
    assert.equal(forced.status, 0, forced.stderr);
    assert.equal((await readNiftiFile(foreign)).header.descrip, 'uxnet3d tiny');
  });

  it('checks output locations before any compute: parent is a file, output is a folder, unwritable folder', (t) => {
    const file = join(dir, 'plain.txt');
    writeFileSync(file, 'x');
    assertUserError(uxnet('predict', '-i', img, '-o', join(file, 'p.nii.gz'), '-m', model), /output folder '.*plain\.txt' is a file, not a folder/);
    assertUserError(uxnet('predict', '-i', img, '-o', join(file, 'deeper', 'p.nii.gz'), '-m', model), /cannot be created: '.*plain\.txt' is a file, not a folder/);
    mkdirSync(join(dir, 'isdir', 'a.nii.gz'), { recursive: true });
    assertUserError(uxnet('predict', '-i', img, '-o', join(dir, 'isdir'), '-m', model), /cannot write output '.*isdir\/a\.nii\.gz': it is a folder \(EISDIR\)/);
    if (process.getuid?.() === 0) {
      t.diagnostic('EACCES case skipped: root ignores folder permissions');
      return;
    }
    const ro = join(dir, 'readonly');
    mkdirSync(ro);
    chmodSync(ro, 0o555);
    assertUserError(uxnet('predict', '-i', img, '-o', join(ro, 'p.nii.gz'), '-m', model), /output folder '.*readonly' is not writable \(EACCES\)/);
    assertUserError(uxnet('predict', '-i', img, '-o', join(ro, 'sub', 'p.nii.gz'), '-m', model), /cannot be created: '.*readonly' is not writable \(EACCES\)/);
    chmodSync(ro, 0o755);
  });

  it('malformed model folders and weights: one line naming the file, and no output folder left behind', () => {
    // [what, how the folder is spoilt, the file the message must name (once), the message]
    const cases: [string, (d: string) => void, string, RegExp][] = [
      [
        'truncated weights',
        (d) => {
          const w = readFileSync(join(model, 'weights.safetensors'));
          writeFileSync(join(d, 'weights.safetensors'), w.subarray(0, w.length >> 1));
        },
        'weights.safetensors',
        /weights\.safetensors: .*(truncated|ends|bytes)/,
      ],
      ['text as weights', (d) => writeFileSync(join(d, 'weights.safetensors'), 'these are not weights\n'), 'weights.safetensors', /weights\.safetensors: /],
      ['header-only weights', (d) => writeFileSync(join(d, 'weights.safetensors'), Buffer.from([1, 0, 0, 0])), 'weights.safetensors', /weights\.safetensors: /],
      [
        'garbage .pth',
        (d) => {
          rmSync(join(d, 'weights.safetensors'));
          writeFileSync(join(d, 'weights.pth'), 'PK not really');
        },
        'weights.pth',
        /weights\.pth: /,
      ],
      ['model.json not JSON', (d) => writeFileSync(join(d, 'model.json'), '{ "format": '), 'model.json', /model\.json: not valid JSON/],
      [
        'model.json wrong format',
        (d) => writeFileSync(join(d, 'model.json'), JSON.stringify({ format: 'other/1' })),
        'model.json',
        /model\.json: format: expected "uxnet3d-model\/1", got "other\/1"/,
      ],
      [
        'model.json with too few labels',
        (d) => {
          const m = JSON.parse(readFileSync(join(model, 'model.json'), 'utf8'));
          m.labels = { 0: 'bg' };
          writeFileSync(join(d, 'model.json'), JSON.stringify(m));
        },
        'model.json',
        /model\.json: labels: names 1 classes but the network has 3 outputs/,
      ],
      [
        'weights of another network',
        (d) => {
          const m = JSON.parse(readFileSync(join(model, 'model.json'), 'utf8'));
          m.network.hiddenSize = 32;
          writeFileSync(join(d, 'model.json'), JSON.stringify(m));
        },
        'weights.safetensors',
        /weights\.safetensors does not fit .*model\.json: /,
      ],
    ];
    for (const [i, [what, spoil, named, re]] of cases.entries()) {
      const d = join(dir, `bad-model-${i}`);
      mkdirSync(d);
      for (const f of ['model.json', 'weights.safetensors']) copyFileSync(join(model, f), join(d, f));
      spoil(d);
      const out = join(dir, `never-${i}`, 'sub', 'p.nii.gz');
      const r = uxnet('predict', '-i', img, '-o', out, '-m', d);
      assertUserError(r, re);
      assert.equal(r.stderr.split(join(d, named)).length - 1, 1, `${what}: ${named} is named once: ${r.stderr}`);
      assert.equal(existsSync(join(dir, `never-${i}`)), false, `${what}: no output folder`);
    }
    assertUserError(uxnet('predict', '-i', img, '-o', join(dir, 'n.nii.gz'), '-m', join(dir, 'nope')), /model folder '.*nope' does not exist/);
    assertUserError(uxnet('predict', '-i', img, '-o', join(dir, 'n.nii.gz'), '-m', img), /model '.*a\.nii\.gz' is a file/);
  });

  it('a folder run continues past bad cases, lists every failure and exits non-zero; --fail-fast stops at the first', async () => {
    const d = join(dir, 'mixed');
    mkdirSync(d);
    copyFileSync(img, join(d, 'a.nii.gz'));
    writeFileSync(join(d, 'b.nii.gz'), 'not an image');
    await writeNiftiFile(join(d, 'c.nii.gz'), { data: blob([20, 22, 1]), shape: [20, 22], affine: AFFINE });
    copyFileSync(img, join(d, 'd.nii.gz'));
    const out = join(dir, 'mixed-out');
    const r = uxnet('predict', '-i', d, '-o', out, '-m', model);
    assert.equal(r.status, 1, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 3, r.stderr);
    assert.match(lines[0]!, /failed: .*b\.nii\.gz: /);
    assert.match(lines[1]!, /failed: .*c\.nii\.gz: a 2-D image \(20x22x1\); the network is 3-D/);
    assert.equal(lines[2], 'uxnet: 2 of 4 case(s) failed (listed above); the other 2 were written');
    assert.ok(existsSync(join(out, 'a.nii.gz')) && existsSync(join(out, 'd.nii.gz')));
    assert.equal(existsSync(join(out, 'c.nii.gz')), false);
    const ff = uxnet('predict', '-i', d, '-o', join(dir, 'ff-out'), '-m', model, '--fail-fast');
    assertUserError(ff, /b\.nii\.gz: /);
    assert.equal(existsSync(join(dir, 'ff-out', 'd.nii.gz')), false, 'stopped at the first failure');
  });

  it('a 2-D image or one with no finite voxel is an error; NaN voxels and a constant image are warnings', async () => {
    const flat = join(dir, 'flat.nii.gz');
    await writeNiftiFile(flat, { data: blob([20, 22, 1]), shape: [20, 22, 1], affine: AFFINE });
    assertUserError(uxnet('predict', '-i', flat, '-o', join(dir, 'o1', 'p.nii.gz'), '-m', model), /flat\.nii\.gz: a 2-D image \(20x22x1\)/);
    assert.equal(existsSync(join(dir, 'o1')), false);
    const nan = join(dir, 'nan.nii.gz');
    await writeNiftiFile(nan, { data: new Float32Array(20 * 22 * 18).fill(NaN), shape: S, affine: AFFINE });
    assertUserError(uxnet('predict', '-i', nan, '-o', join(dir, 'o2.nii.gz'), '-m', model), /nan\.nii\.gz: no voxel is finite \(all 7920 are NaN or infinite\)/);
    // Three bad voxels are replaced by the lowest finite value: the labels equal those of that image.
    const data = blob(S);
    const lo = data.reduce((m, v) => Math.min(m, v), Infinity);
    const holes = data.slice();
    holes[5] = NaN;
    holes[77] = Infinity;
    holes[300] = -Infinity;
    const filled = data.slice();
    filled[5] = filled[77] = filled[300] = lo;
    await writeNiftiFile(join(dir, 'holes.nii.gz'), { data: holes, shape: S, affine: AFFINE });
    await writeNiftiFile(join(dir, 'filled.nii.gz'), { data: filled, shape: S, affine: AFFINE });
    const r = uxnet('predict', '-i', join(dir, 'holes.nii.gz'), '-o', join(dir, 'holes-out.nii.gz'), '-m', model);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`^uxnet: warning: .*holes\\.nii\\.gz: 3 of 7920 voxels are NaN or infinite; they were set to the lowest finite value \\(${lo}\\)$`, 'm'));
    assert.equal(uxnet('predict', '-i', join(dir, 'filled.nii.gz'), '-o', join(dir, 'filled-out.nii.gz'), '-m', model).status, 0);
    assert.deepEqual(decodeRaw(await readNiftiFile(join(dir, 'holes-out.nii.gz'))), decodeRaw(await readNiftiFile(join(dir, 'filled-out.nii.gz'))));
    const flatValue = join(dir, 'constant.nii.gz');
    await writeNiftiFile(flatValue, { data: new Float32Array(20 * 22 * 18).fill(7), shape: S, affine: AFFINE });
    const c = uxnet('predict', '-i', flatValue, '-o', join(dir, 'constant-out.nii.gz'), '-m', model);
    assert.equal(c.status, 0, c.stderr);
    assert.match(c.stderr, /^uxnet: warning: .*constant\.nii\.gz: every voxel has the value 7 \(a blank image\); any labels found in it are meaningless$/m);
  });

  it('--fast is refused before anything is written when the model offers no fast spacing, and works when it does', async () => {
    const out = join(dir, 'fast-none', 'p.nii.gz');
    assertUserError(uxnet('predict', '-i', img, '-o', out, '-m', join(ROOT, 'models', 'hippocampus'), '--fast'), /--fast: model 'hippocampus' offers no faster spacing/);
    assert.equal(existsSync(join(dir, 'fast-none')), false);
    const fastModel = join(dir, 'fast-model');
    await writeTinyModelFolder(fastModel, { fastPixdim: [2, 2, 2] });
    const r = uxnet('predict', '-i', img, '-o', join(dir, 'fast.nii.gz'), '-m', fastModel, '--fast');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /a: 20x22x18 -> network 10x12x10,/);
    assert.deepEqual((await readNiftiFile(join(dir, 'fast.nii.gz'))).shape, S, 'labels on the input grid');
  });

  it('--split/--fold segment only the held-out cases of a split, and refuse one whose images are not all there', async () => {
    const d = join(dir, 'dataset');
    mkdirSync(d);
    copyFileSync(img, join(d, 'x_0000.nii.gz'));
    await writeNiftiFile(join(d, 'y_0000.nii.gz'), { data: blob(S, 7), shape: S, affine: AFFINE });
    await writeNiftiFile(join(d, 'z.nii.gz'), { data: blob(S, 9), shape: S, affine: AFFINE });
    const splits = join(dir, 'folds.json');
    writeFileSync(
      splits,
      JSON.stringify({
        folds: [
          ['x', 'z'],
          ['y', 'w'],
        ],
      }),
    );
    const out = join(dir, 'held-out');
    const r = uxnet('predict', '-i', d, '-o', out, '-m', model, '--split', splits, '--fold', '0');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /, 2 case\(s\) \(the held-out cases of fold 0 of 2 in '.*folds\.json'\)/);
    assert.deepEqual(readdirSync(out).sort(), ['x.nii.gz', 'z.nii.gz']);
    // The same labels as segmenting that image alone.
    const alone = join(dir, 'z-alone.nii.gz');
    assert.equal(uxnet('predict', '-i', join(d, 'z.nii.gz'), '-o', alone, '-m', model).status, 0);
    assert.deepEqual(decodeRaw(await readNiftiFile(join(out, 'z.nii.gz'))), decodeRaw(await readNiftiFile(alone)));

    const never = join(dir, 'held-out-never');
    assertUserError(
      uxnet('predict', '-i', d, '-o', never, '-m', model, '--split', splits, '--fold', '1'),
      /^uxnet: 1 of the 2 held-out case\(s\) of fold 1 of 2 in '.*folds\.json' have no image in '.*dataset': w$/,
    );
    assertUserError(
      uxnet('predict', '-i', join(d, 'z.nii.gz'), '-o', never, '-m', model, '--split', splits, '--fold', '0'),
      /^uxnet: --split picks cases from a folder of images, but '.*z\.nii\.gz' is one file/,
    );
    assertUserError(uxnet('predict', '-i', d, '-o', never, '-m', model, '--fold', '0'), /^uxnet: --fold picks a fold of a split/);
    assert.equal(existsSync(never), false, 'nothing written');
  });
});
