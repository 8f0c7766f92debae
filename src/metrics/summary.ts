/**
 * Descriptive statistics of per-case metrics for cross-validation and comparison tables: mean and
 * sample standard deviation (n − 1, as pandas and the papers' "mean ± sd" use) over the finite values;
 * infinite values (HD95 with one side empty) are counted, not averaged, and NaN (class absent on both
 * sides) is left out.
 */
export interface Stat {
  /** finite values used */
  n: number;
  mean: number;
  /** sample standard deviation (n − 1); NaN for n < 2 */
  sd: number;
  median: number;
  /** values that were ±Infinity (excluded from mean and sd) */
  infinite: number;
}

export function describe(values: readonly number[]): Stat {
  const f = values.filter(Number.isFinite);
  const infinite = values.filter((v) => v === Infinity || v === -Infinity).length;
  const n = f.length;
  if (!n) return { n: 0, mean: NaN, sd: NaN, median: NaN, infinite };
  const mean = f.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(f.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : NaN;
  const s = [...f].sort((a, b) => a - b);
  const median = n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
  return { n, mean, sd, median, infinite };
}

/** Mean over the non-NaN entries (a case's mean foreground Dice); NaN when there are none. */
export function meanDefined(values: readonly number[]): number {
  const f = values.filter((v) => !Number.isNaN(v));
  return f.length ? f.reduce((a, b) => a + b, 0) / f.length : NaN;
}

/** "0.8812 ± 0.0301" (sd left out when undefined). */
export function formatMeanSd(s: Stat, digits = 4): string {
  if (!s.n) return 'n/a';
  return Number.isFinite(s.sd) ? `${s.mean.toFixed(digits)} ± ${s.sd.toFixed(digits)}` : s.mean.toFixed(digits);
}

/** HD95 cell: mean ± sd over the finite cases, with the count of infinite ones (one side empty). */
export function formatHd95(s: Stat): string {
  if (!s.n && s.infinite) return `inf (${s.infinite} cases)`;
  return `${formatMeanSd(s, 2)}${s.infinite ? ` (${s.infinite} inf)` : ''}`;
}
