/** `uxnet import-pth`, run as a real process from the built CLI. */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES } from '../helpers/fixtures.js';
import { uxnet, assertUserError } from '../helpers/cli.js';

const PTH = join(FIXTURES, 'tiny_weights.pth');

const uxnetCli = (args: string[]) => uxnet(args, { timeoutMs: 60000 });

/** A safetensors file split into its header (without __metadata__) and its data bytes. */
function split(path: string): { header: Record<string, unknown>; data: Buffer } {
  const b = readFileSync(path);
  const n = Number(b.readBigUInt64LE(0));
  const header = JSON.parse(b.subarray(8, 8 + n).toString('utf8'));
  delete header.__metadata__;
  return { header, data: b.subarray(8 + n) };
}

const TINY = { in_chans: 1, out_chans: 3, depths: [2, 2, 2, 2], feat_size: [8, 16, 32, 64], hidden_size: 128 };

describe('uxnet import-pth CLI', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'uxnet-import-pth-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('--help explains every flag', () => {
    const r = uxnetCli(['import-pth', '--help']);
    assert.equal(r.status, 0);
    for (const flag of ['<checkpoint>', '--output', '--config']) assert.ok(r.stdout.includes(flag), flag);
  });

  it('tiny_weights.pth -> the same tensors as tiny_weights.safetensors, bit for bit, in the same order', () => {
    const out = join(dir, 'w.safetensors');
    const cfg = join(dir, 'tiny.json');
    writeFileSync(cfg, JSON.stringify(TINY));
    const r = uxnetCli(['import-pth', PTH, '-o', out, '--config', cfg]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /wrote 131 tensors, 1,547,291 parameters, to .*w\.safetensors; keys and shapes match/);
    const got = split(out);
    const want = split(join(FIXTURES, 'tiny_weights.safetensors'));
    // Same names in the same order, same dtype/shape/offsets, identical data bytes. Only the
    // __metadata__ (provenance strings) differs.
    assert.deepEqual(Object.keys(got.header), Object.keys(want.header));
    assert.deepEqual(got.header, want.header);
    assert.ok(got.data.equals(want.data), 'tensor bytes differ');
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.includes('.tmp')),
      [],
      'no temporary file left behind',
    );
  });

  it('--config mismatch: every key reported by name, non-zero exit, nothing written', () => {
    const out = join(dir, 'never.safetensors');
    const cfg = join(dir, 'other.json');
    writeFileSync(cfg, JSON.stringify({ ...TINY, out_chans: 4, depths: [2, 2, 3, 2] }));
    const r = uxnetCli(['import-pth', PTH, '-o', out, '--config', cfg]);
    assert.notEqual(r.status, 0);
    const lines = r.stderr.trimEnd().split('\n');
    assert.ok(lines.includes('  shape mismatch: out.conv.conv.weight expected [4, 8, 1, 1, 1] got [3, 8, 1, 1, 1]'), r.stderr);
    assert.ok(lines.includes('  shape mismatch: out.conv.conv.bias expected [4] got [3]'), r.stderr);
    assert.ok(lines.includes('  missing: uxnet_3d.stages.2.2.dwconv.weight [32, 1, 7, 7, 7]'), r.stderr);
    assert.equal(lines.filter((l) => l.startsWith('  missing: uxnet_3d.stages.2.2.')).length, 9);
    assert.match(
      lines.at(-1)!,
      /^uxnet: checkpoint '.*tiny_weights\.pth' does not match config '.*other\.json': 2 shape mismatch\(es\), 9 missing key\(s\) \(listed above\); nothing written$/,
    );
    assert.doesNotMatch(r.stderr, /\n\s+at |internal error/);

    writeFileSync(cfg, JSON.stringify({ ...TINY, depths: [2, 2, 2, 1] }));
    const fewer = uxnetCli(['import-pth', PTH, '-o', out, '--config', cfg]);
    assert.match(fewer.stderr, /^ {2}unexpected: uxnet_3d\.stages\.3\.1\.gamma \[64\]$/m);
    assert.notEqual(fewer.status, 0);
    assert.ok(!existsSync(out));
  });

  it('user mistakes: one-line messages, non-zero exit, no output', () => {
    const out = join(dir, 'never.safetensors');
    const bad = join(dir, 'bad.pth');
    writeFileSync(bad, 'this is not a checkpoint');
    assertUserError(uxnetCli(['import-pth', bad, '-o', out]), /checkpoint: .*bad\.pth: not a PyTorch checkpoint/);
    assertUserError(uxnetCli(['import-pth', join(dir, 'missing.pth'), '-o', out]), /checkpoint: cannot read '.*missing\.pth': ENOENT/);
    assertUserError(uxnetCli(['import-pth', join(FIXTURES, 'tiny_weights.safetensors'), '-o', out]), /already safetensors/);
    assertUserError(uxnetCli(['import-pth', PTH, '-o', join(dir, 'w.bin')]), /must end in \.safetensors/);
    assertUserError(uxnetCli(['import-pth', PTH, '-o', join(dir, 'no', 'such', 'dir.safetensors')]), /cannot write output file .*ENOENT/);
    assertUserError(uxnetCli(['import-pth', PTH, '-o', out, '--config', join(dir, 'nope.json')]), /cannot read config file/);
    const badCfg = join(dir, 'bad.json');
    writeFileSync(badCfg, JSON.stringify({ ...TINY, feat_size: [8, 16] }));
    assertUserError(uxnetCli(['import-pth', PTH, '-o', out, '--config', badCfg]), /config file '.*bad\.json': /);
    assert.ok(!existsSync(out));
    assert.notEqual(uxnetCli(['import-pth', PTH]).status, 0, 'missing -o is a usage error');
  });
});
