/**
 * One user-facing error type, mapped once: every I/O, config, model, weights and NIfTI error extends
 * InputError; the CLI turns it (and a failed file-system call) into one line and an exit code, and
 * anything else (a bug) into its stack trace with exit 70; the browser app asks the same question.
 * Also: --version, every command in the top-level help, and the commands other than predict leave
 * nothing behind when they fail and check their outputs first.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../../src/engine/errors.js';
import { reportError, buildProgram } from '../../src/cli/main.js';
import { UserError, describeOsError } from '../../src/cli/errors.js';
import { isInputError } from '../../src/browser/errors.js';
import { NiftiError } from '../../src/io/nifti/errors.js';
import { VolumeError } from '../../src/data/nifti-volume.js';
import { SafetensorsError } from '../../src/io/safetensors-format.js';
import { PthError } from '../../src/io/pth-format.js';
import { ZipError } from '../../src/io/zip-format.js';
import { PickleError } from '../../src/io/pickle.js';
import { WeightsFormatError } from '../../src/io/weights-format.js';
import { ModelFolderError } from '../../src/infer/model-manifest.js';
import { UXNetConfigError } from '../../src/models/config.js';
import { UXNetInputError } from '../../src/models/uxnet.js';
import { StateDictError } from '../../src/nn/module.js';
import { TrainConfigError } from '../../src/train/config.js';
import { TrainRunError } from '../../src/train/run.js';
import { validateSteps } from '../../src/data/pipeline.js';
import { loadPreset } from '../../src/data/presets.js';
import { uxnet, assertUserError, ROOT } from '../helpers/cli.js';
import { writeTinyModelFolder } from '../helpers/tiny-model.js';

describe('one user-facing error type', () => {
  it('every I/O, config, model, weights and NIfTI error is an InputError', () => {
    const errors: Error[] = [
      new NiftiError('BAD_MAGIC', 'bad magic', 'x.nii'),
      new VolumeError('v'),
      new SafetensorsError('s'),
      new PthError('p'),
      new ZipError('z'),
      new PickleError('k'),
      new WeightsFormatError('w'),
      new ModelFolderError('m'),
      new UXNetConfigError('c'),
      new UXNetInputError('i'),
      new StateDictError({ missing: ['a'], unexpected: [], mismatched: [], loaded: [] } as never),
      new TrainConfigError('t'),
      new TrainRunError('r'),
      new UserError('u'),
    ];
    for (const e of errors) {
      assert.ok(e instanceof InputError, `${e.name} extends InputError`);
      assert.ok(isInputError(e), `${e.name} is shown as input in the browser`);
    }
    assert.throws(
      () => validateSteps([{ op: 'nope' }], 'plan.json'),
      (e: unknown) => e instanceof InputError && /^plan\.json: \[0\]\.op: unknown op "nope"/.test(e.message),
    );
    assert.throws(
      () => loadPreset('no-such-preset'),
      (e: unknown) => e instanceof InputError && /unknown preset 'no-such-preset'/.test(e.message),
    );
    assert.equal(isInputError(new TypeError('x is undefined')), false);
  });

  it('the CLI maps them once: one line and the exit code; OS errors name the path; bugs keep the trace', () => {
    assert.deepEqual(reportError(new NiftiError('TRUNCATED_DATA', 'data ends early', 'a.nii')), { text: 'uxnet: a.nii: data ends early\n', exitCode: 2 });
    assert.deepEqual(reportError(new UserError('3 of 5 case(s) failed', 1)), { text: 'uxnet: 3 of 5 case(s) failed\n', exitCode: 1 });
    assert.deepEqual(reportError(new InputError('config.json: bad\nvalue')), { text: 'uxnet: config.json: bad value\n', exitCode: 2 }, 'one line even if the message had two');
    const os = (code: string, syscall: string, path: string, dest?: string) => Object.assign(new Error(`${code}: ${syscall} '${path}'`), { code, syscall, path, dest });
    assert.deepEqual(reportError(os('ENOSPC', 'write', '/data/out.nii.gz')), {
      text: "uxnet: cannot write '/data/out.nii.gz': no space left on the device (ENOSPC)\n",
      exitCode: 1,
    });
    assert.equal(describeOsError(os('EACCES', 'open', '/root/x')), "cannot open '/root/x': permission denied (EACCES)");
    assert.equal(describeOsError(os('EEXIST', 'mkdir', 'out')), "cannot create folder 'out': already exists (EEXIST)");
    assert.equal(describeOsError(os('ENOTDIR', 'open', 'f/x')), "cannot open 'f/x': a part of the path is a file, not a folder (ENOTDIR)");
    assert.equal(describeOsError(os('EISDIR', 'open', 'd')), "cannot open 'd': is a folder, not a file (EISDIR)");
    assert.equal(
      describeOsError(os('ENOSPC', 'rename', 'o.tmp-1', 'o.nii.gz')),
      "cannot write 'o.nii.gz': no space left on the device (ENOSPC)",
      'a rename names its target, not the temporary file',
    );
    const bug = reportError(new TypeError("Cannot read properties of undefined (reading 'shape')"));
    assert.equal(bug.exitCode, 70);
    assert.match(bug.text, /^uxnet: internal error: TypeError: Cannot read properties of undefined \(reading 'shape'\)\n\s+at /);
  });

  it("--version prints package.json's version; the top-level help lists every command", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const v = uxnet(['--version']);
    assert.equal(v.status, 0);
    assert.equal(v.stdout.trim(), pkg.version);
    const help = uxnet(['--help']).stdout;
    const names = buildProgram().commands.map((c) => c.name());
    assert.ok(names.length >= 9);
    for (const n of names) assert.match(help, new RegExp(`^\\s+${n}\\b`, 'm'), `'${n}' in the help`);
  });
});

describe('output into a pipe whose reader has gone', () => {
  it('is dropped quietly: the command finishes its files and exits 0, no stack trace', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'uxnet-epipe-'));
    try {
      const ev = (d: number[]) => ({ classes: [{ label: 1, name: 'a' }], cases: d.map((x, i) => ({ caseId: `c${i}`, classes: [{ label: 1, dice: x, hd95: 1, nsd: 1 }] })) });
      writeFileSync(join(dir, 'x.json'), JSON.stringify(ev([0.5, 0.6, 0.7])));
      writeFileSync(join(dir, 'y.json'), JSON.stringify(ev([0.6, 0.7, 0.9])));
      const child = spawn(process.execPath, [join(ROOT, 'bin', 'uxnet.js'), 'compare', join(dir, 'x.json'), join(dir, 'y.json'), '-o', join(dir, 'out')], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      // the reader goes before the command has written anything
      child.stdout.destroy();
      let stderr = '';
      child.stderr.on('data', (b) => (stderr += b));
      const code = await new Promise((res) => child.on('close', res));
      assert.equal(stderr, '');
      assert.equal(code, 0);
      assert.ok(existsSync(join(dir, 'out', 'compare.md')) && existsSync(join(dir, 'out', 'compare-dice.png')));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('other commands: -m MODEL_DIR, outputs checked first, nothing left behind', () => {
  let dir: string;
  let model: string;
  const env = { UXNET_QUIET: '1', UXNET_THREADS: '1' };
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'uxnet-errors-'));
    model = join(dir, 'model');
    const manifest = await writeTinyModelFolder(model);
    writeFileSync(join(dir, 'cfg.json'), JSON.stringify(manifest.network));
    const { writeSafetensorsFile } = await import('../../src/io/safetensors.js');
    const x = Float32Array.from({ length: 32 * 32 * 32 }, (_, i) => Math.sin(i));
    await writeSafetensorsFile(join(dir, 'x.safetensors'), [['input', { shape: [1, 1, 32, 32, 32], data: x }]]);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('forward -m gives the same logits as --config + --weights', () => {
    const a = uxnet(['forward', '-m', model, '--input', join(dir, 'x.safetensors'), '--output', join(dir, 'a.safetensors')], { env });
    assert.equal(a.status, 0, a.stderr);
    const b = uxnet(
      [
        'forward',
        '--config',
        join(dir, 'cfg.json'),
        '--weights',
        join(model, 'weights.safetensors'),
        '--input',
        join(dir, 'x.safetensors'),
        '--output',
        join(dir, 'b.safetensors'),
      ],
      { env },
    );
    assert.equal(b.status, 0, b.stderr);
    const strip = (p: string) =>
      readFileSync(p)
        .toString('latin1')
        .replace(/"backend":"[^"]*"/, '');
    assert.equal(strip(join(dir, 'a.safetensors')), strip(join(dir, 'b.safetensors')));
    assertUserError(
      uxnet(['forward', '-m', model, '--config', join(dir, 'cfg.json'), '--input', join(dir, 'x.safetensors'), '--output', join(dir, 'c.safetensors')], { env }),
      /either -m MODEL_DIR or --config and --weights, not both/,
    );
    assertUserError(
      uxnet(['forward', '--config', join(dir, 'cfg.json'), '--input', join(dir, 'x.safetensors'), '--output', join(dir, 'c.safetensors')], { env }),
      /the model is missing: .*\(--weights is missing\)/,
    );
    assertUserError(
      uxnet(['forward', '-m', model, '--input', join(dir, 'x.safetensors'), '--output', join(dir, 'x.safetensors')], { env }),
      /output '.*x\.safetensors' is the file '.*x\.safetensors' this command reads/,
    );
  });

  it('export-onnx -m writes the same ONNX bytes as --config + --weights, atomically', () => {
    const a = uxnet(['export-onnx', '-m', model, '-o', join(dir, 'a.onnx')], { env });
    assert.equal(a.status, 0, a.stderr);
    const b = uxnet(['export-onnx', '--config', join(dir, 'cfg.json'), '--weights', join(model, 'weights.safetensors'), '-o', join(dir, 'b.onnx')], { env });
    assert.equal(b.status, 0, b.stderr);
    assert.deepEqual(readFileSync(join(dir, 'a.onnx')), readFileSync(join(dir, 'b.onnx')));
    writeFileSync(join(dir, 'file'), '');
    assertUserError(
      uxnet(['export-onnx', '-m', model, '-o', join(dir, 'file', 'm.onnx')], { env }),
      /cannot write output file '.*file\/m\.onnx': '.*file' is a file, not a folder/,
    );
  });

  it('transform and demo refuse an unusable output before reading anything and leave no folder', () => {
    const file = join(dir, 'occupied');
    writeFileSync(file, 'x');
    const img = join(ROOT, 'datasets', 'msd-hippocampus', 'imagesTr', 'hippocampus_001.nii.gz');
    assertUserError(uxnet(['transform', '-i', img, '--preset', 'flare', '-o', file], { env }), /output folder '.*occupied' is a file, not a folder/);
    assertUserError(uxnet(['transform', '-i', join(dir, 'missing.nii.gz'), '--preset', 'flare', '-o', join(dir, 't-out')], { env }), /missing\.nii\.gz: no such file/);
    assert.equal(existsSync(join(dir, 't-out')), false);
    assertUserError(uxnet(['demo', '--limit', '1', '-o', join(file, 'demo')], { env }), /output folder '.*occupied\/demo' cannot be created: '.*occupied' is a file, not a folder/);
    mkdirSync(join(dir, 'empty-model'));
    assertUserError(uxnet(['demo', '--limit', '1', '-m', join(dir, 'empty-model'), '-o', join(dir, 'demo-out')], { env }), /no model at/);
    assert.equal(existsSync(join(dir, 'demo-out')), false);
  });
});
