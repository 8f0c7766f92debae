import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadVolume } from '../../src/data/load.js';
import { invert } from '../../src/data/invert.js';
import { runSteps, type Sample } from '../../src/data/pipeline.js';
import { loadPreset } from '../../src/data/presets.js';
import { mat4 } from '../../src/io/nifti/mat4.js';
import { planSpacing } from '../../src/data/transforms/spacing.js';
import { columnNorms } from '../../src/io/nifti/mat4.js';
import { flip, rotate90 } from '../../src/data/transforms/flip.js';
import { spatialPad } from '../../src/data/transforms/croppad.js';
import { volume, type Vec3, type Volume } from '../../src/data/volume.js';
import { CASES, countDiff, maxAbs, maxAbsDiff, stored, tieMask, TDIR, tmanifest } from './monai-fixtures.js';

async function runPreset(c: string, preset: string) {
  const image = (await loadVolume(join(TDIR, 'inputs', `${c}_image.nii.gz`))) as Volume<Float32Array>;
  const label = await loadVolume(join(TDIR, 'inputs', `${c}_label.nii.gz`), 'label');
  return runSteps({ image, label } as Sample, loadPreset(preset).val);
}

function labelDiffsOffTies(actual: ArrayLike<number>, expected: ArrayLike<number>, ties: Uint8Array | null): { off: number; at: number } {
  let off = 0,
    at = 0;
  for (let i = 0; i < expected.length; i++)
    if (actual[i] !== expected[i]) {
      if (ties?.[i]) at++;
      else off++;
    }
  return { off, at };
}

describe('full preset chains from the NIfTI inputs match MONAI 0.9.0 end to end', () => {
  for (const c of CASES) {
    for (const preset of ['feta', 'flare', 'amos']) {
      it(`${c} / ${preset}`, async () => {
        const pm = tmanifest.cases[c].presets[preset];
        const last = pm.steps.at(-1);
        const { sample, records } = await runPreset(c, preset);
        assert.deepEqual([1, ...sample.image.shape], pm.final_shape);
        assert.deepEqual(sample.foreground, { start: pm.crop_box.box_start, end: pm.crop_box.box_end });
        assert.equal(records.length, pm.steps.length - 2); // AddChanneld and ToTensord are not steps here
        const expImg = stored(c, last.image).data as Float32Array;
        // Two float32 roundings (Spacingd, then the window) may each move a value by one ulp.
        assert.ok(maxAbsDiff(sample.image.data, expImg) <= 4e-7 * Math.max(1, maxAbs(expImg)), `image ${maxAbsDiff(sample.image.data, expImg)}`);
        const expLab = stored(c, last.label).data as Uint8Array;
        const n = countDiff(sample.label!.data, expLab);
        assert.ok(n <= 0.007 * expLab.length, `${n} label voxels differ`);
        if (preset === 'feta') assert.equal(n, 0, 'no resampling: labels are exact');
        for (let r = 0; r < 4; r++)
          for (let k = 0; k < 4; k++) {
            assert.ok(Math.abs(sample.image.affine[r * 4 + k]! - last.affine[r][k]) <= 2e-6, `affine [${r}][${k}]`);
          }
      });
    }
  }
});

