/**
 * The progress line of logs (stderr not a terminal): values, percentage, elapsed time and an ETA
 * from this process's own rate, so a resumed run's earlier steps do not make it look faster.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createProgress } from '../../src/cli/progress.js';

function capture(): { stream: NodeJS.WriteStream; lines: string[] } {
  const lines: string[] = [];
  const stream = { isTTY: false, write: (s: string) => lines.push(s) > 0 } as unknown as NodeJS.WriteStream;
  return { stream, lines };
}

describe('createProgress (plain lines)', () => {
  const quiet = process.env.UXNET_QUIET;
  const withLoud = (f: () => void) => {
    delete process.env.UXNET_QUIET;
    try {
      f();
    } finally {
      if (quiet !== undefined) process.env.UXNET_QUIET = quiet;
    }
  };

  it('a fresh run: ETA = elapsed / done * left', () =>
    withLoud(() => {
      let t = 1_000_000;
      const { stream, lines } = capture();
      const p = createProgress({ label: 'train', total: 1000, stream, plain: true, now: () => t, fields: ['loss'] });
      t += 20_000;
      p.update(100, { loss: '0.5000' });
      assert.deepEqual(lines, ['train 100/1000 (10%) elapsed 20s eta 3m00s loss 0.5000\n']);
    }));

  it('a resumed run: the bar starts at its step, and the ETA uses only the steps done since', () =>
    withLoud(() => {
      let t = 1_000_000;
      const { stream, lines } = capture();
      const p = createProgress({ label: 'train', total: 1100, start: 100, stream, plain: true, now: () => t });
      t += 10_000;
      p.update(150);
      // 50 steps in 10 s: 950 left take 190 s (counting the 100 earlier steps would say 63 s).
      assert.deepEqual(lines, ['train 150/1100 (13%) elapsed 10s eta 3m10s\n']);
      t += 1_000;
      p.update(155);
      assert.equal(lines.length, 1, 'a line at most every 5 s');
      t += 5_000;
      p.stop();
      assert.equal(lines.at(-1), 'train 155/1100 (14%) elapsed 16s\n', 'a stopped bar writes its last value, without ETA');
    }));
});
