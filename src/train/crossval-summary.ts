/**
 * RUN/summary.{json,csv,md} and the box plots of a cross-validation, from the per-fold records
 * (RUN/fold_k/fold.json). Statistics are over cases (mean ± sample sd), per fold and over all folds.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { percentileSorted } from '../data/transforms/intensity.js';
import { writeFileAtomic } from '../io/fs.js';
import { jsonSafe } from '../metrics/accumulator.js';
import { describe, formatHd95, formatMeanSd, meanDefined, type Stat } from '../metrics/summary.js';
import { BOX_COLORS, renderBoxPlotPng, renderBoxPlotSvg, type BoxGroup } from './boxplot.js';
import type { Splits } from './crossval.js';

/** What one finished fold recorded (RUN/fold_k/fold.json). */
export interface FoldRecord {
  fold: number;
  steps: number;
  /** sum of optimiser-step times over the run (resumes included; validation excluded) */
  trainSeconds: number;
  /**
   * median optimiser-step time (s). The sum above grows with whatever else the machine ran at the
   * time; the median does not move unless more than half the steps were slowed, so it is what compares
   * networks trained on a shared machine. Absent in records written before it existed (the summary
   * then takes it from the fold's metrics.jsonl).
   */
  stepSecondsMedian?: number;
  /** per held-out case: preprocessing + sliding window + inversion, in seconds */
  inferenceSeconds: Record<string, number>;
  /** the process's peak resident memory by the end of this fold (MB) */
  peakRssMB: number;
  parameters: number;
  /** model.json's `network`: a registry name ("swin_unetr") or, for UX-Net folders, its argument object */
  network: string | Record<string, unknown>;
  classes: { label: number; name: string }[];
  cases: { caseId: string; dice: number[]; hd95: number[]; nsd: number[] }[];
  /** Whether the held-out cases were predicted with mirroring TTA; absent in records written before it was recorded. */
  tta?: boolean;
}

export interface ClassStats {
  label: number;
  name: string;
  dice: Stat;
  hd95: Stat;
  nsd: Stat;
}

export interface CrossvalSummary {
  format: 'uxnet3d-crossval-summary/1';
  name: string;
  /** The dataset folder relative to the run folder (as in RUN/crossval.json). */
  dataset: string;
  datasetName: string;
  folds: number;
  foldsDone: number[];
  complete: boolean;
  splitSource: string;
  /** sha256 of the folds' case lists: runs with the same hash used the same split */
  splitHash: string;
  network: string | Record<string, unknown> | null;
  parameters: number | null;
  macs: number | null;
  patch: [number, number, number] | null;
  classes: { label: number; name: string }[];
  perFold: {
    fold: number;
    cases: number;
    perClass: ClassStats[];
    meanDice: Stat;
    trainSeconds: number;
    /** null when the fold's step times are unknown */
    stepSecondsMedian: number | null;
    inferenceSecondsPerCase: number;
    /** the median of the fold's per-volume prediction times (null with no cases) */
    inferenceSecondsMedian: number | null;
    peakRssMB: number;
    /** mirroring TTA when predicting the held-out cases; null where the fold's record predates it */
    tta: boolean | null;
  }[];
  /** true or false when every fold records the same; null when folds differ or some do not record it */
  tta: boolean | null;
  overall: { cases: number; perClass: ClassStats[]; meanDice: Stat };
  /**
   * stepSeconds: the least of the folds' median step times (null when no fold has one). Sharing the
   * machine and slower machines only ever add time, so the fastest fold is the closest to what the
   * network itself costs; a mean over folds would carry any fold that ran alongside other work.
   * inferenceSeconds: the same for prediction, the least of the folds' median seconds per volume;
   * inferenceSecondsPerCase stays the plain mean over every case.
   */
  timing: {
    trainSeconds: number;
    trainSecondsPerFold: number;
    stepSeconds: number | null;
    inferenceSeconds: number | null;
    inferenceSecondsPerCase: number;
    peakRssMB: number;
  };
  cases: { caseId: string; fold: number; dice: number[]; hd95: number[]; nsd: number[]; meanDice: number }[];
  config: Record<string, unknown>;
}

export function splitHash(splits: Pick<Splits, 'folds'>): string {
  return createHash('sha256')
    .update(JSON.stringify(splits.folds.map((f) => ({ train: [...f.train].sort(), val: [...f.val].sort() }))))
    .digest('hex')
    .slice(0, 16);
}

function classStats(classes: { label: number; name: string }[], cases: { dice: number[]; hd95: number[]; nsd: number[] }[]): ClassStats[] {
  return classes.map((c, k) => ({
    ...c,
    dice: describe(cases.map((r) => r.dice[k]!)),
    hd95: describe(cases.map((r) => r.hd95[k]!)),
    nsd: describe(cases.map((r) => r.nsd[k]!)),
  }));
}

const avg = (v: number[]) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN);

/** The median of the values (numpy's 50th percentile: the mean of the middle two for an even count); null for none. */
export function median(values: readonly number[]): number | null {
  return values.length
    ? percentileSorted(
        [...values].sort((a, b) => a - b),
        50,
      )
    : null;
}

