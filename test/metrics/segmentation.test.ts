/**
 * Segmentation metrics on hand-computed cases (offset cubes with anisotropic spacing) and against
 * brute-force O(n²) surface distances (spheres), plus the empty-mask conventions and the accumulator.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { squaredEdt, maskEdges, surfaceDistances, percentile, computeSegmentationMetrics, MetricAccumulator, type Spacing3, type Shape3 } from '../../src/metrics/index.js';

function box(shape: Shape3, lo: number[], hi: number[], label = 1, into?: Uint8Array): Uint8Array {
  const [D, H, W] = shape;
  const v = into ?? new Uint8Array(D * H * W);
  for (let d = lo[0]!; d <= hi[0]!; d++) for (let h = lo[1]!; h <= hi[1]!; h++) for (let w = lo[2]!; w <= hi[2]!; w++) v[(d * H + h) * W + w] = label;
  return v;
}

function ball(shape: Shape3, c: number[], r: number, spacing: Spacing3, label = 1, into?: Uint8Array): Uint8Array {
  const [D, H, W] = shape;
  const v = into ?? new Uint8Array(D * H * W);
  for (let d = 0; d < D; d++)
    for (let h = 0; h < H; h++)
      for (let w = 0; w < W; w++) {
        const x = ((d - c[0]!) * spacing[0]) ** 2 + ((h - c[1]!) * spacing[1]) ** 2 + ((w - c[2]!) * spacing[2]) ** 2;
        if (x <= r * r) v[(d * H + h) * W + w] = label;
      }
  return v;
}

/** Surface voxels by the definition, independently of maskEdges: a face neighbour outside the mask or the volume. */
function bruteSurface(mask: Uint8Array, shape: Shape3): number[][] {
  const [D, H, W] = shape;
  const at = (d: number, h: number, w: number) => d >= 0 && d < D && h >= 0 && h < H && w >= 0 && w < W && mask[(d * H + h) * W + w] === 1;
  const out: number[][] = [];
  for (let d = 0; d < D; d++)
    for (let h = 0; h < H; h++)
      for (let w = 0; w < W; w++) {
        if (at(d, h, w) && (!at(d - 1, h, w) || !at(d + 1, h, w) || !at(d, h - 1, w) || !at(d, h + 1, w) || !at(d, h, w - 1) || !at(d, h, w + 1))) out.push([d, h, w]);
      }
  return out;
}

function bruteDirected(from: number[][], to: number[][], s: Spacing3): number[] {
  return from
    .map((a) => {
      let best = Infinity;
      for (const b of to) best = Math.min(best, ((a[0]! - b[0]!) * s[0]) ** 2 + ((a[1]! - b[1]!) * s[1]) ** 2 + ((a[2]! - b[2]!) * s[2]) ** 2);
      return Math.sqrt(best);
    })
    .sort((x, y) => x - y);
}

const sorted = (a: Float64Array) => [...a].sort((x, y) => x - y);

