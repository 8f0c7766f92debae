/**
 * `npm start` on the shipped model, the 5-fold ensemble of `uxnet crossval --config
 * recipes/hippocampus/train-p32-aff02.json`: it must find the bundled model and cases, say that an ensemble's
 * cases are not held-out, write labels, overlays and metrics, and actually segment well; and on a
 * fold model, score that fold's held-out cases.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, uxnet } from '../helpers/cli.js';
import { alignTable } from '../../src/cli/commands/demo.js';

describe('npm start (uxnet demo) with the shipped hippocampus model', () => {
  const out = mkdtempSync(join(tmpdir(), 'uxnet-demo-'));
  after(() => rmSync(out, { recursive: true, force: true }));

  it('scores bundled cases with the shipped 5-fold ensemble and says they are not held-out', () => {
    const dir = join(out, 'ensemble');
    const r = uxnet(['demo', '--limit', '2', '-o', dir], { timeoutMs: 600_000, env: { UXNET_QUIET: '1' } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout.split('\n')[0]!,
      /^model 'hippocampus' is the 5-fold ensemble of crossval run 'cv-uxnet-p32-aff02': every case trained 4 of its 5 members, so these scores are not held-out; its cross-validated mean foreground Dice is 0\.88\d\d$/,
    );
    const metrics = JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8'));
    assert.equal(metrics.heldOut, false);
    assert.deepEqual(
      metrics.cases.map((c: { caseId: string }) => c.caseId),
      ['hippocampus_001', 'hippocampus_004'],
    );
    for (const c of metrics.cases) for (const k of c.classes) assert.ok(k.dice > 0.8, `${c.caseId} class ${k.label}: Dice ${k.dice}`);
  });

  it('segments held-out cases of a fold model with high Dice and writes labels, overlays and metrics', () => {
    // fold_0 of the shipped ensemble is a model folder of its own, with fold 0's held-out cases.
    const r = uxnet(['demo', '--limit', '3', '-o', out, '-m', join(ROOT, 'models', 'hippocampus', 'fold_0')], { timeoutMs: 600_000, env: { UXNET_QUIET: '1' } });
    assert.equal(r.status, 0, r.stderr);
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    assert.equal(metrics.heldOut, true);
    const ids: string[] = metrics.cases.map((c: { caseId: string }) => c.caseId);
    assert.deepEqual(ids, ['hippocampus_053', 'hippocampus_058', 'hippocampus_065']);
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
