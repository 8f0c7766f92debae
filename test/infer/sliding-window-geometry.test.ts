/**
 * Sliding-window geometry against MONAI 0.9.0 (fixture layouts and importance maps in
 * tiny_sliding_window*.safetensors, see test/fixtures/PROVENANCE.md), and the streaming
 * accumulator against a literal pad -> accumulate -> divide -> crop implementation.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { get, maxAbsDiff } from '../helpers/fixtures.js';
import {
  computePadding,
  scanIntervals,
  windowStarts,
  windowGrid,
  planSlidingWindow,
  importanceMap,
  clampImportanceMap,
  extractWindow,
  SlidingWindowAccumulator,
  type Size3,
} from '../../src/infer/sliding-window-geometry.js';

const SW = 'tiny_sliding_window.safetensors';
const SW1X = 'tiny_sliding_window_monai1x.safetensors';

/** Deterministic pseudo-random floats (xorshift32), so the tests need no fixtures for the data. */
function rand(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = (s / 2 ** 32) * 20 - 10;
  }
  return out;
}

describe('sliding-window geometry (MONAI 0.9.0)', () => {
  it('pads only dimensions smaller than the ROI, diff//2 before and the rest after', () => {
    assert.deepEqual(computePadding([45, 40, 37], [32, 32, 32]), { before: [0, 0, 0], after: [0, 0, 0], paddedSize: [45, 40, 37] });
    // The fixture's sw_pad_gaussian: F.pad [0,0,0,0,6,6].
    assert.deepEqual(computePadding([20, 40, 37], [32, 32, 32]), { before: [6, 0, 0], after: [6, 0, 0], paddedSize: [32, 40, 37] });
    // Odd differences put the extra voxel after; a non-positive ROI entry means "whole image".
    assert.deepEqual(computePadding([19, 5, 40], [32, 8, -1]), { before: [6, 1, 0], after: [7, 2, 0], paddedSize: [32, 8, 40] });
  });

  it('scan interval: int(roi·(1−overlap)) floored at 1, or the ROI where it equals the (padded) image', () => {
    assert.deepEqual(scanIntervals([45, 40, 37], [32, 32, 32], 0.5), [16, 16, 16]);
    assert.deepEqual(scanIntervals([32, 40, 37], [32, 32, 32], 0.5), [32, 16, 16]);
    assert.deepEqual(scanIntervals([96, 200, 97], [96, 96, 96], 0.25), [96, 72, 72]);
    assert.deepEqual(scanIntervals([45, 40, 37], [32, 32, 32], 0.99), [1, 1, 1]);
    assert.deepEqual(scanIntervals([45, 40, 37], [32, 32, 32], 0), [32, 32, 32]);
    assert.throws(() => scanIntervals([45, 40, 37], [32, 32, 32], 1), RangeError);
    assert.throws(() => scanIntervals([45, 40, 37], [32, 32, 32], -0.1), RangeError);
  });

  it('window starts shift the last window inwards (45/32/16 -> 0, 13) and enumerate row-major D,H,W', () => {
    assert.deepEqual(windowStarts([45, 40, 37], [32, 32, 32], [16, 16, 16]), [
      [0, 13],
      [0, 8],
      [0, 5],
    ]);
    assert.deepEqual(windowGrid([45, 40, 37], [32, 32, 32], [16, 16, 16]), [
      [0, 0, 0],
      [0, 0, 5],
      [0, 8, 0],
      [0, 8, 5],
      [13, 0, 0],
      [13, 0, 5],
      [13, 8, 0],
      [13, 8, 5],
    ]);
    // Size 33 with interval 16: 16 would overrun, so it becomes 1; size 80: 0, 16, 32, 48 (48+32 = 80 stops).
    assert.deepEqual(windowStarts([33, 80, 32], [32, 32, 32], [16, 16, 32]), [[0, 1], [0, 16, 32, 48], [0]]);
    // Interval 0 (MONAI guards it) gives one window.
    assert.deepEqual(windowStarts([40, 40, 40], [32, 32, 32], [0, 16, 16])[0], [0]);
  });

  it('plans the fixture cases: sw_gaussian/sw_constant (8 windows) and sw_pad_gaussian (padded 32x40x37, 4 windows)', () => {
    const a = planSlidingWindow([45, 40, 37], [32, 32, 32], 0.5);
    assert.deepEqual(a.interval, [16, 16, 16]);
    assert.deepEqual(a.starts, [
      [0, 0, 0],
      [0, 0, 5],
      [0, 8, 0],
      [0, 8, 5],
      [13, 0, 0],
      [13, 0, 5],
      [13, 8, 0],
      [13, 8, 5],
    ]);
    const b = planSlidingWindow([20, 40, 37], [32, 32, 32], 0.5);
    assert.deepEqual(b.padding.paddedSize, [32, 40, 37]);
    assert.deepEqual(b.padding.before, [6, 0, 0]);
    assert.deepEqual(b.interval, [32, 16, 16]);
    assert.deepEqual(b.starts, [
      [0, 0, 0],
      [0, 0, 5],
      [0, 8, 0],
      [0, 8, 5],
    ]);
  });
});

