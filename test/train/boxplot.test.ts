/**
 * The box plots of `uxnet crossval` and `uxnet compare`: numpy's percentiles and Tukey whiskers by hand,
 * the y axis following the data below a fixed top, and names that do not fit under their boxes moved
 * into a legend.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PNG } from 'pngjs';
import { boxStats, quantile, renderBoxPlotPng, renderBoxPlotSvg, type BoxPlotSpec } from '../../src/train/boxplot.js';

const texts = (svg: string) => [...svg.matchAll(/<text [^>]*text-anchor="(\w+)"[^>]*>([^<]*)<\/text>/g)].map((m) => ({ anchor: m[1]!, s: m[2]! }));

describe('box plots', () => {
  it('quartiles as numpy.percentile (linear), whiskers at 1.5 IQR, outliers apart', () => {
    assert.equal(quantile([1, 2, 3, 4], 0.25), 1.75);
    assert.equal(quantile([1, 2, 3, 4], 0.5), 2.5);
    // 1..8 and 30: q1 = 3, q3 = 7, IQR 4, fences -3 and 13 -> 30 is an outlier, the upper whisker ends at 8
    const st = boxStats([5, 1, 30, 2, 3, 4, 6, 7, 8, Number.NaN])!;
    assert.deepEqual([st.q1, st.median, st.q3, st.lo, st.hi], [3, 5, 7, 1, 8]);
    assert.deepEqual(st.outliers, [30]);
    assert.equal(st.mean, 66 / 9);
    assert.equal(boxStats([Number.NaN]), null);
  });

  const dice = [0.71, 0.8, 0.85, 0.9, 0.95];
  const spec = (names: string[]): BoxPlotSpec => ({
    title: 't',
    yLabel: 'Dice',
    yMax: 1,
    groups: ['anterior', 'posterior'].map((g) => ({ name: g, boxes: names.map((n, i) => ({ name: n, values: dice, color: ['#111111', '#222222', '#333333'][i]! })) })),
  });

  it('short names sit under their boxes; the y axis runs from the data (0.7) to the fixed top (1)', () => {
    const svg = renderBoxPlotSvg(spec(['a', 'b']));
    const t = texts(svg);
    assert.deepEqual(
      t.filter((x) => x.s === 'a' || x.s === 'b').map((x) => x.anchor),
      ['middle', 'middle', 'middle', 'middle'],
      'one label per box, centred',
    );
    // niceRange(0.71, 1): step 0.05 -> [0.7, 1], ticks every 0.06
    assert.deepEqual(
      t.filter((x) => x.anchor === 'end').map((x) => x.s),
      ['0.7', '0.76', '0.82', '0.88', '0.94', '1'],
    );
    assert.match(svg, /height="360"/);
  });

  it('names too long for their slot go into a legend (one entry per name and colour), which adds rows', () => {
    const names = ['cv-uxnet-long-name', 'cv-swin_unetr-long', 'cv-transbts-long'];
    const svg = renderBoxPlotSvg(spec(names));
    const t = texts(svg);
    for (const n of names)
      assert.deepEqual(
        t.filter((x) => x.s === n).map((x) => x.anchor),
        ['start'],
        `${n}: once, in the legend`,
      );
    // three swatches in the box colours
    for (const c of ['#111111', '#222222', '#333333']) assert.match(svg, new RegExp(`<rect [^>]*width="12" height="10" fill="${c}"/>`));
    // 480 px wide: entries of 24 + 18 * 6 + 12 = 144 px, 3 to a row -> one row, 18 px taller
    assert.match(svg, /height="378"/);
    const png = PNG.sync.read(Buffer.from(renderBoxPlotPng(spec(names))));
    assert.deepEqual([png.width, png.height], [480, 378]);
  });
});