describe('distance transform and surfaces', () => {
  it('squaredEdt equals brute force on random sparse features with anisotropic spacing', () => {
    const shape: Shape3 = [9, 7, 11];
    const spacing: Spacing3 = [2.5, 0.7, 1.3];
    const n = 9 * 7 * 11;
    const f = new Uint8Array(n);
    let s = 12345;
    const pts: number[][] = [];
    for (let i = 0; i < n; i++) {
      s = (s * 1103515245 + 12345) % 2 ** 31;
      if (s % 37 === 0) {
        f[i] = 1;
        pts.push([Math.floor(i / 77), Math.floor(i / 11) % 7, i % 11]);
      }
    }
    assert.ok(pts.length > 3);
    const dt = squaredEdt(f, shape, spacing);
    for (let i = 0; i < n; i++) {
      const p = [Math.floor(i / 77), Math.floor(i / 11) % 7, i % 11];
      let best = Infinity;
      for (const q of pts) best = Math.min(best, ((p[0]! - q[0]!) * spacing[0]) ** 2 + ((p[1]! - q[1]!) * spacing[1]) ** 2 + ((p[2]! - q[2]!) * spacing[2]) ** 2);
      assert.ok(Math.abs(dt[i]! - best) <= 1e-9 * Math.max(1, best), `voxel ${p}: ${dt[i]} vs ${best}`);
    }
    assert.ok(squaredEdt(new Uint8Array(n), shape, spacing).every((v) => v === Infinity));
  });

  it('surface = face-neighbour erosion XOR mask, with the volume border counting as background', () => {
    const full = new Uint8Array(27).fill(1);
    const e = maskEdges(full, [3, 3, 3]);
    assert.equal(
      e.reduce((a, b) => a + b, 0),
      26,
    ); // only the centre is interior
    assert.equal(e[13], 0);
    // A 3x3x3 cube inside a larger volume: same 26; the 5³ cube has 125 − 27 = 98.
    assert.equal(
      maskEdges(box([7, 7, 7], [2, 2, 2], [4, 4, 4]), [7, 7, 7]).reduce((a, b) => a + b, 0),
      26,
    );
    assert.equal(
      maskEdges(box([9, 9, 9], [2, 2, 2], [6, 6, 6]), [9, 9, 9]).reduce((a, b) => a + b, 0),
      98,
    );
    // Edge-diagonal (not face) background does not make a surface voxel: a plus-shaped hole pattern.
    const shape: Shape3 = [5, 5, 5];
    const m = box(shape, [0, 0, 0], [4, 4, 4]);
    m[(0 * 5 + 0) * 5 + 0] = 0; // remove a corner: (1,1,1) only touches it diagonally
    assert.equal(maskEdges(m, shape)[(1 * 5 + 1) * 5 + 1], 0);
  });

  it('percentile follows numpy linear interpolation', () => {
    assert.equal(percentile([1, 2, 3, 4], 95), 3.8499999999999996); // numpy 2.4: same double
    assert.equal(percentile([10, 0], 95), 9.5);
    // Values printed by numpy 2.4.6's np.percentile for the same inputs.
    assert.equal(
      percentile(
        Array.from({ length: 98 }, (_, i) => i),
        95,
      ),
      92.14999999999999,
    );
    assert.equal(
      percentile(
        Array.from({ length: 37 }, (_, i) => 0.1 * i),
        95,
      ),
      3.42,
    );
    assert.equal(
      percentile(
        Array.from({ length: 37 }, (_, i) => 0.1 * i),
        37.5,
      ),
      1.35,
    );
    assert.equal(percentile([5], 95), 5);
    assert.equal(percentile([1, 2, 3, 4], 100), 4);
    assert.equal(percentile([1, 2, 3, 4], 0), 1);
    assert.ok(Number.isNaN(percentile([], 95)));
    assert.equal(percentile([Infinity, Infinity], 95), Infinity);
  });
});

