/**
 * `uxnet compare`: the paper's table from crossval runs of several networks on the same dataset and
 * folds — per run mean ± sd Dice per class and overall, HD95, parameters, MACs at the training
 * patch, training time, inference time per volume, peak memory — and a paired Wilcoxon signed-rank
 * test per class over the held-out cases against the first run. Runs whose dataset, classes or
 * folds differ are refused with the difference named, because their per-case scores do not pair.
 *
 * An input may also be an `uxnet evaluate` result (its JSON): predictions made some other way on the
 * same cases — with TTA, by an ensemble, on a test set no crossval held out. It pairs with the others
 * by case id and label; it has no training or resource columns.
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { readSegmenterManifests } from '../infer/ensemble.js';
import { writeFileAtomic } from '../io/fs.js';
import { jsonSafe } from '../metrics/accumulator.js';
import { describe, formatHd95, formatMeanSd, meanDefined, type Stat } from '../metrics/summary.js';
import { wilcoxonSignedRank, type WilcoxonResult } from '../metrics/wilcoxon.js';
import { BOX_COLORS, renderBoxPlotPng, renderBoxPlotSvg } from './boxplot.js';
import { fastestFold, ttaFolds, type CrossvalSummary } from './crossval-summary.js';
import type { Splits } from './crossval.js';

export class CompareError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CompareError';
  }
}

export interface CompareRun {
  /** a crossval run folder, or an `uxnet evaluate` JSON */
  dir: string;
  kind: 'crossval' | 'evaluation';
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
  /** the first crossval run's dataset name; with evaluations only, the first one's ground-truth folder */
  dataset: string;
  /** null when no input is a crossval run */
  folds: number | null;
  foldsDone: number[] | null;
  cases: number;
  classes: { label: number; name: string }[];
  runs: CompareRun[];
}

/** null in summary.json stands for NaN or ±Infinity (JSON has neither). */
const num = (v: unknown) => (typeof v === 'number' ? v : NaN);

