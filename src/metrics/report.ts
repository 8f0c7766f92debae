/**
 * The files `uxnet evaluate` writes (PREFIX.csv, PREFIX.json), built from a MetricAccumulator, so that
 * anything else that scores predictions (`uxnet crossval-predict`) writes the same format, which
 * `uxnet compare` and every reader of evaluate's output take as they are.
 */
import { jsonSafe, type MetricAccumulator } from './accumulator.js';

function fmtCsv(v: number): string {
  if (Number.isNaN(v)) return '';
  if (v === Infinity) return 'inf';
  if (v === -Infinity) return '-inf';
  return String(v);
}

function csvField(s: string): string {
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** One row per case and class, then the per-class and overall means (NaN empty, ±Infinity as inf). */
export function evaluationCsv(acc: MetricAccumulator, classNames: string[]): string {
  const aggregate = acc.aggregate();
  const lines = [['case', 'label', 'name', 'dice', 'hd95', 'nsd', 'pred_voxels', 'gt_voxels'].join(',')];
  for (const r of acc.rows()) {
    r.classes.forEach((m, k) => {
      lines.push(
        [csvField(r.caseId), String(m.label), csvField(classNames[k]!), fmtCsv(m.dice), fmtCsv(m.hd95), fmtCsv(m.nsd), String(m.predVoxels), String(m.gtVoxels)].join(','),
      );
    });
  }
  for (const s of aggregate.perClass) {
    lines.push(['mean', String(s.label), csvField(s.name ?? ''), fmtCsv(s.dice.mean), fmtCsv(s.hd95.mean), fmtCsv(s.nsd.mean), '', ''].join(','));
  }
  lines.push(['mean', 'all', '', fmtCsv(aggregate.overall.dice), fmtCsv(aggregate.overall.hd95), fmtCsv(aggregate.overall.nsd), '', ''].join(','));
  return lines.join('\n') + '\n';
}

export interface EvaluationJsonInfo {
  predDir: string;
  gtDir: string;
  classes: number[];
  /** '' where a class has no name */
  classNames: string[];
  /** one tolerance, or one per class */
  nsdTolerance: number | number[];
  missingInPred: string[];
  missingInGt: string[];
  /** case id -> its files (relative to predDir and gtDir) and, where known, its shape */
  files: Record<string, { pred: string; gt: string; shape?: readonly number[] }>;
  /** more top-level fields (who made the predictions, how) */
  extra?: Record<string, unknown>;
}

/** evaluate's JSON: NaN and ±Infinity written as null (see `conventions`). */
export function evaluationJson(acc: MetricAccumulator, o: EvaluationJsonInfo): string {
  const json = {
    pred_dir: o.predDir,
    gt_dir: o.gtDir,
    classes: o.classes.map((label, k) => ({ label, name: o.classNames[k] || null })),
    nsd_tolerance_mm: o.nsdTolerance,
    spacing_source: 'ground-truth header pixdim',
    conventions:
      'NaN (class empty in both prediction and ground truth) and infinite HD95 (empty on one side only) are written as null; per-class means exclude NaN cases, so a class mean of HD95 is null when any case was empty on one side (see perClass[].hd95.finiteMean)',
    missing_in_pred: o.missingInPred,
    missing_in_gt: o.missingInGt,
    ...(o.extra ?? {}),
    ...(acc.toJSON() as object),
    files: o.files,
  };
  return JSON.stringify(jsonSafe(json), null, 1) + '\n';
}
