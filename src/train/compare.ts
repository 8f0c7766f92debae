/**
 * `uxnet compare`: the paper's table from crossval runs of several networks on the same dataset and
 * folds — per run mean ± sd Dice per class and overall, HD95, parameters, MACs at the training
 * patch, training time, inference time per volume, peak memory — and a paired Wilcoxon signed-rank
 * test per class over the held-out cases against the first run. Runs whose dataset, classes or
 * folds differ are refused with the difference named, because their per-case scores do not pair.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { basename, join, relative, resolve } from 'node:path';
import { writeFileAtomic } from '../io/fs.js';
import { jsonSafe } from '../metrics/accumulator.js';
import { describe, formatHd95, formatMeanSd, meanDefined, type Stat } from '../metrics/summary.js';
import { wilcoxonSignedRank, type WilcoxonResult } from '../metrics/wilcoxon.js';
import { BOX_COLORS, renderBoxPlotPng, renderBoxPlotSvg } from './boxplot.js';
import { fastestFold, type CrossvalSummary } from './crossval-summary.js';
import type { Splits } from './crossval.js';

export class CompareError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CompareError';
  }
}

export interface CompareRun {
  dir: string;
  name: string;
  network: string;
  parameters: number | null;
  macs: number | null;
  patch: [number, number, number] | null;
  trainSeconds: number;
  trainSecondsPerFold: number;
  /** the fastest fold's median optimiser-step time (see CrossvalSummary.timing); null when unknown */
  stepSeconds: number | null;
  /** the fastest fold's median seconds to predict a volume (see CrossvalSummary.timing); null when unknown */
  inferenceSeconds: number | null;
  peakRssMB: number;
  perClass: { label: number; name: string; dice: Stat; hd95: Stat; nsd: Stat; wilcoxon: WilcoxonResult | null }[];
  meanDice: Stat & { wilcoxon: WilcoxonResult | null };
  /** caseId -> per-class Dice, for the plot and the tests */
  dice: Map<string, number[]>;
}

export interface Comparison {
  dataset: string;
  folds: number;
  foldsDone: number[];
  cases: number;
  classes: { label: number; name: string }[];
  runs: CompareRun[];
}

/** null in summary.json stands for NaN or ±Infinity (JSON has neither). */
const num = (v: unknown) => (typeof v === 'number' ? v : NaN);

async function readRun(dir: string): Promise<{ s: CrossvalSummary; splits: Splits }> {
  const p = join(dir, 'summary.json');
  if (!existsSync(p)) throw new CompareError(`${dir}: no summary.json (is it a \`uxnet crossval\` run folder?)`);
  const sp = join(dir, 'splits.json');
  if (!existsSync(sp)) throw new CompareError(`${dir}: no splits.json (is it a \`uxnet crossval\` run folder?)`);
  try {
    return { s: JSON.parse(await readFile(p, 'utf8')) as CrossvalSummary, splits: JSON.parse(await readFile(sp, 'utf8')) as Splits };
  } catch (e) {
    throw new CompareError(`${dir}: ${(e as Error).message}`);
  }
}

const list = (ids: string[]) => (ids.length > 5 ? `${ids.slice(0, 5).join(', ')}, … (${ids.length} in all)` : ids.join(', '));

