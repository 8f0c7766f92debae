import { describe, it, before, after } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { uxnet, assertUserError } from '../helpers/cli.js';

describe('uxnet train: user mistakes', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'uxnet-train-cli-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('names what is missing or wrong, in one line, without a stack trace', () => {
    writeFileSync(join(dir, 'bad.json'), '{ not json');
    writeFileSync(join(dir, 'split.json'), JSON.stringify({ train: ['nope'], val: [] }));
    assertUserError(uxnet(['train', '-o', join(dir, 'r')]), /training config: dataset: is required \(expected string\)/);
    assertUserError(uxnet(['train', '--dataset', join(dir, 'none'), '-o', join(dir, 'r')]), /is not a directory/);
    assertUserError(uxnet(['train', '--config', join(dir, 'bad.json')]), /not valid JSON/);
    assertUserError(uxnet(['train', '--config', join(dir, 'missing.json')]), /cannot read config/);
    assertUserError(uxnet(['train', '--dataset', dir, '-o', join(dir, 'r'), '--steps', 'x']), /--steps must be an integer/);
    assertUserError(
      uxnet(['train', '--dataset', dir, '-o', join(dir, 'r'), '--roi', '40,40,40']),
      /training config: roiSize 40x40x40 does not fit the network: UX-Net input spatial size 40×40×40 is invalid/,
    );
    assertUserError(uxnet(['train', '--dataset', dir, '-o', join(dir, 'r'), '--feat-size', '8,16']), /featSize|feat_size/);
    assertUserError(uxnet(['train', '--dataset', dir, '-o', join(dir, 'r'), '--backend', 'tpu']), /unknown backend 'tpu'/);
  });
});
