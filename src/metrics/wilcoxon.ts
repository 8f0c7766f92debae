/**
 * Paired Wilcoxon signed-rank test, two-sided, with the defaults of scipy.stats.wilcoxon (scipy
 * 1.17: zero_method='wilcox', correction=False, method='auto'), so p-values in our tables can be
 * checked against the usual tool:
 *   - zero differences are dropped from the ranks (but still counted as "zeros" for the choice of method);
 *   - ranks of |d| with ties averaged; the statistic is min(R+, R-);
 *   - n <= 50 with no ties and no zeros: the exact null distribution of R+ (p = 2·min(P(T ≥ ⌊R+⌋), P(T ≤ ⌈R+⌉)));
 *   - n <= 13 with ties or zeros: the exact sign-flip permutation distribution of R+ (all 2^n flips);
 *   - otherwise: the normal approximation with the tie-corrected variance and no continuity correction.
 * n here counts the pairs including zero differences, as scipy does when it picks the method.
 */
import { erfc } from '../engine/erf.js';

export interface WilcoxonResult {
  /** min(R+, R-) */
  statistic: number;
  /** two-sided p-value; NaN when every difference is zero (or there are no pairs) */
  pValue: number;
  method: 'exact' | 'permutation' | 'normal';
  /** pairs with a non-zero difference */
  n: number;
  zeros: number;
}

/** Average ranks (1-based) of `v`; ties get the mean of the ranks they span. */
export function averageRanks(v: readonly number[]): number[] {
  const idx = v.map((_, i) => i).sort((a, b) => v[a]! - v[b]!);
  const r = new Array<number>(v.length);
  for (let i = 0; i < idx.length; ) {
    let j = i;
    while (j + 1 < idx.length && v[idx[j + 1]!] === v[idx[i]!]) j++;
    const avg = (i + j + 2) / 2;
    for (let k = i; k <= j; k++) r[idx[k]!] = avg;
    i = j + 1;
  }
  return r;
}

/** Number of subsets of {1..n} with each sum 0..n(n+1)/2: the exact null distribution of R+ times 2^n. */
function signedRankCounts(n: number): number[] {
  const max = (n * (n + 1)) / 2;
  const c = new Array<number>(max + 1).fill(0);
  c[0] = 1;
  for (let k = 1; k <= n; k++) for (let s = max; s >= k; s--) c[s]! += c[s - k]!;
  return c;
}

const normalSf = (z: number) => 0.5 * erfc(z / Math.SQRT2);

/** Two-sided paired test of x against y (differences x - y). */
export function wilcoxonSignedRank(x: readonly number[], y: readonly number[]): WilcoxonResult {
  if (x.length !== y.length) throw new RangeError(`wilcoxon: paired samples differ in length (${x.length} and ${y.length})`);
  if (x.some((v) => !Number.isFinite(v)) || y.some((v) => !Number.isFinite(v))) throw new RangeError('wilcoxon: samples must be finite numbers');
  const all = x.map((v, i) => v - y[i]!);
  const d = all.filter((v) => v !== 0);
  const zeros = all.length - d.length;
  const n = d.length;
  if (n === 0) return { statistic: 0, pValue: NaN, method: 'exact', n: 0, zeros };
  const abs = d.map(Math.abs);
  const r = averageRanks(abs);
  let rPlus = 0,
    rMinus = 0;
  d.forEach((v, i) => (v > 0 ? (rPlus += r[i]!) : (rMinus += r[i]!)));
  const statistic = Math.min(rPlus, rMinus);
  const sorted = [...abs].sort((a, b) => a - b);
  const ties: number[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[i]) j++;
    ties.push(j - i + 1);
    i = j + 1;
  }
  const hasTies = ties.some((t) => t > 1);
  if (!hasTies && zeros === 0 && all.length <= 50) {
    const c = signedRankCounts(n);
    const total = 2 ** n;
    const lo = Math.floor(rPlus),
      hi = Math.ceil(rPlus);
    let sf = 0,
      cdf = 0;
    for (let s = 0; s < c.length; s++) {
      if (s >= lo) sf += c[s]!;
      if (s <= hi) cdf += c[s]!;
    }
    return { statistic, pValue: Math.min(1, (2 * Math.min(sf, cdf)) / total), method: 'exact', n, zeros };
  }
  if (all.length <= 13) {
    // Every sign assignment of the non-zero differences; zeros flip to themselves, so they scale both counts alike.
    let ge = 0,
      le = 0;
    const total = 2 ** n;
    for (let mask = 0; mask < total; mask++) {
      let s = 0;
      for (let i = 0; i < n; i++) if (mask & (1 << i)) s += r[i]!;
      if (s >= rPlus - 1e-9) ge++;
      if (s <= rPlus + 1e-9) le++;
    }
    return { statistic, pValue: Math.min(1, (2 * Math.min(ge, le)) / total), method: 'permutation', n, zeros };
  }
  const mean = (n * (n + 1)) / 4;
  const tieCorrection = ties.reduce((a, t) => a + t ** 3 - t, 0);
  const se = Math.sqrt((n * (n + 1) * (2 * n + 1) - tieCorrection / 2) / 24);
  const z = (rPlus - mean) / se;
  return { statistic, pValue: Math.min(1, 2 * normalSf(Math.abs(z))), method: 'normal', n, zeros };
}
