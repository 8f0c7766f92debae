/**
 * The paired Wilcoxon signed-rank test against scipy.stats.wilcoxon 1.17.1 (defaults: zero_method
 * 'wilcox', correction False, method 'auto'), values computed there and copied here, plus cases
 * small enough to count by hand. Also the descriptive statistics used by crossval/compare tables.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { wilcoxonSignedRank, averageRanks } from '../../src/metrics/wilcoxon.js';
import { describe as stat, meanDefined, formatMeanSd } from '../../src/metrics/summary.js';
import { boxStats, quantile } from '../../src/train/boxplot.js';

const close = (a: number, b: number, tol: number, what: string) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

describe('Wilcoxon signed-rank test', () => {
  it('ranks ties by their average rank', () => {
    assert.deepEqual(averageRanks([3, 1, 3, 2, 3]), [4, 1, 4, 2, 4]);
  });

  it('n = 3, all positive: exact p = 2 * 1/8 (hand count)', () => {
    // R+ = 6 is the largest of 2^3 equally likely sums; P(T >= 6) = 1/8, two-sided 1/4.
    const r = wilcoxonSignedRank([1.1, 2.2, 3.3], [1, 2, 3]);
    assert.equal(r.method, 'exact');
    assert.equal(r.statistic, 0);
    close(r.pValue, 0.25, 1e-15, 'p');
  });

  it('exact distribution when there are no ties or zeros (scipy: 5.0, 0.01953125)', () => {
    // |d| ranks: 0.006->1, 0.013->2, 0.019->3, 0.021->4, ...; R- = 1 + 4 = 5; 10 of the 1024 sign patterns have R <= 5 (sums of {}, 1..5, 1+2, 1+3, 1+4, 2+3), two-sided p = 20/1024.
    const d = [0.013, -0.021, 0.034, 0.045, 0.052, -0.006, 0.071, 0.088, 0.019, 0.027];
    const r = wilcoxonSignedRank(
      d,
      d.map(() => 0),
    );
    assert.equal(r.method, 'exact');
    assert.equal(r.statistic, 5);
    close(r.pValue, 0.01953125, 1e-15, 'p');
  });

  it('tied |differences| (as doubles) with n <= 13: permutation (scipy: 1.5, 0.046875)', () => {
    // 0.93-0.92 and 0.85-0.86 are the same double in magnitude, so ranks 1.5/1.5 and scipy switches to the permutation test.
    const x = [0.91, 0.85, 0.88, 0.79, 0.93, 0.87, 0.9],
      y = [0.89, 0.86, 0.84, 0.75, 0.92, 0.8, 0.85];
    const r = wilcoxonSignedRank(x, y);
    assert.equal(r.method, 'permutation');
    assert.equal(r.statistic, 1.5);
    close(r.pValue, 0.046875, 1e-15, 'p');
  });

  it('ties and a zero with n <= 13: exact sign-flip permutation (scipy: 2.5, 0.3125)', () => {
    const r = wilcoxonSignedRank([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [0.8, 0.9, 0.6, 0.6, 0.4, 0.3]);
    assert.equal(r.method, 'permutation');
    assert.equal(r.zeros, 1);
    assert.equal(r.statistic, 2.5);
    close(r.pValue, 0.3125, 1e-15, 'p');
  });

  it('ties and zeros with n > 13: normal approximation with tie correction (scipy: 81.0, 0.8413258689353011)', () => {
    const x = [0.5, 0.54, 0.56, 0.57, 0.57, 0.59, 0.62, 0.66, 0.69, 0.7, 0.7, 0.71, 0.74, 0.78, 0.81, 0.83, 0.83, 0.84, 0.86, 0.9];
    const y = [0.5, 0.52, 0.54, 0.56, 0.58, 0.61, 0.63, 0.65, 0.67, 0.69, 0.71, 0.73, 0.75, 0.77, 0.79, 0.82, 0.84, 0.86, 0.88, 0.9];
    const r = wilcoxonSignedRank(x, y);
    assert.equal(r.method, 'normal');
    assert.equal(r.statistic, 81);
    close(r.pValue, 0.8413258689353011, 1e-12, 'p');
  });

  it('n > 50: normal approximation (scipy: 731.0, 0.17556577014041042)', () => {
    const d = [
      0.2257, -0.0321, 0.7404, 0.2049, -0.4357, 0.4616, 1.404, 1.0471, -0.6037, -1.1654, -0.5233, 0.1413, -2.225, -0.1188, -1.1459, -0.6323, -0.4443, -0.2163, 0.5116, 1.1425,
      -0.0285, 1.4665, -0.5652, 0.4515, 1.0035, 0.194, -0.6435, -0.8217, -0.3577, 0.3202, -0.9096, -0.1092, -0.0592, 0.6408, 0.3147, 0.4554, -0.5538, -0.0296, 0.884, 1.5934,
      -1.1591, 1.6139, 1.4459, 0.8813, 0.3645, -0.2139, 1.558, 2.0603, 1.9016, 1.4151, 0.4574, -1.1083, 0.0955, 0.7565, -1.1884, 0.4951, 0.5299, 0.796, -1.0841, -0.5617,
    ];
    const r = wilcoxonSignedRank(
      d,
      d.map(() => 0),
    );
    assert.equal(r.method, 'normal');
    assert.equal(r.statistic, 731);
    close(r.pValue, 0.17556577014041042, 1e-12, 'p');
  });

  it('identical samples give NaN; unequal lengths are refused', () => {
    assert.ok(Number.isNaN(wilcoxonSignedRank([0.5, 0.6], [0.5, 0.6]).pValue));
    assert.throws(() => wilcoxonSignedRank([1, 2], [1]), /differ in length/);
  });
});

describe('summary statistics', () => {
  it('mean and sample sd over finite values; infinities counted apart', () => {
    const s = stat([1, 2, 3, 4, Infinity, NaN]);
    assert.equal(s.n, 4);
    assert.equal(s.mean, 2.5);
    close(s.sd, Math.sqrt(5 / 3), 1e-15, 'sd'); // squared deviations 2.25+0.25+0.25+2.25 = 5, / (4-1)
    assert.equal(s.median, 2.5);
    assert.equal(s.infinite, 1);
    assert.equal(formatMeanSd(stat([0.8, 0.9])), '0.8500 ± 0.0707');
    assert.equal(meanDefined([0.5, NaN, 0.7]), 0.6);
  });

  it('box statistics follow numpy percentiles and 1.5 IQR whiskers', () => {
    assert.equal(quantile([1, 2, 3, 4], 0.25), 1.75); // numpy.percentile([1,2,3,4], 25)
    const b = boxStats([1, 2, 3, 4, 100])!;
    assert.deepEqual([b.q1, b.median, b.q3], [2, 3, 4]);
    assert.equal(b.hi, 4);
    assert.deepEqual(b.outliers, [100]);
    assert.equal(b.mean, 22);
  });
});
