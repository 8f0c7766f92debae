/**
 * `npm start` on the shipped model: it must find the bundled model and held-out cases, write labels,
 * overlays and metrics, and actually segment well (the model was trained by `uxnet train --config
 * recipes/hippocampus/train.json`; these cases were never trained on).
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { uxnet } from '../helpers/cli.js';
import { alignTable } from '../../src/cli/commands/demo.js';

describe('npm start (uxnet demo) with the shipped hippocampus model', () => {
  const out = mkdtempSync(join(tmpdir(), 'uxnet-demo-'));
  after(() => rmSync(out, { recursive: true, force: true }));

  it('segments held-out cases with high Dice and writes labels, overlays and metrics', () => {
    const r = uxnet(['demo', '--limit', '3', '-o', out], { timeoutMs: 600_000, env: { UXNET_QUIET: '1' } });
    assert.equal(r.status, 0, r.stderr);
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    const ids: string[] = metrics.cases.map((c: { caseId: string }) => c.caseId);
    assert.equal(ids.length, 3);
    for (const id of ids) {
      assert.ok(existsSync(join(out, `${id}.nii.gz`)), `${id} labels`);
      assert.ok(existsSync(join(out, `${id}.png`)), `${id} overlay`);
    }
    for (const c of metrics.cases) for (const k of c.classes) assert.ok(k.dice > 0.75, `${c.caseId} class ${k.label}: Dice ${k.dice}`);
    assert.match(r.stdout, /mean foreground Dice 0\.[89]\d*/);
    // The table: header, one row per case, the mean; numbers right-aligned under their headings.
    const lines = r.stdout.split('\n');
    const first = lines.findIndex((l) => l.startsWith('case '));
    const table = lines.slice(first, first + 5);
    assert.match(table[0]!, /^case\s+anterior Dice\s+HD95 mm\s+posterior Dice\s+HD95 mm$/);
    assert.match(table[4]!, /^mean\s/);
    for (const l of table) assert.equal(l.length, table[0]!.length, `aligned: '${l}'`);
  });

  it('aligns the table: names left, numbers right, each column as wide as its widest cell', () => {
    assert.deepEqual(
      alignTable([
        ['case', 'Dice'],
        ['hippocampus_001', '0.9'],
        ['mean', '0.875'],
      ]),
      ['case              Dice', 'hippocampus_001    0.9', 'mean             0.875'],
    );
  });
});
