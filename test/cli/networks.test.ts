/**
 * The external-check contract for SwinUNETR and UNETR, run as real processes: `uxnet forward --config
 * cfg.json --weights w --input x.safetensors --input-key K --output y.safetensors --backend B` with the
 * fixtures' own <model>_config.json (constructor_args) and with a flat config, checked against MONAI
 * 0.9.0's logits; `import-pth` checked against --config; one-line user errors.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES } from '../helpers/fixtures.js';
import { BASELINES, checkForward } from '../helpers/baselines.js';
import { uxnet, assertUserError } from '../helpers/cli.js';
import { readSafetensorsFile } from '../../src/io/safetensors.js';

const F = (f: string) => join(FIXTURES, BASELINES, f);
const cli = (args: string[]) => uxnet(args, { timeoutMs: 600_000, env: { UXNET_THREADS: process.env.UXNET_THREADS ?? '2' } });
// The CPU backends: this file checks the command-line contract; the parity suite covers every backend.
const BACKENDS = (process.env.UXNET_TEST_BACKENDS?.split(',') ?? ['reference', 'native']).filter((b) => b === 'reference' || b === 'native');

describe('uxnet forward / import-pth with SwinUNETR and UNETR', () => {
  let dir: string;
  let flatSwin: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'uxnet-networks-'));
    const { constructor_args } = JSON.parse(readFileSync(F('swin_unetr_config.json'), 'utf8'));
    flatSwin = join(dir, 'swin_flat.json');
    writeFileSync(flatSwin, JSON.stringify({ network: 'swin_unetr', ...constructor_args }));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const backend of BACKENDS) {
    if (backend === 'native' && !existsSync(join(FIXTURES, '..', '..', 'build', 'Release'))) continue;

    it(`[${backend}] UNETR: the fixture config (constructor_args) and the .pth weights give MONAI's logits`, async () => {
      const out = join(dir, `unetr-${backend}.safetensors`);
      const r = cli([
        'forward',
        '--config',
        F('unetr_config.json'),
        '--weights',
        F('unetr_weights.pth'),
        '--input',
        F('unetr_forward.safetensors'),
        '--input-key',
        'input',
        '--output',
        out,
        '--backend',
        backend,
      ]);
      assert.equal(r.status, 0, r.stderr);
      const { tensors, metadata } = await readSafetensorsFile(out);
      assert.deepEqual(tensors.get('logits')!.shape, [1, 3, 32, 32, 48]);
      assert.equal(checkForward(tensors.get('logits')!.data, 'unetr_forward.safetensors', 'logits'), null);
      assert.equal(metadata.network, 'unetr');
    });

    it(`[${backend}] SwinUNETR: a flat config on the second fixture input (long axis moved to D)`, async () => {
      const out = join(dir, `swin-${backend}.safetensors`);
      const r = cli([
        'forward',
        '--config',
        flatSwin,
        '--weights',
        F('swin_unetr_weights.safetensors'),
        '--input',
        F('swin_unetr_forward.safetensors'),
        '--input-key',
        'second.input',
        '--output',
        out,
        '--backend',
        backend,
      ]);
      assert.equal(r.status, 0, r.stderr);
      const logits = (await readSafetensorsFile(out)).tensors.get('logits')!;
      assert.deepEqual(logits.shape, [1, 3, 64, 32, 32]);
      assert.equal(checkForward(logits.data, 'swin_unetr_forward.safetensors', 'second.logits'), null);
    });
  }

  it('SwinUNETR: the fixture config form too (first input; the default backend)', async () => {
    const out = join(dir, 'swin-fixture-cfg.safetensors');
    const r = cli([
      'forward',
      '--config',
      F('swin_unetr_config.json'),
      '--weights',
      F('swin_unetr_weights.safetensors'),
      '--input',
      F('swin_unetr_forward.safetensors'),
      '--output',
      out,
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(checkForward((await readSafetensorsFile(out)).tensors.get('logits')!.data, 'swin_unetr_forward.safetensors', 'logits'), null);
  });

  it('user errors: wrong input size, bad argument, weights of another network; no output written', () => {
    const out = join(dir, 'never.safetensors');
    // UNETR takes exactly img_size (32×32×48); the SwinUNETR input is 32×32×64.
    assertUserError(
      cli([
        'forward',
        '--config',
        F('unetr_config.json'),
        '--weights',
        F('unetr_weights.pth'),
        '--input',
        F('swin_unetr_forward.safetensors'),
        '--output',
        out,
        '--backend',
        'reference',
      ]),
      /32×32×64 is invalid: this network takes exactly img_size 32×32×48/,
    );
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ network: 'swin_unetr', img_size: [32, 32, 64], in_channels: 1, out_channels: 3, feature_size: 16 }));
    assertUserError(
      cli(['forward', '--config', bad, '--weights', F('swin_unetr_weights.safetensors'), '--input', F('swin_unetr_forward.safetensors'), '--output', out]),
      /config file '.*bad\.json': SwinUNETR feature_size must be divisible by 12, got 16/,
    );
    assertUserError(
      cli(['forward', '--config', flatSwin, '--weights', F('unetr_weights.pth'), '--input', F('swin_unetr_forward.safetensors'), '--output', out, '--backend', 'reference']),
      /does not fit the config: .*missing key/,
    );
    assert.equal(existsSync(out), false);
  });

  it('import-pth checks the checkpoint against a SwinUNETR/UNETR config', async () => {
    const out = join(dir, 'unetr.safetensors');
    const ok = cli(['import-pth', F('unetr_weights.pth'), '-o', out, '--config', F('unetr_config.json')]);
    assert.equal(ok.status, 0, ok.stderr);
    const { tensors } = await readSafetensorsFile(out);
    assert.equal(tensors.size, 170);
    assert.deepEqual(tensors.get('vit.blocks.0.attn.qkv.weight')!.shape, [96, 32]);
    const bad = cli(['import-pth', F('unetr_weights.pth'), '-o', join(dir, 'x.safetensors'), '--config', flatSwin]);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /missing: swinViT\.layers1\.0\.blocks\.0\.attn\.relative_position_index/);
    assert.match(bad.stderr.trim().split('\n').at(-1)!, /does not match config .*: 20 shape mismatch\(es\), 138 missing key\(s\), 149 unexpected key\(s\)/);
  });
});