describe('importance maps', () => {
  for (const roi of [
    [32, 32, 32],
    [16, 24, 20],
  ] as const) {
    const key = roi.join('x');
    it(`MONAI 0.9.0 gaussian ${key}: raw and clamped maps match the fixture`, () => {
      const raw = importanceMap(roi, 'gaussian', { clamp: false });
      const clamped = importanceMap(roi, 'gaussian');
      // Measured: 16x24x20 is bit-identical; 32³ differs by ≤ 3.1e-7 at 4 kernel taps (offsets ±9, ±10),
      // where torch's float32 erf is 1 ulp away from the correctly rounded one we use.
      assert.ok(maxAbsDiff(raw, get(SW, `importance_map.gaussian.${key}.raw`).data) <= 1e-6);
      assert.ok(maxAbsDiff(clamped, get(SW, `importance_map.gaussian.${key}.clamped`).data) <= 1e-6);
    });
  }

  it('MONAI 0.9.0 map is asymmetric for even sizes (peak at size//2) and the clamp hits 18,819 voxels of 32³', () => {
    const raw = importanceMap([32, 32, 32], 'gaussian', { clamp: false });
    const at = (i: number, j: number, k: number) => raw[(i * 32 + j) * 32 + k]!;
    assert.equal(at(16, 16, 16), 1);
    assert.ok(at(15, 16, 16) < 1);
    assert.equal(at(1, 16, 16), at(31, 16, 16)); // offsets −15 and +15 mirror each other
    assert.ok(at(0, 16, 16) < at(31, 16, 16)); // offset −16 has no +16 counterpart
    let below = 0;
    for (const v of raw) if (v < Math.fround(1e-3)) below++;
    assert.equal(below, 18819);
  });

  it('MONAI >= 1.1 gaussian (sampled, symmetric, not normalised) matches the 1.3.2 fixture', () => {
    const m = importanceMap([32, 32, 32], 'gaussian', { variant: 'monai1x' });
    // ≤ 1 ulp (torch's float32 exp vs correctly rounded exp).
    assert.ok(maxAbsDiff(m, get(SW1X, 'importance_map.gaussian_monai1x.32x32x32').data) <= 2e-7);
    const peak = m[(15 * 32 + 15) * 32 + 15]!;
    assert.ok(Math.abs(peak - 0.977) < 1e-3, `peak ${peak}`);
    assert.equal(m[(16 * 32 + 16) * 32 + 16], peak);
  });

  it('constant mode is all ones; the clamp uses the smallest non-zero weight when that exceeds 1e-3', () => {
    assert.ok(importanceMap([4, 5, 6], 'constant').every((v) => v === 1));
    const w = Float32Array.from([0, 0.5, 0.25, 1]);
    assert.deepEqual([...clampImportanceMap(w.slice())], [0.25, 0.5, 0.25, 1]); // 0.9.0 ignores zeros
    assert.deepEqual([...clampImportanceMap(w.slice(), 'monai1x')], [Math.fround(1e-3), 0.5, 0.25, 1]);
    assert.throws(() => importanceMap([32, 32], 'gaussian'), RangeError);
  });
});

/** MONAI, literally: pad the input, accumulate into a padded per-channel output and count, divide, crop. */
function literalMonai(
  channels: number,
  imageSize: Size3,
  roi: Size3,
  overlap: number,
  weights: Float32Array,
  predict: (window: Float32Array, start: readonly number[]) => Float32Array,
  input: Float32Array,
  inChannels: number,
): Float32Array {
  const plan = planSlidingWindow(imageSize, roi, overlap);
  const [PD, PH, PW] = plan.padding.paddedSize;
  const [bd, bh, bw] = plan.padding.before;
  const [D, H, W] = imageSize;
  const padded = new Float32Array(inChannels * PD * PH * PW);
  for (let c = 0; c < inChannels; c++)
    for (let d = 0; d < D; d++)
      for (let h = 0; h < H; h++)
        for (let w = 0; w < W; w++) {
          padded[((c * PD + d + bd) * PH + h + bh) * PW + w + bw] = input[((c * D + d) * H + h) * W + w]!;
        }
  const out = new Float32Array(channels * PD * PH * PW);
  const cnt = new Float32Array(channels * PD * PH * PW);
  const [rd, rh, rw] = roi;
  for (const s of plan.starts) {
    const win = new Float32Array(inChannels * rd * rh * rw);
    let p = 0;
    for (let c = 0; c < inChannels; c++)
      for (let i = 0; i < rd; i++)
        for (let j = 0; j < rh; j++)
          for (let k = 0; k < rw; k++) {
            win[p++] = padded[((c * PD + s[0] + i) * PH + s[1] + j) * PW + s[2] + k]!;
          }
    const pred = predict(win, s);
    for (let c = 0; c < channels; c++)
      for (let i = 0; i < rd; i++)
        for (let j = 0; j < rh; j++)
          for (let k = 0; k < rw; k++) {
            const o = ((c * PD + s[0] + i) * PH + s[1] + j) * PW + s[2] + k;
            const r = (i * rh + j) * rw + k;
            out[o] = Math.fround(out[o]! + Math.fround(weights[r]! * pred[c * rd * rh * rw + r]!));
            cnt[o] = Math.fround(cnt[o]! + weights[r]!);
          }
  }
  const res = new Float32Array(channels * D * H * W);
  for (let c = 0; c < channels; c++)
    for (let d = 0; d < D; d++)
      for (let h = 0; h < H; h++)
        for (let w = 0; w < W; w++) {
          const o = ((c * PD + d + bd) * PH + h + bh) * PW + w + bw;
          res[((c * D + d) * H + h) * W + w] = Math.fround(out[o]! / cnt[o]!);
        }
  return res;
}