/** The first way in which run B cannot be paired with run A, or null. */
export function pairingProblem(a: { dir: string; s: CrossvalSummary; splits: Splits }, b: { dir: string; s: CrossvalSummary; splits: Splits }): string | null {
  const A = basename(a.dir),
    B = basename(b.dir);
  const casesOf = (x: Splits) => new Set(x.folds.flatMap((f) => [...f.train, ...f.val]));
  const ca = casesOf(a.splits),
    cb = casesOf(b.splits);
  const onlyA = [...ca].filter((c) => !cb.has(c)).sort(),
    onlyB = [...cb].filter((c) => !ca.has(c)).sort();
  if (onlyA.length || onlyB.length || a.s.datasetName !== b.s.datasetName) {
    return `${B} was run on another dataset than ${A}: ${a.s.datasetName !== b.s.datasetName ? `'${b.s.datasetName}' vs '${a.s.datasetName}'` : ''}${onlyA.length ? `; only in ${A}: ${list(onlyA)}` : ''}${onlyB.length ? `; only in ${B}: ${list(onlyB)}` : ''}`.replace(
      ': ;',
      ':',
    );
  }
  if (a.splits.folds.length !== b.splits.folds.length) return `${B} has ${b.splits.folds.length} folds, ${A} has ${a.splits.folds.length}`;
  for (let k = 0; k < a.splits.folds.length; k++) {
    const va = [...a.splits.folds[k]!.val].sort(),
      vb = [...b.splits.folds[k]!.val].sort();
    if (va.join() !== vb.join()) {
      const ia = va.filter((c) => !vb.includes(c)),
        ib = vb.filter((c) => !va.includes(c));
      return `fold ${k} holds out other cases in ${B} than in ${A} (${A} only: ${list(ia)}; ${B} only: ${list(ib)})`;
    }
  }
  if (JSON.stringify(a.s.classes) !== JSON.stringify(b.s.classes)) return `${B} has classes ${JSON.stringify(b.s.classes)}, ${A} ${JSON.stringify(a.s.classes)}`;
  if (a.s.foldsDone.join() !== b.s.foldsDone.join()) {
    const common = a.s.foldsDone.filter((k) => b.s.foldsDone.includes(k));
    const hint = common.length ? `; --folds ${common.join(',')} compares the folds both have finished` : '';
    return `${B} has finished folds [${b.s.foldsDone.join(', ')}], ${A} [${a.s.foldsDone.join(', ')}]; compare runs with the same finished folds${hint}`;
  }
  return null;
}

const DISPLAY_NAMES: Record<string, string> = { uxnet: 'UX-Net', swin_unetr: 'SwinUNETR', unetr: 'UNETR', nnformer: 'nnFormer', transbts: 'TransBTS' };

/**
 * The network column: model.json names a registry network ("swin_unetr"), whose arguments the recipe's
 * `networkArgs` give ("SwinUNETR feature_size=12"), or holds UX-Net's argument object.
 */
