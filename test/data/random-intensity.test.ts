import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/engine/rng.js';
import { mat4 } from '../../src/io/nifti/mat4.js';
import { applyRandomStep } from '../../src/data/transforms/random.js';
import { addNoise, scaleIntensityByFactor } from '../../src/data/transforms/intensity.js';
import { parsePreset, type RandomStepSpec } from '../../src/data/presets.js';
import { volume, type Volume } from '../../src/data/volume.js';
import type { Sample } from '../../src/data/pipeline.js';

const img = (values: number[] | Float32Array, channels = 1): Volume<Float32Array> => volume(Float32Array.from(values), [values.length / channels, 1, 1], mat4(), channels);
const f = Math.fround;

/** Kolmogorov-Smirnov statistic of `xs` against U(lo, hi). */
function ksUniform(xs: number[], lo: number, hi: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const cdf = (x: number) => (x - lo) / (hi - lo);
  return Math.max(...s.map((x, i) => Math.max(Math.abs((i + 1) / s.length - cdf(x)), Math.abs(i / s.length - cdf(x)))));
}

describe('randScaleIntensity = MONAI 0.9.0 RandScaleIntensityd', () => {
  it('ScaleIntensity(factor): x * (1 + factor), the multiplier rounded to float32 first', () => {
    assert.deepEqual(Array.from(scaleIntensityByFactor(img([1, -2, 0.5, 3]), 0.5).data), [1.5, -3, 0.75, 4.5]);
    assert.deepEqual(Array.from(scaleIntensityByFactor(img([1, -2]), -1).data), [0, -0]);
    const x = [3, -7.25, 1e-3, 123.456];
    const out = scaleIntensityByFactor(img(x), 0.1).data;
    x.forEach((v, i) => assert.equal(out[i], f(f(v) * f(1.1)), `voxel ${i}`));
    assert.notEqual(out[0], f(3 * 1.1), 'not the float64 product');
  });

  it('applied with probability prob, factor uniform in (-f, f) or in the sorted pair; label untouched', () => {
    const label = volume(Uint8Array.from([0, 1]), [2, 1, 1], mat4(), 1);
    for (const [factors, lo, hi] of [
      [0.2, -0.2, 0.2],
      [[0.3, -0.1], -0.1, 0.3],
    ] as const) {
      const spec: RandomStepSpec = { op: 'randScaleIntensity', prob: 0.4, factors: factors as number | [number, number] };
      const sample: Sample = { image: img([1, 2]), label };
      const rng = new Rng(7);
      const N = 4000;
      const drawn: number[] = [];
      for (let n = 0; n < N; n++) {
        const [o] = applyRandomStep(sample, spec, rng);
        assert.equal(o!.label, label);
        if (o!.image === sample.image) continue;
        // Voxel 1 maps to float32(1 + factor): recover the factor.
        drawn.push(o!.image.data[0]! - 1);
        assert.equal(o!.image.data[1], f(2 * o!.image.data[0]!));
      }
      assert.ok(Math.abs(drawn.length / N - 0.4) < 4.5 * Math.sqrt((0.4 * 0.6) / N), `applied in ${drawn.length}/${N}`);
      assert.ok(
        drawn.every((d) => d >= lo - 1e-6 && d < hi + 1e-6),
        `every factor in [${lo}, ${hi})`,
      );
      assert.ok(ksUniform(drawn, lo, hi) < 1.95 / Math.sqrt(drawn.length), `KS against U(${lo}, ${hi})`);
    }
  });

  it('draws the probability first and the factor only when it applies', () => {
    const sample: Sample = { image: img([1, 2, 3]) };
    const a = new Rng(5),
      b = new Rng(5);
    applyRandomStep(sample, { op: 'randScaleIntensity', prob: 0, factors: 0.3 }, a);
    b.random();
    assert.equal(a.nextU32(), b.nextU32(), 'not applied: one draw');
    const c = new Rng(5),
      d = new Rng(5);
    const [o] = applyRandomStep(sample, { op: 'randScaleIntensity', prob: 1, factors: 0.3 }, c);
    d.random();
    assert.deepEqual(o!.image.data, scaleIntensityByFactor(sample.image, d.uniform(-0.3, 0.3)).data);
    assert.equal(c.nextU32(), d.nextU32(), 'applied: probability, then factor');
  });
});