describe('window extraction and SlidingWindowAccumulator', () => {
  const cases: { image: Size3; roi: Size3; overlap: number; mode: 'gaussian' | 'constant' }[] = [
    { image: [45, 40, 37], roi: [32, 32, 32], overlap: 0.5, mode: 'gaussian' },
    { image: [20, 40, 37], roi: [32, 32, 32], overlap: 0.5, mode: 'gaussian' },
    { image: [13, 9, 30], roi: [16, 12, 8], overlap: 0.25, mode: 'constant' },
    { image: [7, 5, 6], roi: [10, 8, 9], overlap: 0.5, mode: 'gaussian' }, // padded in every dimension
  ];
  for (const { image, roi, overlap, mode } of cases) {
    it(`bit-identical to the literal pad/accumulate/crop for ${image.join('x')} roi ${roi.join('x')} (${mode})`, () => {
      const inC = 2;
      const outC = 3;
      const vox = image[0] * image[1] * image[2];
      const input = rand(inC * vox, 7);
      const rv = roi[0] * roi[1] * roi[2];
      const w = importanceMap(roi, mode);
      // A "model" whose output depends on the window contents and position, like real logits do
      // (InstanceNorm makes real predictions window-dependent too).
      const predict = (win: Float32Array, s: readonly number[]) => {
        const out = new Float32Array(outC * rv);
        for (let c = 0; c < outC; c++) for (let r = 0; r < rv; r++) out[c * rv + r] = Math.fround(win[(c % inC) * rv + r]! * (c + 1) + s[0]! - s[2]! * 0.25);
        return out;
      };
      const ref = literalMonai(outC, image, roi, overlap, w, predict, input, inC);

      const plan = planSlidingWindow(image, roi, overlap);
      const output = new Float32Array(outC * vox).fill(123); // caller-supplied, gets zeroed
      const acc = SlidingWindowAccumulator.forPlan(plan, outC, { output });
      const win = new Float32Array(inC * rv);
      for (const s of plan.starts) {
        extractWindow(input, inC, image, plan.padding.before, s, plan.roi, win);
        acc.add(s, predict(win, s), w);
      }
      const got = acc.finalize();
      assert.equal(got, output, 'result lives in the caller-supplied buffer');
      assert.equal(acc.windowsAdded, plan.starts.length);
      assert.deepEqual(new Uint32Array(got.buffer), new Uint32Array(ref.buffer));
    });
  }

  it('accepts predictions as subarrays of a batch and rejects wrong sizes', () => {
    const acc = new SlidingWindowAccumulator({ channels: 2, imageSize: [4, 4, 4], roi: [4, 4, 4] });
    const batch = new Float32Array(3 * 2 * 64).fill(5);
    acc.add([0, 0, 0], batch.subarray(128, 256), importanceMap([4, 4, 4], 'constant'));
    assert.ok(acc.finalize().every((v) => v === 5));
    assert.throws(() => acc.add([0, 0, 0], batch.subarray(0, 128), new Float32Array(64)), /after finalize/);
    const acc2 = new SlidingWindowAccumulator({ channels: 2, imageSize: [4, 4, 4], roi: [4, 4, 4] });
    assert.throws(() => acc2.add([0, 0, 0], new Float32Array(10), new Float32Array(64)), RangeError);
    assert.throws(() => new SlidingWindowAccumulator({ channels: 2, imageSize: [4, 4, 4], roi: [4, 4, 4], count: new Float32Array(3) }), RangeError);
  });

  it('extractWindow zero-fills the padding and copies the interior', () => {
    const input = Float32Array.from({ length: 2 * 3 * 2 * 2 }, (_, i) => i + 1); // C=2, 3x2x2
    const win = new Float32Array(2 * 4 * 2 * 3).fill(-1);
    extractWindow(input, 2, [3, 2, 2], [1, 0, 1], [0, 0, 0], [4, 2, 3], win);
    // depth 0 and width 0 are padding; depth d=1..3 maps to input d-1, width k=1..2 to k-1.
    const expect: number[] = [];
    for (let c = 0; c < 2; c++)
      for (let i = 0; i < 4; i++)
        for (let j = 0; j < 2; j++)
          for (let k = 0; k < 3; k++) {
            expect.push(i === 0 || k === 0 ? 0 : input[((c * 3 + i - 1) * 2 + j) * 2 + k - 1]!);
          }
    assert.deepEqual([...win], expect);
  });
});