export function describeNetwork(n: string | Record<string, unknown> | null, args?: unknown): string {
  if (!n) return 'unknown';
  if (typeof n === 'string') {
    const a = args && typeof args === 'object' ? Object.entries(args as Record<string, unknown>) : [];
    const shown = a.map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('/') : String(v)}`).join(', ');
    return `${DISPLAY_NAMES[n] ?? n}${shown ? ` ${shown}` : ''}`;
  }
  for (const k of ['name', 'type', 'architecture']) if (typeof n[k] === 'string') return n[k] as string;
  const feat = n.featSize as number[] | undefined;
  return feat ? `UX-Net ${feat.join('/')}, hidden ${n.hiddenSize}` : 'unknown';
}

/** Pairs per-case values of two runs by case id, keeping cases where both are defined. */
function paired(a: Map<string, number>, b: Map<string, number>): [number[], number[]] {
  const x: number[] = [],
    y: number[] = [];
  for (const [id, v] of b) {
    const u = a.get(id);
    if (u !== undefined && Number.isFinite(u) && Number.isFinite(v)) {
      x.push(v);
      y.push(u);
    }
  }
  return [x, y];
}

/**
 * A run's summary cut down to some of its finished folds: their held-out cases and per-fold records,
 * timing re-derived from those folds. Lets a run with all five folds be compared with runs that have
 * finished fold 0 only, on the cases they share.
 */
export function restrictToFolds(dir: string, s: CrossvalSummary, folds: readonly number[]): CrossvalSummary {
  const missing = folds.filter((k) => !s.foldsDone.includes(k));
  if (missing.length)
    throw new CompareError(`${basename(dir)} has not finished fold${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (finished: [${s.foldsDone.join(', ')}])`);
  const keep = new Set(folds);
  const perFold = s.perFold.filter((f) => keep.has(f.fold));
  const cases = perFold.reduce((a, f) => a + f.cases, 0);
  const trainSeconds = perFold.reduce((a, f) => a + f.trainSeconds, 0);
  return {
    ...s,
    foldsDone: [...folds].sort((a, b) => a - b),
    perFold,
    cases: s.cases.filter((c) => keep.has(c.fold)),
    timing: {
      trainSeconds,
      trainSecondsPerFold: trainSeconds / perFold.length,
      stepSeconds: fastestFold(perFold, 'stepSecondsMedian'),
      inferenceSeconds: fastestFold(perFold, 'inferenceSecondsMedian'),
      inferenceSecondsPerCase: perFold.reduce((a, f) => a + f.inferenceSecondsPerCase * f.cases, 0) / cases,
      peakRssMB: Math.max(...perFold.map((f) => f.peakRssMB)),
    },
  };
}

/** Parses `--folds 0,2`: distinct non-negative integers. */
export function parseFoldList(text: string): number[] {
  const parts = text.split(',').map((t) => t.trim());
  if (!parts.every((t) => /^\d+$/.test(t))) throw new CompareError(`--folds: expected fold numbers separated by commas (e.g. 0 or 0,1,2), got '${text}'`);
  const folds = parts.map(Number);
  if (new Set(folds).size !== folds.length) throw new CompareError(`--folds: fold listed twice in '${text}'`);
  return folds;
}

/** Compares crossval runs; with `folds`, only those folds' held-out cases (each run must have finished them). */
export async function compareRuns(dirs: string[], opts: { folds?: readonly number[] } = {}): Promise<Comparison> {
  if (dirs.length < 1) throw new CompareError('give at least one crossval run folder');
  const read = await Promise.all(dirs.map(async (d) => ({ dir: resolve(d), ...(await readRun(d)) })));
  for (const r of read) for (const k of opts.folds ?? []) if (k >= r.s.folds) throw new CompareError(`--folds: ${basename(r.dir)} has ${r.s.folds} folds, there is no fold ${k}`);
  const runs = opts.folds ? read.map((r) => ({ ...r, s: restrictToFolds(r.dir, r.s, opts.folds!) })) : read;
  for (const r of runs.slice(1)) {
    const p = pairingProblem(runs[0]!, r);
    if (p) throw new CompareError(p);
  }
  const first = runs[0]!.s;
  const classes = first.classes;
  const perCase = (s: CrossvalSummary, k: number) => new Map(s.cases.map((c) => [c.caseId, num(c.dice[k])]));
  const meanOf = (s: CrossvalSummary) => new Map(s.cases.map((c) => [c.caseId, meanDefined(c.dice.map(num))]));
  const out: CompareRun[] = runs.map((r, i) => {
    const s = r.s;
    const cases = s.cases.map((c) => ({ dice: c.dice.map(num), nsd: c.nsd.map(num) }));
    const meanDice = describe(cases.map((c) => meanDefined(c.dice)));
    return {
      dir: r.dir,
      name: basename(r.dir),
      network: describeNetwork(s.network, s.config?.networkArgs),
      parameters: s.parameters,
      macs: s.macs,
      patch: s.patch,
      trainSeconds: num(s.timing.trainSeconds),
      trainSecondsPerFold: num(s.timing.trainSecondsPerFold),
      // summaries written before step medians existed have none
      stepSeconds: typeof s.timing.stepSeconds === 'number' ? s.timing.stepSeconds : null,
      inferenceSeconds: typeof s.timing.inferenceSeconds === 'number' ? s.timing.inferenceSeconds : null,
      peakRssMB: num(s.timing.peakRssMB),
      perClass: classes.map((c, k) => ({
        ...c,
        dice: describe(cases.map((x) => x.dice[k]!)),
        // summary.json writes an infinite HD95 (one side empty) and a NaN one (both empty) as null; a NaN
        // one has NaN Dice too, so it is told apart by the Dice.
        hd95: describe(s.cases.map((x) => (x.hd95[k] === null ? (Number.isNaN(num(x.dice[k])) ? NaN : Infinity) : num(x.hd95[k])))),
        nsd: describe(cases.map((x) => x.nsd[k]!)),
        wilcoxon: i === 0 ? null : wilcoxonOrNull(...paired(perCase(first, k), perCase(s, k))),
      })),
      meanDice: { ...meanDice, wilcoxon: i === 0 ? null : wilcoxonOrNull(...paired(meanOf(first), meanOf(s))) },
      dice: new Map(s.cases.map((c) => [c.caseId, c.dice.map(num)])),
    };
  });
  return { dataset: first.datasetName, folds: first.folds, foldsDone: first.foldsDone, cases: first.cases.length, classes, runs: out };
}

function wilcoxonOrNull(x: number[], y: number[]): WilcoxonResult | null {
  return x.length ? wilcoxonSignedRank(x, y) : null;
}

const f = (v: number | null, d: number) => (v === null || !Number.isFinite(v) ? 'n/a' : v.toFixed(d));
const pStr = (w: WilcoxonResult | null) => (!w ? '–' : Number.isNaN(w.pValue) ? 'n/a' : w.pValue < 1e-4 ? w.pValue.toExponential(1) : w.pValue.toFixed(4));

export function compareMarkdown(c: Comparison): string {
  const lines: string[] = [];
  lines.push(
    `# Comparison on ${c.dataset}: ${c.runs.length} runs, fold${c.foldsDone.length > 1 ? 's' : ''} ${c.foldsDone.join(', ')} of ${c.folds}, ${c.cases} held-out cases`,
    '',
  );
  const head = [
    'run',
    'network',
    ...c.classes.map((k) => `Dice ${k.name}`),
    'Dice mean',
    ...c.classes.map((k) => `HD95 ${k.name} (mm)`),
    'params (M)',
    'GMACs',
    'train (min/fold)',
    's / step',
    's / volume',
    'peak MB',
  ];
  lines.push(`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`);
  for (const r of c.runs) {
    lines.push(
      `| ${r.name} | ${r.network} | ${r.perClass.map((p) => formatMeanSd(p.dice)).join(' | ')} | ${formatMeanSd(r.meanDice)} | ${r.perClass.map((p) => formatHd95(p.hd95)).join(' | ')} | ${f(r.parameters === null ? null : r.parameters / 1e6, 2)} | ${f(r.macs === null ? null : r.macs / 1e9, 2)} | ${f(r.trainSecondsPerFold / 60, 1)} | ${f(r.stepSeconds, 2)} | ${f(r.inferenceSeconds, 2)} | ${f(r.peakRssMB, 0)} |`,
    );
  }
  if (c.runs.length > 1) {
    lines.push('', `Paired Wilcoxon signed-rank test over the held-out cases against ${c.runs[0]!.name} (two-sided p; scipy.stats.wilcoxon defaults):`, '');
    const h2 = ['run', ...c.classes.map((k) => `p (${k.name})`), 'p (mean)'];
    lines.push(`| ${h2.join(' | ')} |`, `|${h2.map(() => '---').join('|')}|`);
    for (const r of c.runs.slice(1)) lines.push(`| ${r.name} | ${r.perClass.map((p) => pStr(p.wilcoxon)).join(' | ')} | ${pStr(r.meanDice.wilcoxon)} |`);
  }
  // Runs may train at different patches (SwinUNETR needs multiples of 32): name each run's when they differ.
  const patches = c.runs.map((r) => (r.patch ? r.patch.join('×') : '?'));
  const patchNote = new Set(patches).size === 1 ? (c.runs[0]?.patch ? ` (${patches[0]})` : '') : ` (${c.runs.map((r, i) => `${r.name} ${patches[i]}`).join(', ')})`;
  lines.push(
    '',
    `Dice mean ± sd over cases; MACs count convolutions and linear layers at each run's training patch${patchNote}; training time is the sum of optimiser-step times per fold, which grows with whatever else the machine ran; s / step and s / volume (predicting a loaded volume) are the fastest fold's medians, which it does not move.`,
    '',
  );
  return lines.join('\n');
}

