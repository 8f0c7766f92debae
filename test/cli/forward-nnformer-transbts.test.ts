/**
 * `uxnet forward`, `train` and `predict` with nnFormer and TransBTS, run as a real process: the fixtures' `<model>_config.json`
 * (constructor_args + TransBTS's module_patches), the flat form `{"network": ..., ...arguments}`, weights
 * as .safetensors and .pth, the official logits within the fixture tolerance, and input-size errors as
 * one clear line with no output file.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, get } from '../helpers/fixtures.js';
import { BASELINES, checkForward } from '../helpers/baselines.js';
import { uxnet, assertUserError } from '../helpers/cli.js';
import { readSafetensorsFile, writeSafetensorsFile } from '../../src/io/safetensors.js';
import { writeSyntheticDataset } from '../helpers/synthetic-dataset.js';

const B = join(FIXTURES, BASELINES);
const cli = (args: string[]) => uxnet(args, { timeoutMs: 240_000, env: { UXNET_THREADS: '1' } });
/** `uxnet forward --config … --weights … --input … --output … --backend native` (`extra` before --output). */
const forward = (config: string, weights: string, input: string, out: string, extra: string[] = []) =>
  cli(['forward', '--config', config, '--weights', weights, '--input', input, ...extra, '--output', out, '--backend', 'native']);

async function assertLogits(out: string, net: string): Promise<void> {
  const { tensors } = await readSafetensorsFile(out);
  const ours = tensors.get('logits')!;
  assert.deepEqual(ours.shape, get(`${BASELINES}${net}_forward.safetensors`, 'logits').shape);
  assert.equal(checkForward(ours.data, `${net}_forward.safetensors`, 'logits'), null);
}

describe('uxnet forward, train and predict with nnFormer and TransBTS [native]', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'uxnet-nnf-bts-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('TransBTS: the fixture config (constructor_args + module_patches) and .safetensors weights give the official logits', async () => {
    const out = join(dir, 'bts.safetensors');
    const r = forward(join(B, 'transbts_config.json'), join(B, 'transbts_weights.safetensors'), join(B, 'transbts_forward.safetensors'), out, ['--input-key', 'input']);
    assert.equal(r.status, 0, r.stderr);
    await assertLogits(out, 'transbts');
  });

  it('TransBTS: the flat form {"network": "transbts", ...arguments, "unet_base_channels": 8} is the same network', async () => {
    const fixtureCfg = JSON.parse(readFileSync(join(B, 'transbts_config.json'), 'utf8')) as { constructor_args: Record<string, unknown> };
    const flat = join(dir, 'flat.json');
    writeFileSync(flat, JSON.stringify({ network: 'transbts', ...fixtureCfg.constructor_args, unet_base_channels: 8 }));
    const out = join(dir, 'bts-flat.safetensors');
    const r = forward(flat, join(B, 'transbts_weights.safetensors'), join(B, 'transbts_forward.safetensors'), out);
    assert.equal(r.status, 0, r.stderr);
    await assertLogits(out, 'transbts');
  });

  it('nnFormer: the fixture config and the official .pth checkpoint give the official logits', async () => {
    const out = join(dir, 'nnf.safetensors');
    const r = forward(join(B, 'nnformer_config.json'), join(B, 'nnformer_weights.pth'), join(B, 'nnformer_forward.safetensors'), out);
    assert.equal(r.status, 0, r.stderr);
    await assertLogits(out, 'nnformer');
  });

  it('an input that is not crop_size / img_dim³: one line naming the constraint, no output file', async () => {
    const x = join(dir, 'x.safetensors');
    await writeSafetensorsFile(x, new Map([['input', { shape: [1, 1, 32, 64, 64], data: new Float32Array(32 * 64 * 64) }]]));
    const out = join(dir, 'never.safetensors');
    assertUserError(forward(join(B, 'nnformer_config.json'), join(B, 'nnformer_weights.pth'), x, out), /crop_size = 32×64×96/);
    assertUserError(forward(join(B, 'transbts_config.json'), join(B, 'transbts_weights.safetensors'), x, out), /img_dim³ = 24×24×24/);
    assert.ok(!existsSync(out));
  });

  it('a bad TransBTS argument: one line naming it', () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ network: 'transbts', num_classes: 3, unet_base_channels: 12 }));
    assertUserError(
      cli([
        'forward',
        '--config',
        bad,
        '--weights',
        join(B, 'transbts_weights.safetensors'),
        '--input',
        join(B, 'transbts_forward.safetensors'),
        '--output',
        join(dir, 'n.safetensors'),
      ]),
      /unet_base_channels must be a multiple of 8/,
    );
  });

  it("train (2 steps) then predict: TransBTS and nnFormer model folders, TransBTS's with its BatchNorm running statistics", async () => {
    const data = join(dir, 'data');
    await writeSyntheticDataset(data, 4, [20, 22, 18]);
    const runs: [string, string[], string][] = [
      ['transbts', ['--network-arg', 'unet_base_channels=8', '--network-arg', 'embedding_dim=256', '--network-arg', 'hidden_dim=32', '--roi', '16,16,16'], 'img_dim 16'],
      ['nnformer', ['--network-arg', 'embedding_dim=12', '--network-arg', 'num_heads=[1,2,4,8]', '--roi', '16,32,32'], 'crop_size 16x32x32'],
    ];
    for (const [net, args, desc] of runs) {
      const out = join(dir, `run-${net}`);
      const r = cli(['train', '--dataset', data, '-o', out, '--network', net, ...args, '--steps', '2', '--val-every', '2', '--backend', 'native']);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, new RegExp(desc));
      const manifest = JSON.parse(readFileSync(join(out, 'model', 'model.json'), 'utf8')) as { network: string; networkArgs: Record<string, unknown> };
      assert.equal(manifest.network, net);
      const { tensors } = await readSafetensorsFile(join(out, 'model', 'weights.safetensors'));
      if (net === 'transbts') assert.equal(tensors.get('bn.num_batches_tracked')!.data[0], 2, 'two training forwards folded into the running statistics');
      const pred = join(dir, `pred-${net}.nii.gz`);
      const p = cli(['predict', '--model', join(out, 'model'), '--input', join(data, 'imagesTr', 'case_000.nii.gz'), '-o', pred, '--backend', 'native']);
      assert.equal(p.status, 0, p.stderr);
      assert.ok(existsSync(pred));
    }
  });
});
