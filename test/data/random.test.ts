import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/engine/rng.js';
import { mat4 } from '../../src/io/nifti/mat4.js';
import { affineMatrix, affineResample, correctCenter, posNegIndices, randCropByPosNegLabel, runRandomSteps, sampleCropCenter, unravel } from '../../src/data/transforms/random.js';
import { flip, rotate90 } from '../../src/data/transforms/flip.js';
import { crop } from '../../src/data/transforms/croppad.js';
import { volume, type Vec3, type Volume } from '../../src/data/volume.js';
import { loadPreset } from '../../src/data/presets.js';
import { countDiff, maxAbsDiff } from './monai-fixtures.js';
import { fixtureTensors, readJson } from './fixture-tensors.js';

const pr = readJson('transforms/manifest.json').pinned_random;
const T = fixtureTensors('transforms/pinned_random.safetensors.gz');
const get = (n: string) => T.get(n)!;
function vol(name: string): Volume {
  const t = get(name);
  const [c, x, y, z] = t.shape as number[];
  return volume(Float32Array.from(t.data as ArrayLike<number>), [x!, y!, z!], mat4(), c);
}

describe('seeded RNG', () => {
  it('same seed, same stream; different seed, different stream', () => {
    const a = new Rng(7),
      b = new Rng(7),
      c = new Rng(8);
    const xa = Array.from({ length: 5 }, () => a.nextU32());
    assert.deepEqual(
      xa,
      Array.from({ length: 5 }, () => b.nextU32()),
    );
    assert.notDeepEqual(
      xa,
      Array.from({ length: 5 }, () => c.nextU32()),
    );
  });
  it('uniform, int and normal have the documented moments', () => {
    const r = new Rng(1);
    const N = 200000;
    let s = 0,
      s2 = 0,
      n = 0,
      n2 = 0;
    const counts = new Array(6).fill(0);
    for (let i = 0; i < N; i++) {
      const u = r.uniform(-0.1, 0.1);
      s += u;
      s2 += u * u;
      counts[r.int(6)]++;
      const g = r.normal();
      n += g;
      n2 += g * g;
    }
    assert.ok(Math.abs(s / N) < 0.001 && Math.abs(s2 / N - 0.01 / 3) < 1e-4, 'U(-0.1, 0.1): mean 0, variance 0.01/3');
    const chi2 = counts.reduce((a, c) => a + (c - N / 6) ** 2 / (N / 6), 0);
    assert.ok(chi2 < 20.5, `int(6) chi-square ${chi2} (5 dof, p = 0.001)`);
    assert.ok(Math.abs(n / N) < 0.01 && Math.abs(n2 / N - 1) < 0.02, 'standard normal');
  });
});