const csvNum = (v: number | null) => (v === null || Number.isNaN(v) ? '' : v === Infinity ? 'inf' : String(v));

export function compareCsv(c: Comparison): string {
  const head = [
    'run',
    'network',
    'label',
    'name',
    'dice_mean',
    'dice_sd',
    'hd95_mean',
    'hd95_sd',
    'hd95_inf',
    'nsd_mean',
    'nsd_sd',
    'n',
    'wilcoxon_p',
    'parameters',
    'macs',
    'train_seconds_per_fold',
    'step_seconds',
    'inference_seconds_per_volume',
    'peak_rss_mb',
  ];
  const lines = [head.join(',')];
  const q = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  for (const r of c.runs) {
    const tail = [csvNum(r.parameters), csvNum(r.macs), csvNum(r.trainSecondsPerFold), csvNum(r.stepSeconds), csvNum(r.inferenceSeconds), csvNum(r.peakRssMB)];
    for (const p of r.perClass)
      lines.push(
        [
          q(r.name),
          q(r.network),
          p.label,
          q(p.name),
          csvNum(p.dice.mean),
          csvNum(p.dice.sd),
          csvNum(p.hd95.mean),
          csvNum(p.hd95.sd),
          p.hd95.infinite,
          csvNum(p.nsd.mean),
          csvNum(p.nsd.sd),
          p.dice.n,
          csvNum(p.wilcoxon?.pValue ?? null),
          ...tail,
        ].join(','),
      );
    lines.push(
      [
        q(r.name),
        q(r.network),
        'mean',
        '',
        csvNum(r.meanDice.mean),
        csvNum(r.meanDice.sd),
        '',
        '',
        '',
        '',
        '',
        r.meanDice.n,
        csvNum(r.meanDice.wilcoxon?.pValue ?? null),
        ...tail,
      ].join(','),
    );
  }
  return lines.join('\n') + '\n';
}