describe('randGaussianNoise = MONAI 0.9.0 RandGaussianNoised', () => {
  it('adds the noise field voxel by voxel in float32 and refuses a field of the wrong size', () => {
    assert.deepEqual(Array.from(addNoise(img([1, -2, 0.5]), Float32Array.from([0.25, 0.5, -0.5])).data), [1.25, -1.5, 0]);
    assert.equal(addNoise(img([1]), Float32Array.from([1e-9])).data[0], 1, 'rounded to float32');
    assert.throws(() => addNoise(img([1, 2]), new Float32Array(3)), /3 noise values for 2 voxels/);
  });

  it('draws the probability, then sigma ~ U(0, std), then one N(mean, sigma²) value per voxel of every channel', () => {
    const sample: Sample = {
      image: img(
        Array.from({ length: 12 }, (_, i) => i - 5),
        2,
      ),
    };
    const a = new Rng(11),
      b = new Rng(11);
    applyRandomStep(sample, { op: 'randGaussianNoise', prob: 0, std: 0.1 }, a);
    b.random();
    assert.equal(a.nextU32(), b.nextU32(), 'not applied: one draw');
    const c = new Rng(11),
      d = new Rng(11);
    const [o] = applyRandomStep(sample, { op: 'randGaussianNoise', prob: 1, mean: 0.5, std: 0.1 }, c);
    d.random();
    const sigma = d.uniform(0, 0.1);
    const noise = d.normalArray(12, 0.5, sigma);
    assert.equal(o!.image.channels, 2);
    assert.deepEqual(o!.image.data, addNoise(sample.image, noise).data);
    assert.equal(c.nextU32(), d.nextU32(), 'applied: probability, sigma, then the field');
  });

  it('the noise has the asked mean and a standard deviation uniform in [0, std); the label is untouched', () => {
    const n = 5000;
    const label = volume(new Uint8Array(n), [n, 1, 1], mat4(), 1);
    const sample: Sample = { image: img(new Float32Array(n).fill(3)), label };
    const rng = new Rng(2);
    const sigmas: number[] = [];
    let applied = 0;
    const T = 300;
    for (let t = 0; t < T; t++) {
      const [o] = applyRandomStep(sample, { op: 'randGaussianNoise', prob: 0.5, mean: 0.2, std: 0.4 }, rng);
      assert.equal(o!.label, label);
      if (o!.image === sample.image) continue;
      applied++;
      const e = Array.from(o!.image.data, (x) => x - 3);
      const mean = e.reduce((s, x) => s + x, 0) / n;
      const sd = Math.sqrt(e.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1));
      // The sample mean is within 5 standard errors of 0.2 (sigma < 0.4).
      assert.ok(Math.abs(mean - 0.2) < 5 * (0.4 / Math.sqrt(n)) + 1e-6, `mean ${mean} (sd ${sd})`);
      assert.ok(sd < 0.4 * 1.06, `sd ${sd} below std`);
      sigmas.push(sd);
    }
    assert.ok(Math.abs(applied / T - 0.5) < 4.5 * Math.sqrt(0.25 / T), `applied ${applied}/${T}`);
    // Each field's own sd estimates its sigma to about 1%: their spread is U(0, 0.4)'s.
    assert.ok(ksUniform(sigmas, 0, 0.4) < 0.12, `KS of the noise sds against U(0, 0.4): ${ksUniform(sigmas, 0, 0.4)}`);
  });

  it('preset fields are checked and named', () => {
    assert.throws(
      () => parsePreset({ name: 'x', train: [{ op: 'randGaussianNoise', prob: 0.1, std: -1 }] }, 'p.json'),
      /p\.json: train\[0\]\.std: expected number to be >=0, got -1/,
    );
    assert.throws(() => parsePreset({ name: 'x', train: [{ op: 'randScaleIntensity', prob: 0.1, factors: [0.1, 0.2, 0.3] }] }, 'p.json'), /p\.json: train\[0\]\.factors/);
    const p = parsePreset(
      {
        name: 'x',
        train: [
          { op: 'randScaleIntensity', prob: 0.15, factors: 0.25 },
          { op: 'randGaussianNoise', prob: 0.1, std: 0.1 },
        ],
      },
      'p.json',
    );
    assert.deepEqual(
      p.train.map((s) => s.op),
      ['randScaleIntensity', 'randGaussianNoise'],
    );
  });
});