describe('RandCropByPosNegLabeld (SEMANTICS §9.2)', () => {
  const d = pr.center_distribution;
  const image = vol('pinned/synth_lps_oblique/input/image');
  const label = vol('pinned/synth_lps_oblique/input/label');
  const size = d.spatial_size as Vec3;
  const { fg, bg } = posNegIndices(image, label, d.image_threshold);

  it('candidate lists and the exact centre distribution equal MONAI center_prob', () => {
    assert.equal(fg.length, d.n_fg);
    assert.equal(bg.length, d.n_bg);
    const prob = new Float64Array(image.data.length);
    const shape = image.shape;
    const add = (list: Int32Array, w: number) => {
      for (const idx of list) {
        const c = correctCenter(unravel(idx, shape), size, shape);
        prob[(c[0] * shape[1] + c[1]) * shape[2] + c[2]] += w / list.length;
      }
    };
    add(fg, 0.5);
    add(bg, 0.5);
    const expected = get('pinned/synth_lps_oblique/center_prob').data as Float64Array;
    assert.ok(maxAbsDiff(prob, expected) < 1e-12);
  });

  it('the seeded sampler follows that distribution (chi-square on each axis marginal)', () => {
    const expected = get('pinned/synth_lps_oblique/center_prob').data as Float64Array;
    const shape = image.shape;
    const N = 20000;
    for (let axis = 0; axis < 3; axis++) {
      const exp = new Float64Array(shape[axis]!);
      for (let i = 0; i < expected.length; i++) exp[unravel(i, shape)[axis]]! += expected[i]!;
      const obs = new Float64Array(shape[axis]!);
      const r = new Rng(123 + axis);
      for (let n = 0; n < N; n++) obs[sampleCropCenter(fg, bg, 0.5, size, shape, r)[axis]]!++;
      let chi2 = 0,
        dof = -1;
      for (let k = 0; k < exp.length; k++)
        if (exp[k]! > 0) {
          chi2 += (obs[k]! - N * exp[k]!) ** 2 / (N * exp[k]!);
          dof++;
        } else assert.equal(obs[k], 0, `axis ${axis}: centre ${k} is outside the valid range`);
      // p = 0.001 critical value, approximated by Wilson-Hilferty.
      const crit = dof * (1 - 2 / (9 * dof) + 3.09 * Math.sqrt(2 / (9 * dof))) ** 3;
      assert.ok(chi2 < crit, `axis ${axis}: chi2 ${chi2.toFixed(1)} >= ${crit.toFixed(1)} (${dof} dof)`);
    }
  });

  it('crops at the recorded centres reproduce MONAI exactly; same seed gives the same crops', () => {
    for (const [k, s] of pr.seeded_train_tail.samples.entries()) {
      const c = s.center as Vec3;
      const start = c.map((x, d) => x - Math.floor(size[d]! / 2));
      const exp = get(`pinned/synth_lps_oblique/sample${k}/crop/image`).data as Float32Array;
      const got = crop(image, start as Vec3, start.map((x, d) => x + size[d]!) as Vec3);
      assert.equal(countDiff(got.data, exp), 0);
    }
    const spec = { op: 'randCropByPosNegLabel' as const, spatialSize: size, pos: 1, neg: 1, numSamples: 2, imageThreshold: 0 };
    const a = randCropByPosNegLabel({ image: image as Volume<Float32Array>, label }, spec, new Rng(5));
    const b = randCropByPosNegLabel({ image: image as Volume<Float32Array>, label }, spec, new Rng(5));
    assert.deepEqual(
      a.map((x) => Array.from(x.image.data.slice(0, 50))),
      b.map((x) => Array.from(x.image.data.slice(0, 50))),
    );
  });

  it('pads a volume smaller than the crop instead of failing (official 96³ on hippocampus); allowSmaller=false keeps MONAI error', () => {
    const spec = { op: 'randCropByPosNegLabel' as const, spatialSize: [96, 96, 96] as Vec3, pos: 1, neg: 1, numSamples: 2, imageThreshold: 0 };
    const out = randCropByPosNegLabel({ image: image as Volume<Float32Array>, label }, spec, new Rng(1));
    assert.equal(out.length, 2);
    assert.deepEqual(out[0]!.image.shape, [96, 96, 96]);
    assert.throws(
      () => randCropByPosNegLabel({ image: image as Volume<Float32Array>, label }, { ...spec, allowSmaller: false }, new Rng(1)),
      new RegExp(pr.official_96_on_small_volume.replace('ValueError: ', '').replace(/[.()]/g, '\\$&')),
    );
  });
});