export function compareJson(c: Comparison): unknown {
  return jsonSafe({
    format: 'uxnet3d-compare/1',
    dataset: c.dataset,
    folds: c.folds,
    foldsDone: c.foldsDone,
    cases: c.cases,
    classes: c.classes,
    runs: c.runs.map(({ dice, ...r }) => ({ ...r, perCase: Object.fromEntries(dice) })),
  });
}

/** Writes OUT/compare.{md,csv,json} and OUT/compare-dice.{svg,png}; returns the Markdown. */
export async function writeComparison(outDir: string, c: Comparison): Promise<string> {
  await mkdir(outDir, { recursive: true });
  const te = new TextEncoder();
  const md = compareMarkdown(c);
  await writeFileAtomic(join(outDir, 'compare.md'), te.encode(md));
  await writeFileAtomic(join(outDir, 'compare.csv'), te.encode(compareCsv(c)));
  // Run folders relative to the output folder, so a comparison kept in a repository is the same in every clone.
  const rel = { ...c, runs: c.runs.map((r) => ({ ...r, dir: relative(resolve(outDir), r.dir) || '.' })) };
  await writeFileAtomic(join(outDir, 'compare.json'), te.encode(JSON.stringify(compareJson(rel), null, 1) + '\n'));
  const spec = {
    title: `${c.dataset}: held-out Dice per run`,
    yLabel: 'Dice',
    // the lower end follows the data (Dice of trained networks sits in a narrow band below 1)
    yMax: 1,
    groups: c.classes.map((k, j) => ({
      name: k.name,
      boxes: c.runs.map((r, i) => ({ name: r.name, values: [...r.dice.values()].map((d) => d[j]!), color: BOX_COLORS[i % BOX_COLORS.length]! })),
    })),
  };
  await writeFileAtomic(join(outDir, 'compare-dice.svg'), te.encode(renderBoxPlotSvg(spec)));
  await writeFileAtomic(join(outDir, 'compare-dice.png'), renderBoxPlotPng(spec));
  return md;
}