/** The least of the folds' medians under `key`, over the folds that have one (see CrossvalSummary.timing). */
export function fastestFold<K extends 'stepSecondsMedian' | 'inferenceSecondsMedian'>(perFold: readonly { [k in K]?: number | null }[], key: K): number | null {
  const m = perFold.flatMap((f) => (typeof f[key] === 'number' ? [f[key] as number] : []));
  return m.length ? Math.min(...m) : null;
}

export function summariseCrossval(o: {
  name: string;
  dataset: string;
  datasetName: string;
  splits: Splits;
  records: FoldRecord[];
  macs: number | null;
  patch: [number, number, number] | null;
  config: Record<string, unknown>;
}): CrossvalSummary {
  // A table of no fold would have empty rows and undefined statistics: nothing to summarise yet.
  if (!o.records.length) throw new Error(`crossval ${o.name}: no finished fold to summarise`);
  const records = [...o.records].sort((a, b) => a.fold - b.fold);
  const classes = records[0]?.classes ?? [];
  const cases = records.flatMap((r) => r.cases.map((c) => ({ ...c, fold: r.fold, meanDice: meanDefined(c.dice) })));
  const times = records.flatMap((r) => Object.values(r.inferenceSeconds));
  const perFold = records.map((r) => ({
    fold: r.fold,
    cases: r.cases.length,
    perClass: classStats(classes, r.cases),
    meanDice: describe(r.cases.map((c) => meanDefined(c.dice))),
    trainSeconds: r.trainSeconds,
    stepSecondsMedian: r.stepSecondsMedian ?? null,
    inferenceSecondsPerCase: avg(Object.values(r.inferenceSeconds)),
    inferenceSecondsMedian: median(Object.values(r.inferenceSeconds)),
    peakRssMB: r.peakRssMB,
    tta: r.tta ?? null,
  }));
  const ttas = new Set(perFold.map((f) => f.tta));
  return {
    format: 'uxnet3d-crossval-summary/1',
    name: o.name,
    dataset: o.dataset,
    datasetName: o.datasetName,
    folds: o.splits.folds.length,
    foldsDone: records.map((r) => r.fold),
    complete: records.length === o.splits.folds.length,
    splitSource: o.splits.source,
    splitHash: splitHash(o.splits),
    network: records[0]?.network ?? null,
    parameters: records[0]?.parameters ?? null,
    macs: o.macs,
    patch: o.patch,
    classes,
    perFold,
    tta: ttas.size === 1 ? [...ttas][0]! : null,
    overall: { cases: cases.length, perClass: classStats(classes, cases), meanDice: describe(cases.map((c) => c.meanDice)) },
    timing: {
      trainSeconds: records.reduce((a, r) => a + r.trainSeconds, 0),
      trainSecondsPerFold: avg(records.map((r) => r.trainSeconds)),
      stepSeconds: fastestFold(records, 'stepSecondsMedian'),
      inferenceSeconds: fastestFold(perFold, 'inferenceSecondsMedian'),
      inferenceSecondsPerCase: avg(times),
      peakRssMB: Math.max(0, ...records.map((r) => r.peakRssMB)),
    },
    cases,
    config: o.config,
  };
}