describe('segmentation metrics', () => {
  it('two offset cubes: Dice, HD95 and NSD by hand, anisotropic spacing', () => {
    // gt: 5³ cube at d,h,w 5..9; pred: the same cube shifted +1 along D. Spacing (D,H,W) = (2, 1, 0.5) mm.
    const shape: Shape3 = [16, 14, 14];
    const spacing: Spacing3 = [2, 1, 0.5];
    const gt = box(shape, [5, 5, 5], [9, 9, 9]);
    const pred = box(shape, [6, 5, 5], [10, 9, 9]);
    // Directed pred -> gt (98 surface voxels): the 25 voxels of pred's top face d=10 are 1 D-step = 2 mm
    // from gt's top face; pred's bottom face d=6 has 9 voxels inside gt's interior rows whose nearest
    // gt surface is the W face (0.5 mm per step: w=6,8 -> 0.5, w=7 -> 1.0 via H or W); the other 64
    // pred surface voxels lie on gt's surface (0). gt -> pred is the mirror image.
    const expected = [...Array(64).fill(0), ...Array(6).fill(0.5), ...Array(3).fill(1), ...Array(25).fill(2)];
    const { predToGt, gtToPred } = surfaceDistances(pred, gt, shape, spacing);
    assert.deepEqual(sorted(predToGt), expected);
    assert.deepEqual(sorted(gtToPred), expected);
    const [m] = computeSegmentationMetrics(pred, gt, shape, { classes: [1], spacing, nsdTolerance: 1 });
    assert.equal(m!.dice, 0.8); // 2·100 / (125 + 125)
    assert.equal(m!.hd95, 2); // numpy: index 0.95·97 = 92.15 falls inside the 25 values of 2 mm
    assert.equal(m!.nsd, (73 + 73) / 196);
    assert.equal(computeSegmentationMetrics(pred, gt, shape, { classes: [1], spacing, nsdTolerance: 0.5 })[0]!.nsd, 140 / 196);
    assert.equal(computeSegmentationMetrics(pred, gt, shape, { classes: [1], spacing, nsdTolerance: 2 })[0]!.nsd, 1);
    // Isotropic spacing: the same 9 voxels are 1 mm away (H/W faces) and the top face 1 mm too.
    const iso = computeSegmentationMetrics(pred, gt, shape, { classes: [1] })[0]!;
    assert.equal(iso.hd95, 1);
  });

  it('sphere vs shifted sphere: HD95 and NSD from brute-force O(n²) surface distances', () => {
    const shape: Shape3 = [22, 26, 24];
    const spacing: Spacing3 = [1.5, 0.8, 1.1];
    const gt = ball(shape, [10, 12, 11], 7, spacing);
    const pred = ball(shape, [11.3, 13.1, 10.2], 6.4, spacing);
    const sp = bruteSurface(pred, shape);
    const sg = bruteSurface(gt, shape);
    const pg = bruteDirected(sp, sg, spacing);
    const gp = bruteDirected(sg, sp, spacing);
    const got = surfaceDistances(pred, gt, shape, spacing);
    assert.equal(got.predToGt.length, pg.length);
    assert.equal(got.gtToPred.length, gp.length);
    sorted(got.predToGt).forEach((v, i) => assert.ok(Math.abs(v - pg[i]!) < 1e-12));
    sorted(got.gtToPred).forEach((v, i) => assert.ok(Math.abs(v - gp[i]!) < 1e-12));
    const tol = 1.2;
    const [m] = computeSegmentationMetrics(pred, gt, shape, { classes: [1], spacing, nsdTolerance: tol });
    assert.ok(Math.abs(m!.hd95 - Math.max(percentile(pg, 95), percentile(gp, 95))) < 1e-12);
    const within = pg.filter((d) => d <= tol).length + gp.filter((d) => d <= tol).length;
    assert.equal(m!.nsd, within / (pg.length + gp.length));
    assert.ok(m!.hd95 > 0 && m!.nsd > 0 && m!.nsd < 1, JSON.stringify(m));
  });

  it('objects touching the volume border have a surface there (MONAI/scipy border_value=0)', () => {
    // gt fills the whole volume, pred all but the last W column: without border surfaces gt would have none.
    const shape: Shape3 = [4, 4, 6];
    const gt = box(shape, [0, 0, 0], [3, 3, 5]);
    const pred = box(shape, [0, 0, 0], [3, 3, 4]);
    const [m] = computeSegmentationMetrics(pred, gt, shape, { classes: [1], spacing: [1, 1, 2] });
    assert.equal(m!.hd95, 2); // gt's W=5 face is 2 mm from pred's W=4 face
    assert.ok(Number.isFinite(m!.hd95));
  });

  it('multi-class label maps (any integer/float array type) and the empty-mask conventions', () => {
    const shape: Shape3 = [10, 10, 10];
    const gt = new Int16Array(1000);
    const pred = new Float32Array(1000);
    box(shape, [1, 1, 1], [4, 4, 4], 1, gt as unknown as Uint8Array);
    box(shape, [1, 1, 1], [4, 4, 4], 1, pred as unknown as Uint8Array);
    box(shape, [6, 6, 6], [8, 8, 8], 2, gt as unknown as Uint8Array); // class 2 only in gt
    box(shape, [6, 1, 1], [8, 2, 2], 3, pred as unknown as Uint8Array); // class 3 only in pred
    const ms = computeSegmentationMetrics(pred, gt, shape, { classes: [1, 2, 3, 4] });
    assert.deepEqual(
      ms.map((m) => m.label),
      [1, 2, 3, 4],
    );
    assert.deepEqual([ms[0]!.dice, ms[0]!.hd95, ms[0]!.nsd], [1, 0, 1]);
    assert.deepEqual([ms[1]!.dice, ms[1]!.hd95, ms[1]!.nsd, ms[1]!.gtVoxels, ms[1]!.predVoxels], [0, Infinity, 0, 27, 0]);
    assert.deepEqual([ms[2]!.dice, ms[2]!.hd95, ms[2]!.nsd], [0, Infinity, 0]);
    assert.ok([ms[3]!.dice, ms[3]!.hd95, ms[3]!.nsd].every(Number.isNaN)); // absent from both
    assert.throws(() => computeSegmentationMetrics(pred, gt, [10, 10, 9], { classes: [1] }), RangeError);
    assert.throws(() => computeSegmentationMetrics(pred, gt, shape, { classes: [1, 2], nsdTolerance: [1] }), RangeError);
  });
});