describe('invert(): predictions go back onto the original grid like MONAI Invertd', () => {
  for (const c of CASES) {
    for (const preset of ['feta', 'flare', 'amos']) {
      it(`${c} / ${preset}: label (nearest) and probabilities (bilinear)`, async () => {
        const pm = tmanifest.cases[c].presets[preset];
        const load = tmanifest.cases[c].load;
        const { sample } = await runPreset(c, preset);
        const finalLabel = stored(c, pm.steps.at(-1).label).data as Uint8Array;
        const back = invert({ data: Float32Array.from(finalLabel), channels: 1 }, sample.image, 'nearest');
        assert.deepEqual(back.shape, load.image.shape.slice(1));
        for (let k = 0; k < 16; k++) assert.ok(Math.abs(back.affine[k]! - mat4(load.affine)[k]!) <= 1e-12, 'original affine restored');
        const expected = stored(c, pm.invert.label_nearest.pred).data as Uint8Array;
        // Ties only occur in the Spacing inverse; the test rule of SEMANTICS §3.7 uses its exact coordinates.
        const sp = sample.image.ops.find((o) => o.kind === 'spacing');
        const ties =
          sp && sp.kind === 'spacing' ? tieMask(sp.inShape, sp.outShape, planSpacing(sp.outShape, mat4(sp.outAffine), columnNorms(mat4(sp.inAffine)), sp.inShape).xform) : null;
        const d = labelDiffsOffTies(back.data, expected, ties);
        assert.equal(d.off, 0, `${d.off} voxels differ away from ties (${d.at} at ties)`);
        if (preset === 'feta') assert.equal(d.at, 0);
        const post = pm.invert.official_post;
        if (post.probs && typeof post.probs === 'object') {
          const C = post.nclasses as number;
          const m = finalLabel.length;
          const probs = new Float32Array(C * m);
          for (let i = 0; i < m; i++) {
            const logits = Array.from({ length: C }, (_, k) => 4 * (finalLabel[i] === k ? 1 : 0) + 0.1 * k);
            const mx = Math.max(...logits);
            const e = logits.map((l) => Math.exp(l - mx));
            const s = e.reduce((a, b) => a + b, 0);
            for (let k = 0; k < C; k++) probs[k * m + i] = e[k]! / s;
          }
          const pb = invert({ data: probs, channels: C }, sample.image, 'bilinear');
          const expProbs = stored(c, post.probs).data as Float32Array;
          assert.ok(maxAbsDiff(pb.data, expProbs) <= 3e-7, `probs max diff ${maxAbsDiff(pb.data, expProbs)}`);
          const expArg = stored(c, post.argmax).data as Uint8Array;
          const N = expArg.length;
          for (let i = 0; i < N; i++) {
            let best = 0;
            for (let k = 1; k < C; k++) if (pb.data[k * N + i]! > pb.data[best * N + i]!) best = k;
            const sorted = Array.from({ length: C }, (_, k) => expProbs[k * N + i]!).sort((a, b) => b - a);
            if (sorted[0]! - sorted[1]! > 1e-5) assert.equal(best, expArg[i], `argmax at ${i}`);
          }
        }
      });
    }
  }

  it('invert(forward(x)) is the identity for crop, pad, flip, rot90 and orientation (any axcodes)', () => {
    const shape: Vec3 = [5, 4, 3];
    const data = Float32Array.from({ length: 60 }, (_, i) => i + 1);
    const c = Math.cos(0.2),
      s = Math.sin(0.2);
    const v = volume(
      data,
      shape,
      mat4([
        [0, 0, -2, 10],
        [c * 0.9, -s, 0, 3],
        [s * 0.9, c, 0, -7],
        [0, 0, 0, 1],
      ]),
    );
    let t: Volume = v;
    for (const code of ['LPI', 'SAR']) {
      t = runSteps({ image: v as Volume<Float32Array> }, [
        { op: 'orientation', axcodes: code },
        { op: 'cropForeground', threshold: 10 },
      ]).sample.image;
      t = spatialPad(t, [9, 8, 7]);
      t = flip(t, [0, 2]);
      t = rotate90(t, 1, [1, 2]);
      const back = invert({ data: t.data, channels: 1 }, t, 'nearest');
      assert.deepEqual(back.shape, shape);
      // Everything the foreground box kept comes back unchanged; everything outside it is 0.
      const kept = Array.from(back.data).filter((x, i) => x === data[i]).length;
      assert.ok(
        Array.from(back.data).every((x, i) => x === data[i] || x === 0),
        'values outside the crop box are 0',
      );
      assert.ok(kept >= 50 && data.every((x, i) => x <= 10 || back.data[i] === x), `all foreground values restored (${kept} kept)`);
      assert.deepEqual(Array.from(back.affine), Array.from(v.affine));
    }
  });
});
