import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/engine/rng.js';
import { mat4 } from '../../src/io/nifti/mat4.js';
import { applyRandomStep, gammaRange } from '../../src/data/transforms/random.js';
import { adjustContrast } from '../../src/data/transforms/intensity.js';
import { parsePreset, type RandomStepSpec } from '../../src/data/presets.js';
import { volume, type Volume } from '../../src/data/volume.js';
import type { Sample } from '../../src/data/pipeline.js';

const img = (values: number[], channels = 1): Volume<Float32Array> => volume(Float32Array.from(values), [values.length / channels, 1, 1], mat4(), channels);

describe('randGamma = MONAI 0.9.0 RandAdjustContrastd', () => {
  it('AdjustContrast: ((x - min) / (range + 1e-7)) ** gamma * range + min', () => {
    // range 4: the epsilon is below float32 resolution, so these are exact.
    assert.deepEqual(Array.from(adjustContrast(img([0, 1, 2, 4]), 2).data), [0, 0.25, 1, 4]);
    assert.deepEqual(Array.from(adjustContrast(img([-3, -2.75, -2, 1]), 0.5).data), [-3, -2, -1, 1]);
    assert.deepEqual(Array.from(adjustContrast(img([10, 11, 12, 14]), 1).data), [10, 11, 12, 14]);
    // A constant image stays as it is (0 / eps = 0).
    assert.deepEqual(Array.from(adjustContrast(img([7, 7, 7]), 3).data), [7, 7, 7]);
  });

  it('the epsilon divides but does not multiply back (MONAI 0.9.0, not range + eps on both sides)', () => {
    const f = Math.fround;
    const out = adjustContrast(img([0, 1e-6]), 1).data;
    const expected = f(f(f(1e-6) / f(f(1e-6) + 1e-7)) * f(1e-6));
    assert.equal(out[1], expected);
    assert.ok(Math.abs(out[1]! - 1e-6 / 1.1) < 1e-12, `max maps to ${out[1]}, about 1e-6/1.1`);
  });

  it('is computed in float32 step by step, min and range over every channel', () => {
    const f = Math.fround;
    let s = 3;
    const values = Array.from({ length: 64 }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 300 - 100);
    const v = img(values, 2);
    const d = v.data;
    const lo = Math.min(...d),
      hi = Math.max(...d);
    const range = f(hi - lo),
      den = f(range + 1e-7),
      g = f(1.7);
    const out = adjustContrast(v, 1.7);
    assert.equal(out.channels, 2);
    d.forEach((x, i) => assert.equal(out.data[i], f(f(f(Math.pow(f(f(x - lo) / den), g)) * range) + lo), `voxel ${i}`));
    assert.equal(out.data[d.indexOf(lo)], lo);
  });

  it('applied with probability prob, gamma uniform in the range, label and the rest untouched', () => {
    const spec: RandomStepSpec = { op: 'randGamma', prob: 0.3, gamma: [0.7, 1.5] };
    const label = volume(Uint8Array.from([0, 1, 1, 2]), [4, 1, 1], mat4(), 1);
    const sample: Sample = { image: img([0, 1, 2, 4]), label, foreground: { start: [0, 0, 0], end: [4, 1, 1] } };
    const rng = new Rng(42);
    const N = 4000;
    const gammas: number[] = [];
    for (let n = 0; n < N; n++) {
      const [o] = applyRandomStep(sample, spec, rng);
      assert.equal(o!.label, label);
      assert.equal(o!.foreground, sample.foreground);
      if (o!.image === sample.image) continue;
      // The middle voxel maps to 0.5 ** gamma * 4: recover gamma.
      gammas.push(-Math.log2(o!.image.data[2]! / 4));
      assert.equal(o!.image.data[0], 0);
      assert.equal(o!.image.data[3], 4);
    }
    const p = gammas.length / N;
    assert.ok(Math.abs(p - 0.3) < 4.5 * Math.sqrt((0.3 * 0.7) / N), `applied in ${gammas.length}/${N}`);
    assert.ok(
      gammas.every((g) => g >= 0.7 - 1e-6 && g < 1.5 + 1e-6),
      'every gamma in [0.7, 1.5)',
    );
    const mean = gammas.reduce((a, b) => a + b, 0) / gammas.length;
    const variance = gammas.reduce((a, b) => a + (b - mean) ** 2, 0) / gammas.length;
    assert.ok(Math.abs(mean - 1.1) < 0.02, `mean gamma ${mean}`);
    assert.ok(Math.abs(variance - 0.8 ** 2 / 12) < 0.006, `variance ${variance}`);
    // Kolmogorov-Smirnov against U(0.7, 1.5), alpha = 0.001.
    const sorted = gammas.sort((a, b) => a - b);
    const ks = Math.max(...sorted.map((g, i) => Math.max(Math.abs((i + 1) / sorted.length - (g - 0.7) / 0.8), Math.abs(i / sorted.length - (g - 0.7) / 0.8))));
    assert.ok(ks < 1.95 / Math.sqrt(sorted.length), `KS statistic ${ks}`);
  });

  it('draws the probability first and gamma only when it applies', () => {
    const sample: Sample = { image: img([0, 1, 2, 4]) };
    const a = new Rng(9),
      b = new Rng(9);
    applyRandomStep(sample, { op: 'randGamma', prob: 0, gamma: [0.5, 2] }, a);
    b.random();
    assert.equal(a.nextU32(), b.nextU32(), 'not applied: one draw');
    const c = new Rng(9),
      d = new Rng(9);
    const [o] = applyRandomStep(sample, { op: 'randGamma', prob: 1, gamma: [0.5, 2] }, c);
    d.random();
    const g = d.uniform(0.5, 2);
    assert.deepEqual(o!.image.data, adjustContrast(sample.image, g).data);
    assert.equal(c.nextU32(), d.nextU32(), 'applied: probability, then gamma');
  });

  it('gamma ranges as MONAI: a number g > 0.5 is (0.5, g), a pair is sorted, anything else is refused', () => {
    assert.deepEqual(gammaRange(4.5), [0.5, 4.5]);
    assert.deepEqual(gammaRange([2, 0.8]), [0.8, 2]);
    assert.throws(() => gammaRange(0.5), /greater than 0\.5/);
    assert.throws(() => gammaRange([1, 2, 3]), /number or a pair/);
    assert.throws(
      () => parsePreset({ name: 'x', train: [{ op: 'randGamma', prob: 0.5, gamma: 0.3 }] }, 'p.json'),
      /p\.json: train\[0\]\.gamma: a single gamma must be greater than 0\.5/,
    );
    assert.doesNotThrow(() => parsePreset({ name: 'x', train: [{ op: 'randGamma', prob: 0.5, gamma: [0.7, 1.5] }] }, 'p.json'));
  });
});