describe('MetricAccumulator', () => {
  it('per-case rows, per-class means (NaN excluded, Infinity kept), MONAI overall mean, JSON with nulls', () => {
    const shape: Shape3 = [16, 14, 14];
    const acc = new MetricAccumulator({ classes: [1, 2], classNames: ['liver', 'tumour'], nsdTolerance: [1, 2] });
    // case a: class 1 = the offset cubes (Dice 0.8), class 2 absent from both (NaN).
    const gtA = box(shape, [5, 5, 5], [9, 9, 9]);
    const predA = box(shape, [6, 5, 5], [10, 9, 9]);
    acc.add('a', predA, gtA, shape, [2, 1, 0.5]);
    // case b: class 1 perfect, class 2 missed entirely (Dice 0, HD95 Infinity).
    const gtB = box(shape, [1, 1, 1], [3, 3, 3]);
    box(shape, [8, 8, 8], [9, 9, 9], 2, gtB);
    const predB = box(shape, [1, 1, 1], [3, 3, 3]);
    acc.add('b', predB, gtB, shape);
    assert.equal(acc.rows().length, 2);
    assert.deepEqual(acc.rows()[1]!.spacing, [1, 1, 1]);

    const agg = acc.aggregate();
    assert.equal(agg.caseCount, 2);
    const [c1, c2] = agg.perClass;
    assert.equal(c1!.name, 'liver');
    assert.equal(c1!.dice.mean, 0.9);
    assert.equal(c1!.hd95.mean, 1); // (2 + 0) / 2
    assert.deepEqual({ ...c2!.dice }, { mean: 0, finiteMean: 0, count: 1, nan: 1, infinite: 0 });
    assert.equal(c2!.hd95.mean, Infinity);
    assert.equal(c2!.hd95.infinite, 1);
    assert.ok(Number.isNaN(c2!.hd95.finiteMean));
    // overall Dice: case a -> mean(0.8) = 0.8 (NaN class skipped); case b -> mean(1, 0) = 0.5.
    assert.equal(agg.overall.dice, 0.65);

    const json = JSON.parse(JSON.stringify(acc)) as {
      cases: { caseId: string; classes: { name: string; hd95: number | null; dice: number | null }[] }[];
      perClass: { hd95: { mean: number | null } }[];
    };
    assert.equal(json.cases[0]!.classes[1]!.name, 'tumour');
    assert.equal(json.cases[0]!.classes[1]!.dice, null); // NaN
    assert.equal(json.cases[1]!.classes[1]!.hd95, null); // Infinity
    assert.equal(json.perClass[1]!.hd95.mean, null);

    assert.throws(() => acc.addRow({ caseId: 'x', spacing: [1, 1, 1], classes: [] }), RangeError);
    acc.reset();
    assert.equal(acc.rows().length, 0);
    assert.ok(Number.isNaN(acc.aggregate().overall.dice));
  });
});
