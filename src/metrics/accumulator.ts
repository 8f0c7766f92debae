/**
 * Accumulate-then-aggregate metric collection in the style of MONAI's Cumulative metrics: add()
 * computes one case's per-class metrics immediately (the volumes are not kept), rows() returns
 * everything added, aggregate() reduces.
 *
 * Reductions, per metric:
 * - per class ("mean_batch" in MONAI): mean over cases, NaN excluded (both-empty cases). Infinity
 *   (HD95 with exactly one empty mask) is *not* excluded, as in MONAI, so such a class's HD95 mean
 *   is Infinity; `finiteMean` and `infinite` give the view without those cases.
 * - overall ("mean" in MONAI): per case, the mean over classes (NaN excluded); then the mean over
 *   the cases that had at least one non-NaN class. MONAI returns 0 where nothing is left; we return NaN.
 * JSON output (toJSON) writes NaN and ±Infinity as null.
 */
import type { Spacing3 } from './edt.js';
import type { Shape3 } from './surface.js';
import { computeSegmentationMetrics, type ClassMetrics, type LabelArray, type SegmentationMetricOptions } from './segmentation.js';

export const METRIC_NAMES = ['dice', 'hd95', 'nsd'] as const;
export type MetricName = (typeof METRIC_NAMES)[number];

export interface CaseMetrics {
  caseId: string;
  spacing: Spacing3;
  classes: ClassMetrics[];
}

export interface MetricSummary {
  /** mean over non-NaN values (Infinity propagates) */
  mean: number;
  /** mean over finite values only */
  finiteMean: number;
  /** number of non-NaN values */
  count: number;
  /** number of NaN values (class absent from both pred and gt) */
  nan: number;
  /** number of infinite values (class present in only one of pred/gt) */
  infinite: number;
}

export interface ClassSummary {
  label: number;
  name?: string;
  dice: MetricSummary;
  hd95: MetricSummary;
  nsd: MetricSummary;
}

export interface AggregateMetrics {
  caseCount: number;
  perClass: ClassSummary[];
  /** MONAI "mean" reduction of each metric over cases and classes. */
  overall: Record<MetricName, number>;
}

export interface MetricAccumulatorOptions extends Omit<SegmentationMetricOptions, 'spacing'> {
  /** Names for the classes, parallel to `classes` (used in JSON). */
  classNames?: readonly string[];
  /** Default spacing when add() is not given one. */
  spacing?: Spacing3;
}

function summarise(values: number[]): MetricSummary {
  let sum = 0,
    count = 0,
    nan = 0,
    infinite = 0,
    fsum = 0;
  for (const v of values) {
    if (Number.isNaN(v)) {
      nan++;
      continue;
    }
    count++;
    sum += v;
    if (Number.isFinite(v)) fsum += v;
    else infinite++;
  }
  const finite = count - infinite;
  return { mean: count ? sum / count : NaN, finiteMean: finite ? fsum / finite : NaN, count, nan, infinite };
}

/** NaN / ±Infinity -> null (JSON has no such numbers), recursively. */
export function jsonSafe(x: unknown): unknown {
  if (typeof x === 'number') return Number.isFinite(x) ? x : null;
  if (Array.isArray(x)) return x.map(jsonSafe);
  if (x && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, jsonSafe(v)]));
  return x;
}

export class MetricAccumulator {
  private readonly opts: MetricAccumulatorOptions;
  private readonly data: CaseMetrics[] = [];

  constructor(opts: MetricAccumulatorOptions) {
    if (opts.classNames && opts.classNames.length !== opts.classes.length) throw new RangeError('classNames must parallel classes');
    this.opts = { ...opts, classes: [...opts.classes] };
  }

  get classes(): readonly number[] {
    return this.opts.classes;
  }

  /** Computes and stores one case's metrics; returns its row. */
  add(caseId: string, pred: LabelArray, gt: LabelArray, shape: Shape3, spacing?: Spacing3): CaseMetrics {
    const sp = spacing ?? this.opts.spacing ?? [1, 1, 1];
    const classes = computeSegmentationMetrics(pred, gt, shape, { ...this.opts, spacing: sp });
    const row: CaseMetrics = { caseId, spacing: [...sp] as unknown as Spacing3, classes };
    this.data.push(row);
    return row;
  }

  /** Stores a row computed elsewhere (e.g. in a worker); its classes must match this accumulator's. */
  addRow(row: CaseMetrics): void {
    const labels = row.classes.map((c) => c.label);
    if (labels.length !== this.opts.classes.length || labels.some((l, i) => l !== this.opts.classes[i])) {
      throw new RangeError(`row classes ${JSON.stringify(labels)} do not match ${JSON.stringify(this.opts.classes)}`);
    }
    this.data.push(row);
  }

  rows(): readonly CaseMetrics[] {
    return this.data;
  }

  reset(): void {
    this.data.length = 0;
  }

  aggregate(): AggregateMetrics {
    const perClass: ClassSummary[] = this.opts.classes.map((label, k) => {
      const s: ClassSummary = {
        label,
        dice: summarise(this.data.map((r) => r.classes[k]!.dice)),
        hd95: summarise(this.data.map((r) => r.classes[k]!.hd95)),
        nsd: summarise(this.data.map((r) => r.classes[k]!.nsd)),
      };
      if (this.opts.classNames) s.name = this.opts.classNames[k];
      return s;
    });
    const overall = {} as Record<MetricName, number>;
    for (const m of METRIC_NAMES) {
      // MONAI do_metric_reduction("mean"): class average per case, then average over cases.
      const perCase = this.data.map((r) => summarise(r.classes.map((c) => c[m])).mean).filter((v) => !Number.isNaN(v));
      overall[m] = perCase.length ? perCase.reduce((a, b) => a + b, 0) / perCase.length : NaN;
    }
    return { caseCount: this.data.length, perClass, overall };
  }

  /** Per-case rows and the aggregate, with NaN/Infinity as null. */
  toJSON(): unknown {
    const names = this.opts.classNames;
    return jsonSafe({
      cases: this.data.map((r) => ({
        caseId: r.caseId,
        spacing: r.spacing,
        classes: r.classes.map((c, k) => (names ? { name: names[k], ...c } : c)),
      })),
      ...this.aggregate(),
    });
  }
}