const csvNum = (v: number) => (Number.isNaN(v) ? '' : v === Infinity ? 'inf' : v === -Infinity ? '-inf' : String(v));
const csvField = (s: string) => (/[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

export function crossvalCsv(s: CrossvalSummary): string {
  const lines = ['fold,case,label,name,dice,hd95,nsd'];
  for (const c of s.cases)
    s.classes.forEach((cl, k) => lines.push([c.fold, csvField(c.caseId), cl.label, csvField(cl.name), csvNum(c.dice[k]!), csvNum(c.hd95[k]!), csvNum(c.nsd[k]!)].join(',')));
  const rows = (fold: string, per: ClassStats[]) => {
    for (const what of ['mean', 'sd'] as const)
      for (const p of per) lines.push([fold, what, p.label, csvField(p.name), csvNum(p.dice[what]), csvNum(p.hd95[what]), csvNum(p.nsd[what])].join(','));
  };
  for (const f of s.perFold) rows(String(f.fold), f.perClass);
  rows('all', s.overall.perClass);
  return lines.join('\n') + '\n';
}

const fmt = (v: number | null, d = 2) => (v !== null && Number.isFinite(v) ? v.toFixed(d) : 'n/a');

export function crossvalMarkdown(s: CrossvalSummary): string {
  const out: string[] = [];
  out.push(`# Cross-validation: ${s.name}`, '');
  out.push(
    `Dataset \`${s.datasetName}\`, ${s.folds} folds (split: ${s.splitSource}, hash ${s.splitHash}), ${s.foldsDone.length} done${s.complete ? '' : ` (folds ${s.foldsDone.join(', ') || 'none'})`}; ${s.overall.cases} held-out cases.`,
  );
  if (s.parameters !== null)
    out.push(`Network: ${s.parameters.toLocaleString('en-US')} parameters${s.macs !== null && s.patch ? `, ${(s.macs / 1e9).toFixed(2)} GMACs at ${s.patch.join('×')}` : ''}.`);
  const tta = ttaNote(s);
  if (tta) out.push(tta);
  out.push('', 'Dice per class, mean ± sd over the held-out cases:', '');
  const head = ['fold', 'cases', ...s.classes.map((c) => c.name), 'mean', ...s.classes.map((c) => `HD95 ${c.name} (mm)`), 'train (min)', 's / step', 's / volume'];
  out.push(`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`);
  for (const f of s.perFold) {
    out.push(
      `| ${f.fold} | ${f.cases} | ${f.perClass.map((p) => formatMeanSd(p.dice)).join(' | ')} | ${formatMeanSd(f.meanDice)} | ${f.perClass.map((p) => formatHd95(p.hd95)).join(' | ')} | ${fmt(f.trainSeconds / 60, 1)} | ${fmt(f.stepSecondsMedian)} | ${fmt(f.inferenceSecondsMedian)} |`,
    );
  }
  out.push(
    `| **all** | ${s.overall.cases} | ${s.overall.perClass.map((p) => `**${formatMeanSd(p.dice)}**`).join(' | ')} | **${formatMeanSd(s.overall.meanDice)}** | ${s.overall.perClass.map((p) => formatHd95(p.hd95)).join(' | ')} | ${fmt(s.timing.trainSeconds / 60, 1)} | ${fmt(s.timing.stepSeconds)} | ${fmt(s.timing.inferenceSeconds)} |`,
  );
  out.push(
    '',
    `NSD (1 mm): ${s.overall.perClass.map((p) => `${p.name} ${formatMeanSd(p.nsd)}`).join(', ')}. Peak memory ${fmt(s.timing.peakRssMB, 0)} MB. Training time is the sum of optimiser-step times (validation excluded); s / step and s / volume (predicting a loaded volume: preprocessing, sliding window, back to its grid) are medians, which time shared with other work on the machine does not move (in the last row: the fastest fold's).`,
    '',
  );
  return out.join('\n');
}

/** The folds predicted with TTA, without it, and those whose record does not say (summaries written before it was kept have no per-fold tta). */
export function ttaFolds(s: Pick<CrossvalSummary, 'perFold'>): { on: number[]; off: number[]; unknown: number[] } {
  const by = (v: boolean | null) => s.perFold.filter((f) => (f.tta ?? null) === v).map((f) => f.fold);
  return { on: by(true), off: by(false), unknown: by(null) };
}

/** What the summary says of TTA: all folds with it, a mix (named), or nothing when none used it. */
export function ttaNote(s: Pick<CrossvalSummary, 'perFold'>): string | null {
  const { on, off, unknown } = ttaFolds(s);
  if (!on.length) return null;
  if (on.length === s.perFold.length) return 'Held-out cases predicted with mirroring test-time augmentation (TTA).';
  const rest = [off.length ? `without: ${off.join(', ')}` : '', unknown.length ? `not recorded: ${unknown.join(', ')}` : ''].filter(Boolean).join('; ');
  return `Held-out cases predicted with mirroring TTA in folds ${on.join(', ')} only (${rest}): the folds are not scored alike.`;
}

export function crossvalBoxPlot(s: CrossvalSummary): { svg: string; png: Uint8Array } {
  const groups: BoxGroup[] = s.classes.map((c, k) => ({
    name: c.name,
    boxes: [
      ...s.perFold.map((f, i) => ({ name: `f${f.fold}`, values: s.cases.filter((x) => x.fold === f.fold).map((x) => x.dice[k]!), color: BOX_COLORS[i % BOX_COLORS.length]! })),
      { name: 'all', values: s.cases.map((x) => x.dice[k]!), color: '#333333' },
    ],
  }));
  const spec = { title: `${s.name}: held-out Dice per fold`, yLabel: 'Dice', groups, yMax: 1 }; // the lower end follows the data
  return { svg: renderBoxPlotSvg(spec), png: renderBoxPlotPng(spec) };
}

/** Writes summary.json, summary.csv, summary.md, dice-boxplot.svg and dice-boxplot.png into the run folder. */
export async function writeCrossvalSummary(runDir: string, s: CrossvalSummary): Promise<string> {
  const te = new TextEncoder();
  const path = join(runDir, 'summary.json');
  await writeFileAtomic(path, te.encode(JSON.stringify(jsonSafe(s), null, 1) + '\n'));
  await writeFileAtomic(join(runDir, 'summary.csv'), te.encode(crossvalCsv(s)));
  await writeFileAtomic(join(runDir, 'summary.md'), te.encode(crossvalMarkdown(s)));
  if (s.cases.length) {
    const { svg, png } = crossvalBoxPlot(s);
    await writeFileAtomic(join(runDir, 'dice-boxplot.svg'), te.encode(svg));
    await writeFileAtomic(join(runDir, 'dice-boxplot.png'), png);
  }
  return path;
}
