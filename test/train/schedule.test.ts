import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { learningRate, validateSchedule } from '../../src/train/schedule.js';

describe('learning-rate schedules', () => {
  it('constant stays at the base rate (the official recipe)', () => {
    for (const s of [0, 10, 999]) assert.equal(learningRate(1e-4, s, 1000, { type: 'constant' }), 1e-4);
  });
  it('warm-up rises linearly to the base rate', () => {
    const sch = { type: 'constant' as const, warmupSteps: 4 };
    assert.deepEqual(
      [0, 1, 2, 3, 4].map((s) => learningRate(1, s, 100, sch)),
      [0.25, 0.5, 0.75, 1, 1],
    );
  });
  it('cosine decays from the base rate to the floor', () => {
    const sch = { type: 'cosine' as const, minFactor: 0.1 };
    assert.equal(learningRate(2, 0, 101, sch), 2);
    assert.ok(Math.abs(learningRate(2, 50, 100, sch) - 2 * (0.1 + 0.9 * 0.5)) < 1e-12);
    assert.ok(Math.abs(learningRate(2, 100, 100, sch) - 0.2) < 1e-12);
  });
  it('poly follows (1 - t)^power', () => {
    const v = learningRate(1, 50, 100, { type: 'poly', power: 0.9 });
    assert.ok(Math.abs(v - 0.5 ** 0.9) < 1e-12);
  });
  it('rejects bad settings with a message', () => {
    assert.throws(() => validateSchedule({ type: 'linear' as 'poly' }), /schedule: type: expected one of "constant", "poly", "cosine", got "linear"/);
    assert.throws(() => validateSchedule({ type: 'cosine', warmupSteps: -1 }), /schedule: warmupSteps: expected number to be >=0, got -1/);
    assert.throws(() => validateSchedule({ type: 'cosine', minFactor: 2 }), /schedule: minFactor: expected number to be <=1, got 2/);
  });
});