describe('RandShiftIntensityd and RandAffined given the drawn parameters', () => {
  for (const k of [0, 1]) {
    it(`sample ${k}`, () => {
      const s = pr.seeded_train_tail.samples[k];
      const img = vol(`pinned/synth_lps_oblique/sample${k}/crop/image`);
      const shiftName = s.shift.do_transform ? `pinned/synth_lps_oblique/sample${k}/shift/image` : `pinned/synth_lps_oblique/sample${k}/crop/image`;
      if (s.shift.do_transform) {
        const f = Math.fround(s.shift.offset);
        const got = Float32Array.from(img.data, (x) => Math.fround(x + f));
        assert.equal(countDiff(got, get(shiftName).data as Float32Array), 0);
      }
      const m = affineMatrix(s.affine.rotate_params, s.affine.scale_params);
      const mExp = Float32Array.from((s.affine.matrix as number[][]).flat());
      assert.ok(maxAbsDiff(m, mExp) <= 1.2e-7, `matrix ${Array.from(m)} vs ${Array.from(mExp)}`);
      const shifted = vol(shiftName);
      const outImg = affineResample(shifted, mExp, shifted.shape, 'bilinear');
      const expImg = get(`pinned/synth_lps_oblique/sample${k}/affine/image`).data as Float32Array;
      assert.equal(countDiff(outImg.data, expImg), 0, `image differs by up to ${maxAbsDiff(outImg.data, expImg)}`);
      const lab = vol(`pinned/synth_lps_oblique/sample${k}/crop/label`);
      const outLab = affineResample(lab, mExp, lab.shape, 'nearest');
      const expLab = get(`pinned/synth_lps_oblique/sample${k}/affine/label`).data as Uint8Array;
      assert.equal(countDiff(outLab.data, expLab), 0, 'label');
    });
  }
});

describe('flips and 90-degree rotations match numpy on a (1,4,3,2) arange', () => {
  const input = vol('pinned/tiny/input');
  const cases: [string, (v: Volume) => Volume][] = [
    ['flip_None', (v) => flip(v)],
    ['flip_0', (v) => flip(v, [0])],
    ['flip_1', (v) => flip(v, [1])],
    ['flip_2', (v) => flip(v, [2])],
    ['flip_(0,2)', (v) => flip(v, [0, 2])],
    ['rot90_k1_axes01', (v) => rotate90(v, 1, [0, 1])],
    ['rot90_k2_axes01', (v) => rotate90(v, 2, [0, 1])],
    ['rot90_k3_axes01', (v) => rotate90(v, 3, [0, 1])],
    ['rot90_k1_axes12', (v) => rotate90(v, 1, [1, 2])],
    ['rot90_k2_axes12', (v) => rotate90(v, 2, [1, 2])],
    ['rot90_k3_axes12', (v) => rotate90(v, 3, [1, 2])],
    ['rot90_k1_axes02', (v) => rotate90(v, 1, [0, 2])],
    ['rot90_k3_axes02', (v) => rotate90(v, 3, [0, 2])],
  ];
  for (const [name, fn] of cases) {
    it(name, () => {
      const exp = get(`pinned/tiny/${name}`);
      const got = fn(input);
      assert.deepEqual([got.channels, ...got.shape], exp.shape);
      assert.deepEqual(Array.from(got.data), Array.from(exp.data as Float32Array));
    });
  }
});

describe('a preset training tail', () => {
  it('FLARE tail on the pinned input: 2 samples of the crop size; shift offsets and affine parameters stay in range', () => {
    const image = vol('pinned/synth_lps_oblique/input/image') as Volume<Float32Array>;
    const label = vol('pinned/synth_lps_oblique/input/label');
    const preset = loadPreset('flare');
    const tail = preset.train.map((s) => (s.op === 'randCropByPosNegLabel' ? { ...s, spatialSize: [24, 20, 16] as Vec3 } : s));
    const out = runRandomSteps({ image, label }, tail, new Rng(9));
    assert.equal(out.length, 2);
    for (const s of out) {
      assert.deepEqual(s.image.shape, [24, 20, 16]);
      const mx = Math.max(...s.image.data),
        mn = Math.min(...s.image.data);
      assert.ok(mx <= 1.1 + 1e-6 && mn >= -0.1 - 1e-6, `intensities in [-0.1, 1.1]: ${mn}..${mx}`);
      assert.ok(
        Array.from(s.label!.data).every((x) => [0, 1, 2, 3].includes(x)),
        'labels stay class indices',
      );
    }
    const again = runRandomSteps({ image, label }, tail, new Rng(9));
    assert.deepEqual(Array.from(again[1]!.image.data), Array.from(out[1]!.image.data));
  });
});