export async function readCrossvalRun(dir: string): Promise<{ s: CrossvalSummary; splits: Splits }> {
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

/**
 * The network column for predictions a model folder made (`uxnet evaluate -m`): its network, or its
 * members' ("UX-Net 16/32/64/128, hidden 256, 5-member ensemble"; different networks joined by +).
 */
export async function describeModelFolder(dir: string): Promise<string> {
  const { ensemble, members } = await readSegmenterManifests(dir);
  const d = members.map((m) => describeNetwork(m.network as string | Record<string, unknown>));
  if (!ensemble) return d[0]!;
  return d.every((x) => x === d[0]) ? `${d[0]}, ${d.length}-member ensemble` : `ensemble: ${d.join(' + ')}`;
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

/** Per-case scores of one input, in the comparison's class order; NaN and ±Infinity decoded. */
interface Scored {
  dir: string;
  kind: 'crossval' | 'evaluation';
  /** crossval runs only */
  run?: { s: CrossvalSummary; splits: Splits };
  /** an evaluation's ground-truth folder, as `uxnet evaluate` recorded it */
  gtDir?: string;
  /** what made an evaluation's predictions, where it says (`uxnet crossval-predict` does) */
  madeBy?: string;
  classes: { label: number; name: string }[];
  cases: { caseId: string; dice: number[]; hd95: number[]; nsd: number[] }[];
}

/**
 * JSON writes NaN (class empty on both sides) and an infinite HD95 (empty on one side) as null; a NaN
 * HD95 has NaN Dice too, so the Dice tells them apart.
 */
const hd95Of = (hd: unknown, dice: number) => (hd === null ? (Number.isNaN(dice) ? NaN : Infinity) : num(hd));

function scoredRun(dir: string, s: CrossvalSummary, splits: Splits): Scored {
  return {
    dir,
    kind: 'crossval',
    run: { s, splits },
    classes: s.classes,
    cases: s.cases.map((c) => {
      const dice = c.dice.map(num);
      return { caseId: c.caseId, dice, hd95: c.hd95.map((h, k) => hd95Of(h, dice[k]!)), nsd: c.nsd.map(num) };
    }),
  };
}

/** ", TTA" for a run that predicted every held-out case with it, ", TTA in folds 0, 1" for a mix (summaries before it was recorded: nothing). */
function ttaLabel(s: CrossvalSummary): string {
  const { on } = ttaFolds(s);
  if (!on.length) return '';
  return on.length === s.perFold.length ? ', TTA' : `, TTA in folds ${on.join(', ')}`;
}

/** Reads an `uxnet evaluate` JSON, checking the fields the comparison uses. */
async function readEvaluation(file: string): Promise<Scored> {
  let j: unknown;
  try {
    j = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new CompareError(`${file}: ${(e as Error).message}`);
  }
  const bad = (what: string) => new CompareError(`${file}: not an \`uxnet evaluate\` result (${what})`);
  const o = j as { classes?: unknown; cases?: unknown; gt_dir?: unknown; crossval?: { runs?: unknown; tta?: unknown }; model?: { network?: unknown } };
  if (!o || typeof o !== 'object' || !Array.isArray(o.classes) || !Array.isArray(o.cases)) throw bad('no classes and cases');
  const classes = (o.classes as { label?: unknown; name?: unknown }[]).map((c) => {
    if (!c || typeof c.label !== 'number') throw bad('a class without a label');
    return { label: c.label, name: typeof c.name === 'string' ? c.name : '' };
  });
  if (!classes.length) throw bad('no classes');
  const cases = (o.cases as { caseId?: unknown; classes?: unknown }[]).map((c) => {
    if (!c || typeof c.caseId !== 'string' || !Array.isArray(c.classes)) throw bad('a case without caseId and classes');
    const byLabel = new Map((c.classes as { label?: unknown; dice?: unknown; hd95?: unknown; nsd?: unknown }[]).map((m) => [m?.label, m]));
    const at = classes.map((k) => {
      const m = byLabel.get(k.label);
      if (!m) throw bad(`case ${c.caseId} has no label ${k.label}`);
      return m;
    });
    const dice = at.map((m) => num(m.dice));
    return { caseId: c.caseId, dice, hd95: at.map((m, k) => hd95Of(m.hd95, dice[k]!)), nsd: at.map((m) => num(m.nsd)) };
  });
  if (!cases.length) throw bad('no cases');
  // `uxnet crossval-predict` records its runs and TTA: the network column says so,
  const cv = o.crossval;
  // and `uxnet evaluate -m MODEL` the model folder's network(s)
  const madeBy =
    cv && Array.isArray(cv.runs) && cv.runs.every((r) => typeof r === 'string')
      ? `${(cv.runs as string[]).map((r) => basename(r)).join(' + ')}${cv.tta === true ? ', TTA' : ''}`
      : typeof o.model?.network === 'string'
        ? o.model.network
        : undefined;
  return { dir: file, kind: 'evaluation', gtDir: typeof o.gt_dir === 'string' ? o.gt_dir : undefined, madeBy, classes, cases };
}

const isDir = (p: string) => existsSync(p) && statSync(p).isDirectory();

/**
 * One input: a crossval run folder (summary.json and splits.json), or an `uxnet evaluate` result given
 * as its JSON, as the -o prefix evaluate was given, or as the prediction folder holding metrics.json
 * (evaluate's default).
 */
async function readInput(arg: string): Promise<Scored> {
  const p = resolve(arg);
  if (isDir(p) && (existsSync(join(p, 'summary.json')) || !existsSync(join(p, 'metrics.json')))) {
    const { s, splits } = await readCrossvalRun(arg);
    return scoredRun(p, s, splits);
  }
  const file = isDir(p) ? join(p, 'metrics.json') : existsSync(p) ? p : existsSync(`${p}.json`) ? `${p}.json` : null;
  if (!file) throw new CompareError(`${arg}: no such file or folder (a \`uxnet crossval\` run folder, or an \`uxnet evaluate\` result: its JSON or -o prefix)`);
  return readEvaluation(file);
}

/** A name per input: the folder (crossval) or file name without .json; an evaluate default (metrics.json) by its folder. */
function inputNames(inputs: Scored[]): string[] {
  const names = inputs.map((x) => {
    if (x.kind === 'crossval') return basename(x.dir);
    const b = basename(x.dir).replace(/\.json$/i, '');
    return b === 'metrics' ? basename(dirname(x.dir)) : b;
  });
  // two inputs of one name (metrics_0.json of two folders) are told apart by their paths
  return names.map((n, i) => (names.indexOf(n) !== names.lastIndexOf(n) ? relative(process.cwd(), inputs[i]!.dir).replace(/\.json$/i, '') || n : n));
}

/** Why two inputs, one of them an evaluation, cannot pair: other cases or other labels. */
function casePairingProblem(a: Scored, an: string, b: Scored, bn: string): string | null {
  const la = a.classes.map((c) => c.label),
    lb = b.classes.map((c) => c.label);
  if ([...la].sort().join() !== [...lb].sort().join()) return `${bn} scores labels [${lb.join(', ')}], ${an} [${la.join(', ')}]`;
  const ca = new Set(a.cases.map((c) => c.caseId)),
    cb = new Set(b.cases.map((c) => c.caseId));
  const onlyA = [...ca].filter((c) => !cb.has(c)).sort(),
    onlyB = [...cb].filter((c) => !ca.has(c)).sort();
  if (onlyA.length || onlyB.length)
    return `${bn} scores other cases than ${an}${onlyA.length ? `; only in ${an}: ${list(onlyA)}` : ''}${onlyB.length ? `; only in ${bn}: ${list(onlyB)}` : ''}`;
  return null;
}

/** An input's per-case arrays in another class order (the first input's). */
function inLabelOrder(x: Scored, labels: number[]): Scored {
  const idx = labels.map((l) => x.classes.findIndex((c) => c.label === l));
  if (idx.every((j, k) => j === k)) return x;
  const pick = (v: number[]) => idx.map((j) => v[j]!);
  return { ...x, classes: idx.map((j) => x.classes[j]!), cases: x.cases.map((c) => ({ caseId: c.caseId, dice: pick(c.dice), hd95: pick(c.hd95), nsd: pick(c.nsd) })) };
}

/**
 * Compares crossval runs and `uxnet evaluate` results; with `folds`, only those folds' held-out cases
 * of the crossval runs (each must have finished them), which the evaluations must then score exactly.
 */
export async function compareRuns(dirs: string[], opts: { folds?: readonly number[] } = {}): Promise<Comparison> {
  if (dirs.length < 1) throw new CompareError('give at least one crossval run folder or evaluation');
  const read = await Promise.all(dirs.map(readInput));
  const names = inputNames(read);
  const runsRead = read.filter((r) => r.run);
  if (opts.folds && !runsRead.length) throw new CompareError('--folds selects folds of crossval runs, and every input here is an `uxnet evaluate` result');
  for (const r of runsRead)
    for (const k of opts.folds ?? []) if (k >= r.run!.s.folds) throw new CompareError(`--folds: ${basename(r.dir)} has ${r.run!.s.folds} folds, there is no fold ${k}`);
  const inputs = opts.folds ? read.map((r) => (r.run ? scoredRun(r.dir, restrictToFolds(r.dir, r.run.s, opts.folds!), r.run.splits) : r)) : read;
  // Crossval runs pair with each other as before (dataset, folds, finished folds); an evaluation pairs by cases and labels.
  const firstRun = inputs.find((x) => x.run);
  for (const r of inputs) {
    if (r === firstRun) continue;
    const p =
      r.run && firstRun
        ? pairingProblem({ dir: firstRun.dir, ...firstRun.run! }, { dir: r.dir, ...r.run })
        : casePairingProblem(inputs[0]!, names[0]!, r, names[inputs.indexOf(r)]!);
    if (p) throw new CompareError(p);
  }
  if (firstRun && inputs[0] !== firstRun) {
    const p = casePairingProblem(inputs[0]!, names[0]!, firstRun, names[inputs.indexOf(firstRun)]!);
    if (p) throw new CompareError(p);
  }
  const labels = inputs[0]!.classes.map((c) => c.label);
  const ordered = inputs.map((x) => inLabelOrder(x, labels));
  // a class's name from the first input that names it (evaluate leaves names out without --labels)
  const classes = labels.map((label, k) => ({ label, name: ordered.map((x) => x.classes[k]!.name).find((n) => n) ?? `label ${label}` }));
  const first = ordered[0]!;
  const perCase = (x: Scored, k: number) => new Map(x.cases.map((c) => [c.caseId, c.dice[k]!]));
  const meanOf = (x: Scored) => new Map(x.cases.map((c) => [c.caseId, meanDefined(c.dice)]));
  const out: CompareRun[] = ordered.map((x, i) => {
    const s = x.run?.s;
    return {
      dir: x.dir,
      kind: x.kind,
      name: names[i]!,
      network: s ? `${describeNetwork(s.network, s.config?.networkArgs)}${ttaLabel(s)}` : (x.madeBy ?? '–'),
      parameters: s ? s.parameters : null,
      macs: s ? s.macs : null,
      patch: s ? s.patch : null,
      trainSeconds: s ? num(s.timing.trainSeconds) : NaN,
      trainSecondsPerFold: s ? num(s.timing.trainSecondsPerFold) : NaN,
      // summaries written before step medians existed have none
      stepSeconds: typeof s?.timing.stepSeconds === 'number' ? s.timing.stepSeconds : null,
      inferenceSeconds: typeof s?.timing.inferenceSeconds === 'number' ? s.timing.inferenceSeconds : null,
      peakRssMB: s ? num(s.timing.peakRssMB) : NaN,
      perClass: classes.map((c, k) => ({
        ...c,
        dice: describe(x.cases.map((r) => r.dice[k]!)),
        hd95: describe(x.cases.map((r) => r.hd95[k]!)),
        nsd: describe(x.cases.map((r) => r.nsd[k]!)),
        wilcoxon: i === 0 ? null : wilcoxonOrNull(...paired(perCase(first, k), perCase(x, k))),
      })),
      meanDice: { ...describe(x.cases.map((r) => meanDefined(r.dice))), wilcoxon: i === 0 ? null : wilcoxonOrNull(...paired(meanOf(first), meanOf(x))) },
      dice: new Map(x.cases.map((c) => [c.caseId, c.dice])),
    };
  });
  const s0 = firstRun?.run!.s;
  return {
    // a dataset's labels folder (labelsTr, labelsTs) is named by the dataset
    dataset: s0 ? s0.datasetName : first.gtDir ? basename(/^labels(Tr|Ts|Va|Val)?$/i.test(basename(first.gtDir)) ? dirname(first.gtDir) : first.gtDir) : names[0]!,
    folds: s0 ? s0.folds : null,
    foldsDone: s0 ? s0.foldsDone : null,
    cases: first.cases.length,
    classes,
    runs: out,
  };
}

function wilcoxonOrNull(x: number[], y: number[]): WilcoxonResult | null {
  return x.length ? wilcoxonSignedRank(x, y) : null;
}

const f = (v: number | null, d: number) => (v === null || !Number.isFinite(v) ? 'n/a' : v.toFixed(d));
const pStr = (w: WilcoxonResult | null) => (!w ? '–' : Number.isNaN(w.pValue) ? 'n/a' : w.pValue < 1e-4 ? w.pValue.toExponential(1) : w.pValue.toFixed(4));

export function compareMarkdown(c: Comparison): string {
  const lines: string[] = [];
  const done = c.foldsDone;
  const which = done ? `fold${done.length > 1 ? 's' : ''} ${done.join(', ')} of ${c.folds}, ${c.cases} held-out cases` : `${c.cases} cases`;
  lines.push(`# Comparison on ${c.dataset}: ${c.runs.length} runs, ${which}`, '');
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
    lines.push('', `Paired Wilcoxon signed-rank test over the ${done ? 'held-out ' : ''}cases against ${c.runs[0]!.name} (two-sided p; scipy.stats.wilcoxon defaults):`, '');
    const h2 = ['run', ...c.classes.map((k) => `p (${k.name})`), 'p (mean)'];
    lines.push(`| ${h2.join(' | ')} |`, `|${h2.map(() => '---').join('|')}|`);
    for (const r of c.runs.slice(1)) lines.push(`| ${r.name} | ${r.perClass.map((p) => pStr(p.wilcoxon)).join(' | ')} | ${pStr(r.meanDice.wilcoxon)} |`);
  }
  // Runs may train at different patches (SwinUNETR needs multiples of 32): name each run's when they differ.
  const withRun = c.runs.filter((r) => r.kind === 'crossval');
  const patches = withRun.map((r) => (r.patch ? r.patch.join('×') : '?'));
  const patchNote = new Set(patches).size <= 1 ? (withRun[0]?.patch ? ` (${patches[0]})` : '') : ` (${withRun.map((r, i) => `${r.name} ${patches[i]}`).join(', ')})`;
  const evaluations = c.runs.filter((r) => r.kind === 'evaluation').map((r) => r.name);
  const evalNote = evaluations.length
    ? ` ${evaluations.join(', ')} ${evaluations.length > 1 ? 'are `uxnet evaluate` results' : 'is an `uxnet evaluate` result'}: scores of predictions on the same cases, without training or resource columns.`
    : '';
  lines.push(
    '',
    withRun.length
      ? `Dice mean ± sd over cases; MACs count convolutions and linear layers at each run's training patch${patchNote}; training time is the sum of optimiser-step times per fold, which grows with whatever else the machine ran; s / step and s / volume (predicting a loaded volume) are the fastest fold's medians, which it does not move.${evalNote}`
      : `Dice mean ± sd over cases.${evalNote}`,
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
    title: `${c.dataset}: ${c.foldsDone ? 'held-out ' : ''}Dice per run`,
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
