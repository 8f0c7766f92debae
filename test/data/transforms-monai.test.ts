import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadVolume } from '../../src/data/load.js';
import { mat4, type Mat4 } from '../../src/io/nifti/mat4.js';
import { orientation } from '../../src/data/transforms/orientation.js';
import { planSpacing, spacing } from '../../src/data/transforms/spacing.js';
import { scaleIntensityRange } from '../../src/data/transforms/intensity.js';
import { cropForeground, spatialPad } from '../../src/data/transforms/croppad.js';
import type { Vec3, Volume } from '../../src/data/volume.js';
import { CASES, countDiff, maxAbs, maxAbsDiff, stored, storedVolume, tieMask, TDIR, tmanifest } from './monai-fixtures.js';

function assertAffine(actual: Mat4, rows: number[][], tol: number, what: string): void {
  for (let r = 0; r < 4; r++)
    for (let c = 0; c < 4; c++) {
      assert.ok(Math.abs(actual[r * 4 + c]! - rows[r]![c]!) <= tol, `${what}: [${r}][${c}] = ${actual[r * 4 + c]}, MONAI ${rows[r]![c]}`);
    }
}

function assertExact(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: size`);
  const n = countDiff(actual, expected);
  assert.equal(n, 0, `${what}: ${n} values differ (max ${maxAbsDiff(actual, expected)})`);
}

function inputPath(c: string, key: 'image' | 'label'): string {
  return join(TDIR, 'inputs', `${c}_${key}.nii.gz`);
}

const PRESETS = tmanifest.presets as Record<string, { pixdim: Vec3 | null; a_min: number; a_max: number }>;

describe('LoadImaged + AddChanneld', () => {
  for (const c of CASES) {
    it(c, async () => {
      const load = tmanifest.cases[c].load;
      const img = await loadVolume(inputPath(c, 'image'));
      const lab = await loadVolume(inputPath(c, 'label'), 'label');
      assert.deepEqual([img.channels, ...img.shape], load.image.shape);
      assertExact(img.data, stored(c, load.image).data as Float32Array, 'image');
      assertExact(lab.data, stored(c, load.label).data as Uint8Array, 'label');
      assertAffine(img.affine, load.affine, 1e-12, 'affine');
      assertAffine(lab.affine, load.affine, 1e-12, 'label affine');
    });
  }
});

describe('each deterministic transform, run from the stored previous stage, matches MONAI 0.9.0', () => {
  for (const c of CASES) {
    for (const preset of ['feta', 'flare', 'amos']) {
      it(`${c} / ${preset}`, () => {
        const pm = tmanifest.cases[c].presets[preset];
        const p = PRESETS[preset]!;
        let prev = { image: tmanifest.cases[c].load.image, label: tmanifest.cases[c].load.label, affine: tmanifest.cases[c].load.affine };
        for (const step of pm.steps) {
          const img = storedVolume(c, prev.image, prev.affine) as Volume<Float32Array>;
          const lab = storedVolume(c, prev.label, prev.affine);
          const expImg = stored(c, step.image).data as Float32Array;
          const expLab = stored(c, step.label).data as Uint8Array;
          const what = `${c}/${preset}/${step.transform}`;
          switch (step.transform) {
            case 'Spacingd': {
              const plan = planSpacing(img.shape, img.affine, p.pixdim!);
              const d = step.details;
              assert.deepEqual(plan.outShape, d.output_shape, `${what}: output shape (extent ${plan.extent})`);
              for (let k = 0; k < 3; k++) assert.ok(Math.abs(plan.extent[k]! - d.extent_plus_one_unrounded[k]) < 1e-9, `${what}: extent ${k}`);
              const xf = mat4(d.xform_out_to_in_voxels);
              for (let k = 0; k < 12; k++) assert.ok(Math.abs(plan.xform[k]! - xf[k]!) < 1e-7, `${what}: xform[${k}] ${plan.xform[k]} vs ${xf[k]}`);
              const oi = spacing(img, p.pixdim!, 'bilinear');
              const ol = spacing(lab, p.pixdim!, 'nearest');
              assertAffine(oi.affine, step.affine, 2e-6, `${what}: affine`);
              assert.ok(maxAbsDiff(oi.data, expImg) <= 2e-7 * maxAbs(expImg), `${what}: image max diff ${maxAbsDiff(oi.data, expImg)}`);
              const ties = tieMask(plan.outShape, img.shape, plan.xform);
              let off = 0,
                atTies = 0;
              for (let i = 0; i < expLab.length; i++)
                if (ol.data[i] !== expLab[i]) {
                  if (ties[i]) atTies++;
                  else off++;
                }
              assert.equal(off, 0, `${what}: ${off} label voxels differ away from .5 ties (${atTies} at ties)`);
              assert.ok(atTies <= 0.007 * expLab.length, `${what}: ${atTies} tie voxels differ`);
              break;
            }
            case 'Orientationd': {
              const oi = orientation(img, 'RAS');
              const ol = orientation(lab, 'RAS');
              assertExact(oi.data, expImg, `${what}: image`);
              assertExact(ol.data, expLab, `${what}: label`);
              assertAffine(oi.affine, step.affine, 0, `${what}: affine (bit-exact float32)`);
              assert.equal(oi.ops.at(-1)!.kind, 'orientation');
              break;
            }
            case 'ScaleIntensityRanged':
              assertExact(scaleIntensityRange(img, { aMin: p.a_min, aMax: p.a_max, bMin: 0, bMax: 1, clip: true }).data, expImg, `${what}: image`);
              break;
            case 'CropForegroundd': {
              const { box, out } = cropForeground(img, [img, lab]);
              assert.deepEqual(box, { start: step.details.box_start, end: step.details.box_end }, `${what}: box`);
              assertExact(out[0]!.data, expImg, `${what}: image`);
              assertExact(out[1]!.data, expLab, `${what}: label`);
              assertAffine(out[0]!.affine, step.affine, 0, `${what}: MONAI keeps the uncropped affine`);
              assertAffine(out[0]!.gridAffine, step.details.affine_of_cropped_grid_NOT_stored_by_monai, 1e-9, `${what}: grid affine`);
              break;
            }
            default:
              break; // AddChanneld and ToTensord do not change values.
          }
          prev = { image: step.image, label: step.label, affine: step.affine };
        }
      });
    }
  }
});

describe('SpatialPadd matches MONAI (symmetric and end, odd amounts, shrink requests, -1)', () => {
  for (const c of CASES) {
    it(c, () => {
      const pads = tmanifest.cases[c].pad;
      const amos = tmanifest.cases[c].presets.amos.steps.at(-1);
      for (const method of ['symmetric', 'end'] as const) {
        const size = JSON.parse(/spatial_size=(\[[^\]]*\])/.exec(pads[method].call)![1]!) as number[];
        const img = storedVolume(c, amos.image, amos.affine) as Volume<Float32Array>;
        const lab = storedVolume(c, amos.label, amos.affine);
        assertExact(spatialPad(img, size, method).data, stored(c, pads[method].image).data as Float32Array, `${c} pad ${method} image`);
        assertExact(spatialPad(lab, size, method).data, stored(c, pads[method].label).data as Uint8Array, `${c} pad ${method} label`);
      }
    });
  }
});
