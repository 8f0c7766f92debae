/**
 * `uxnet forward --roi ...` (sliding-window inference) as a real process from the built CLI, against
 * the MONAI 0.9.0 fixture cases sw_gaussian and sw_pad_gaussian (roi 32³, sw_batch_size 2, overlap
 * 0.5, gaussian), plus the flag checks. One backend is enough: the model itself is checked on every
 * backend by the parity suite.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initTestBackends, testBackends } from '../helpers/backends.js';
import { FIXTURES, get, maxAbs, maxAbsDiff } from '../helpers/fixtures.js';
import { uxnet, assertUserError } from '../helpers/cli.js';
import { readSafetensorsFile, writeSafetensorsFile } from '../../src/io/safetensors.js';

await initTestBackends();

const SW = 'tiny_sliding_window.safetensors';
const backends = testBackends();
const backend = backends.includes('native') ? 'native' : backends[0]!;

const uxnetCli = (args: string[]) => uxnet(args, { timeoutMs: 180000 });

describe(`uxnet forward --roi (sliding window) [${backend}]`, () => {
  let dir: string;
  let cfg: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'uxnet-forward-sw-'));
    cfg = join(dir, 'tiny.json');
    writeFileSync(cfg, JSON.stringify({ in_chans: 1, out_chans: 3, depths: [2, 2, 2, 2], feat_size: [8, 16, 32, 64], hidden_size: 128 }));
    for (const c of ['sw_gaussian', 'sw_pad_gaussian']) {
      const x = get(SW, `${c}.input`);
      await writeSafetensorsFile(join(dir, `${c}.safetensors`), [['input', { shape: x.shape, data: x.data }]]);
    }
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const c of ['sw_gaussian', 'sw_pad_gaussian']) {
    it(`${c}: MONAI's output within 2e-5·max|ref|`, async () => {
      const out = join(dir, `${c}.out.safetensors`);
      // The pth weights here: the same tensors as tiny_weights.safetensors (see the import-pth test).
      const weights = join(FIXTURES, c === 'sw_gaussian' ? 'tiny_weights.safetensors' : 'tiny_weights.pth');
      const r = uxnetCli([
        'forward',
        '--config',
        cfg,
        '--weights',
        weights,
        '--input',
        join(dir, `${c}.safetensors`),
        '--output',
        out,
        '--backend',
        backend,
        '--roi',
        '32,32,32',
        '--overlap',
        '0.5',
        '--sw-batch',
        '2',
        '--mode',
        'gaussian',
      ]);
      assert.equal(r.status, 0, r.stderr);
      const ref = get(SW, `${c}.output`);
      assert.match(r.stdout, new RegExp(`wrote logits \\[${ref.shape.join(', ')}\\]`));
      assert.match(r.stderr, new RegExp(`windows ${c === 'sw_gaussian' ? 8 : 4}/${c === 'sw_gaussian' ? 8 : 4} \\(100%\\)`));
      const { tensors, metadata } = await readSafetensorsFile(out);
      const logits = tensors.get('logits')!;
      assert.deepEqual(logits.shape, ref.shape);
      const dev = maxAbsDiff(logits.data, ref.data);
      assert.ok(dev <= 2e-5 * maxAbs(ref.data), `max |diff| ${dev} > 2e-5 * ${maxAbs(ref.data)}`);
      assert.deepEqual(
        { roi: metadata.roi, overlap: metadata.overlap, sw_batch_size: metadata.sw_batch_size, mode: metadata.mode },
        { roi: '32,32,32', overlap: '0.5', sw_batch_size: '2', mode: 'gaussian' },
      );
    });
  }

  it('MONAI defaults without --overlap/--sw-batch/--mode: 0.25, 1, constant', async () => {
    const small = join(dir, 'small.safetensors');
    await writeSafetensorsFile(small, [['input', { shape: [1, 1, 20, 12, 9], data: new Float32Array(20 * 12 * 9).map((_, i) => Math.sin(i)) }]]);
    const out = join(dir, 'small.out.safetensors');
    const r = uxnetCli([
      'forward',
      '--config',
      cfg,
      '--weights',
      join(FIXTURES, 'tiny_weights.safetensors'),
      '--input',
      small,
      '--output',
      out,
      '--backend',
      backend,
      '--roi',
      '32,32,32',
    ]);
    assert.equal(r.status, 0, r.stderr);
    const { tensors, metadata } = await readSafetensorsFile(out);
    assert.deepEqual(tensors.get('logits')!.shape, [1, 3, 20, 12, 9]);
    assert.deepEqual({ overlap: metadata.overlap, sw_batch_size: metadata.sw_batch_size, mode: metadata.mode }, { overlap: '0.25', sw_batch_size: '1', mode: 'constant' });
  });

  it('flag mistakes: one-line messages, non-zero exit, no output', async () => {
    const out = join(dir, 'never.safetensors');
    const base = [
      'forward',
      '--config',
      cfg,
      '--weights',
      join(FIXTURES, 'tiny_weights.safetensors'),
      '--input',
      join(dir, 'sw_pad_gaussian.safetensors'),
      '--output',
      out,
      '--backend',
      backend,
    ];
    const cases: [string[], RegExp][] = [
      [['--roi', '32,32'], /--roi '32,32': expected three positive multiples of 16/],
      [['--roi', '32,30,32'], /--roi '32,30,32'/],
      [['--roi', '0,32,32'], /--roi '0,32,32'/],
      [['--roi', '16,16,16'], /--roi 16,16,16: .*1×1×1 bottleneck/],
      [['--roi', '32,32,32', '--overlap', '1'], /--overlap '1': expected a number in \[0, 1\)/],
      [['--roi', '32,32,32', '--overlap', '-0.1'], /--overlap '-0\.1'/],
      [['--roi', '32,32,32', '--sw-batch', '0'], /--sw-batch '0': expected a positive integer/],
      [['--roi', '32,32,32', '--sw-batch', '1.5'], /--sw-batch '1\.5'/],
      [['--roi', '32,32,32', '--mode', 'linear'], /--mode 'linear': expected 'gaussian' or 'constant'/],
      [['--overlap', '0.5', '--mode', 'gaussian'], /--overlap, --mode only apply to sliding-window inference: add --roi/],
    ];
    for (const [extra, re] of cases) assertUserError(uxnetCli([...base, ...extra]), re);
    // Without --roi the whole-volume rule still applies and points at sliding windows.
    assertUserError(uxnet(base), /multiple of 16.*sliding-window/);
    // With --roi the channel count is still checked.
    const twoChan = join(dir, 'two.safetensors');
    await writeSafetensorsFile(twoChan, [['input', { shape: [1, 2, 20, 12, 9], data: new Float32Array(2 * 20 * 12 * 9) }]]);
    assertUserError(
      uxnetCli([...base.map((a) => (a.endsWith('sw_pad_gaussian.safetensors') ? twoChan : a)), '--roi', '32,32,32']),
      /shape \[1, 2, 20, 12, 9\] is not \[N, 1, D, H, W\]/,
    );
    assert.ok(!existsSync(out));
  });
});
