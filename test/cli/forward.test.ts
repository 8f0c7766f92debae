/** `uxnet forward`, run as a real process from the built CLI, on every backend. */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initTestBackends, testBackends } from '../helpers/backends.js';
import { assertMatchesFixture, FIXTURES } from '../helpers/fixtures.js';
import { uxnet, assertUserError } from '../helpers/cli.js';
import { readSafetensorsFile, writeSafetensorsFile } from '../../src/io/safetensors.js';

await initTestBackends();

const WEIGHTS = join(FIXTURES, 'tiny_weights.safetensors');
const INPUT = join(FIXTURES, 'tiny_forward.safetensors');

const uxnetCli = (args: string[]) => uxnet(args, { timeoutMs: 120000 });

for (const backend of testBackends()) {
  describe(`uxnet forward CLI [${backend}]`, () => {
    let dir: string;
    let snakeCfg: string;
    let camelCfg: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'uxnet-forward-'));
      snakeCfg = join(dir, 'snake.json');
      camelCfg = join(dir, 'camel.json');
      writeFileSync(
        snakeCfg,
        JSON.stringify({
          in_chans: 1,
          out_chans: 3,
          depths: [2, 2, 2, 2],
          feat_size: [8, 16, 32, 64],
          hidden_size: 128,
          drop_path_rate: 0,
          layer_scale_init_value: 1e-6,
          norm_name: 'instance',
          conv_block: true,
          res_block: true,
          spatial_dims: 3,
        }),
      );
      writeFileSync(camelCfg, JSON.stringify({ inChans: 1, outChans: 3, featSize: [8, 16, 32, 64], hiddenSize: 128 }));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('writes the official logits (snake_case config)', async () => {
      const out = join(dir, 'logits.safetensors');
      const r = uxnetCli(['forward', '--config', snakeCfg, '--weights', WEIGHTS, '--input', INPUT, '--output', out, '--backend', backend]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /wrote logits \[1, 3, 32, 32, 32\]/);
      const { tensors } = await readSafetensorsFile(out);
      assert.deepEqual([...tensors.keys()], ['logits']);
      assert.deepEqual(tensors.get('logits')!.shape, [1, 3, 32, 32, 32]);
      assertMatchesFixture(tensors.get('logits')!.data, 'tiny_forward.safetensors', 'logits');
      assert.deepEqual(
        readdirSync(dir).filter((f) => f.includes('.tmp')),
        [],
        'no temporary file left behind',
      );
    });

    it('reads the weights from a PyTorch checkpoint (.pth)', async () => {
      const out = join(dir, 'logits-pth.safetensors');
      const r = uxnetCli(['forward', '--config', snakeCfg, '--weights', join(FIXTURES, 'tiny_weights.pth'), '--input', INPUT, '--output', out, '--backend', backend]);
      assert.equal(r.status, 0, r.stderr);
      assertMatchesFixture((await readSafetensorsFile(out)).tensors.get('logits')!.data, 'tiny_forward.safetensors', 'logits');
    });

    it('camelCase config and --input-key', async () => {
      const out = join(dir, 'logits2.safetensors');
      const r = uxnetCli([
        'forward',
        '--config',
        camelCfg,
        '--weights',
        WEIGHTS,
        '--input',
        join(FIXTURES, 'tiny_forward_noncubic.safetensors'),
        '--input-key',
        'input',
        '--output',
        out,
        '--backend',
        backend,
      ]);
      assert.equal(r.status, 0, r.stderr);
      assertMatchesFixture((await readSafetensorsFile(out)).tensors.get('logits')!.data, 'tiny_forward_noncubic.safetensors', 'logits');
    });

    it('user mistakes: one-line messages, non-zero exit, no output file', async () => {
      const out = join(dir, 'never.safetensors');
      const base = ['forward', '--config', camelCfg, '--weights', WEIGHTS, '--input', INPUT, '--output', out, '--backend', backend];
      const withArg = (flag: string, value: string) => base.map((a, i) => (base[i - 1] === flag ? value : a));
      assertUserError(uxnet(withArg('--weights', join(dir, 'missing.safetensors'))), /weights file: cannot read '.*missing\.safetensors': ENOENT/);
      assertUserError(uxnet(withArg('--weights', join(dir, 'missing.pth'))), /weights file: cannot read '.*missing\.pth': ENOENT/);
      const garbage = join(dir, 'garbage.pth');
      writeFileSync(garbage, 'not a checkpoint');
      assertUserError(uxnet(withArg('--weights', garbage)), /weights file: .*garbage\.pth: not a PyTorch checkpoint/);
      assertUserError(uxnet(withArg('--weights', join(dir, 'weights.npz'))), /weights file: don't know how to read weights .*extension '\.npz'/);
      assertUserError(uxnet(withArg('--input', join(dir, 'nope.safetensors'))), /input file: cannot read/);
      assertUserError(uxnet(withArg('--config', join(dir, 'nope.json'))), /cannot read config file/);
      assertUserError(uxnetCli([...base, '--input-key', 'volume']), /has no tensor 'volume'.*--input-key/);
      const badCfg = join(dir, 'bad.json');
      writeFileSync(badCfg, JSON.stringify({ in_chans: 1, out_chans: 3, feat_size: [8, 16, 32, 64], hidden_size: 128, drop_path_rate: 0.1 }));
      assertUserError(uxnet(withArg('--config', badCfg)), /drop_path_rate\) must be 0/);
      writeFileSync(badCfg, '{ not json');
      assertUserError(uxnet(withArg('--config', badCfg)), /not valid JSON/);
      const wrongWidth = join(dir, 'wide.json');
      writeFileSync(wrongWidth, JSON.stringify({ inChans: 1, outChans: 4, featSize: [8, 16, 32, 64], hiddenSize: 128 }));
      assertUserError(uxnet(withArg('--config', wrongWidth)), /does not fit the config: .*out\.conv\.conv\.weight expected \[4, 8, 1, 1, 1\] got \[3, 8, 1, 1, 1\]/);
      const twoChan = join(dir, 'two.safetensors');
      await writeSafetensorsFile(twoChan, [['input', { shape: [1, 2, 32, 32, 32], data: new Float32Array(2 * 32 ** 3) }]]);
      assertUserError(uxnet(withArg('--input', twoChan)), /2 channel\(s\) but the model expects inChans = 1/);
      const oddSize = join(dir, 'odd.safetensors');
      await writeSafetensorsFile(oddSize, [['input', { shape: [1, 1, 32, 32, 20], data: new Float32Array(32 * 32 * 20) }]]);
      assertUserError(uxnet(withArg('--input', oddSize)), /multiple of 16/);
      assertUserError(uxnet(withArg('--backend', 'nosuch')), /unknown backend 'nosuch'/);
      assertUserError(uxnet(withArg('--output', join(dir, 'no', 'such', 'dir.safetensors'))), /cannot write output file/);
      assert.ok(!existsSync(out));
    });
  });
}
