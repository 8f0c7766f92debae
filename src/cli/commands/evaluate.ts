/**
 * `uxnet evaluate PRED GT`: per-case, per-class Dice / HD95 / NSD of predicted label maps against
 * ground truth: two folders of NIfTI files paired by base name (`case.nii.gz` ↔ `case.nii`; the
 * `*_probabilities` files `predict` writes are skipped), or two single files. Pairing and scoring live
 * in src/metrics/evaluate.ts, header reading in src/io/nifti; this module is flags, files and the table.
 *
 * Order of work, so that mistakes surface before any heavy work:
 *   1. list and pair the files (missing cases on either side are warnings; no pair at all is an error);
 *   2. read only the headers of every pair and refuse shape mismatches, naming every such case;
 *   3. one pass over the pairs computing metrics; the set of classes (unless --classes) is every label
 *      > 0 found in the ground truth, known only at the end, so each case is scored on the labels it
 *      holds (GT ∪ prediction) and a class absent from both sides of a case is filled in as "both
 *      empty" (NaN), exactly what computing it would give;
 *   4. OUT.csv and OUT.json written atomically, a summary table on stdout.
 *
 * Spacing comes from the ground truth header's pixdim (with nibabel's repairs: |pixdim|, 0 -> 1), in
 * the file's own unit (normally mm); NSD tolerances are in that unit too.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { writeFileAtomic } from '../../io/fs.js';
import { MetricAccumulator, METRIC_NAMES, type AggregateMetrics, type CaseMetrics } from '../../metrics/accumulator.js';
import { evaluationCsv, evaluationJson } from '../../metrics/report.js';
import { checkPairShapes, EvaluationError, listLabelFiles, pairCases, readLabelNames, scorePair, type ScoredCase } from '../../metrics/evaluate.js';
import { UserError } from '../errors.js';
import { createProgress } from '../progress.js';
import { heldOutSelection, parseFold } from '../held-out-cases.js';
import { describeModelFolder } from '../../train/compare.js';

export interface EvaluateOptions {
  /** Folder of predicted label maps, or one file. */
  predDir: string;
  /** Folder of ground-truth label maps, or one file. */
  gtDir: string;
  /** Output prefix: writes PREFIX.csv and PREFIX.json (default PRED_DIR/metrics, or next to a single prediction file). */
  output?: string;
  /** "1,2": labels to score (default: every label > 0 in the ground truth). */
  classes?: string;
  /** "1" or one value per class "1,2" (needs --classes), in the pixdim unit (mm). Default 1. */
  nsdTolerance?: string;
  /** JSON file naming the labels. */
  labels?: string;
  /** Model (or ensemble) folder that made the predictions: recorded in the JSON (its network, for `uxnet compare`); its model.json names the labels when --labels is not given. */
  model?: string;
  /** Score only the held-out cases of this split file or run folder (a crossval split needs `fold`); each must be on both sides. */
  split?: string;
  fold?: number;
  /** Force the plain (line) progress output. */
  plain?: boolean;
  /** Where warnings and the summary go (tests). */
  out?: NodeJS.WritableStream;
  err?: NodeJS.WritableStream;
}

export interface EvaluateResult {
  pairs: string[];
  missingInPred: string[];
  missingInGt: string[];
  classes: number[];
  aggregate: AggregateMetrics;
  csvPath: string;
  jsonPath: string;
}

function parseIntList(text: string, flag: string): number[] {
  const parts = text.split(',').map((t) => t.trim());
  if (!parts.length || parts.some((t) => !/^\d+$/.test(t))) throw new UserError(`${flag} '${text}': expected non-negative integer labels separated by commas, e.g. 1,2,3`);
  const values = parts.map(Number);
  const dup = values.find((v, i) => values.indexOf(v) !== i);
  if (dup !== undefined) throw new UserError(`${flag} '${text}': label ${dup} is listed twice`);
  return values;
}

function parseTolerances(text: string): number[] {
  const parts = text.split(',').map((t) => t.trim());
  const values = parts.map(Number);
  if (parts.some((t) => t === '') || values.some((v) => !Number.isFinite(v) || v < 0)) {
    throw new UserError(`--nsd-tolerance '${text}': expected a non-negative distance in mm, or one per class separated by commas`);
  }
  return values;
}

function fmtTable(v: number, digits = 4): string {
  if (Number.isNaN(v)) return 'n/a';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  return v.toFixed(digits);
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, j) => Math.max(...rows.map((r) => r[j]!.length)));
  return (
    rows
      .map((r) =>
        r
          .map((c, j) => (j < 2 ? c.padEnd(widths[j]!) : c.padStart(widths[j]!)))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

export async function runEvaluate(opts: EvaluateOptions): Promise<EvaluateResult> {
  try {
    return await evaluate(opts);
  } catch (e) {
    if (e instanceof EvaluationError) throw new UserError(e.message);
    throw e;
  }
}

async function evaluate(opts: EvaluateOptions): Promise<EvaluateResult> {
  const out = opts.out ?? process.stdout;
  const err = opts.err ?? process.stderr;
  const warn = (msg: string) => err.write(`uxnet: warning: ${msg}\n`);

  // Flags first: nothing is read before they are known to be good.
  const fixedClasses = opts.classes === undefined ? undefined : parseIntList(opts.classes, '--classes');
  const tolerances = parseTolerances(opts.nsdTolerance ?? '1');
  if (tolerances.length > 1 && !fixedClasses)
    throw new UserError(`--nsd-tolerance '${opts.nsdTolerance}': one tolerance per class needs --classes (which classes the values belong to)`);
  if (fixedClasses && tolerances.length !== 1 && tolerances.length !== fixedClasses.length) {
    throw new UserError(
      `--nsd-tolerance '${opts.nsdTolerance}' gives ${tolerances.length} values for ${fixedClasses.length} classes (--classes ${opts.classes}); give one, or one per class`,
    );
  }
  // What made the predictions, recorded for `uxnet compare`'s network column (first: it checks the folder is a model).
  const madeBy = opts.model === undefined ? undefined : { dir: opts.model, network: await describeModelFolder(opts.model) };
  const namesFrom = opts.labels ?? (opts.model === undefined ? undefined : join(opts.model, 'model.json'));
  const names = namesFrom === undefined ? new Map<number, string>() : await readLabelNames(namesFrom);

  // 1. Pair the cases.
  const predFiles = await listLabelFiles(opts.predDir, 'prediction');
  const gtFiles = await listLabelFiles(opts.gtDir, 'ground truth');
  if (opts.split !== undefined && (predFiles.single || gtFiles.single)) {
    throw new UserError(`--split picks cases from folders, but '${predFiles.single ? opts.predDir : opts.gtDir}' is one file`);
  }
  const selection = await heldOutSelection(opts, [
    { present: gtFiles.cases.keys(), what: 'ground truth', where: opts.gtDir },
    { present: predFiles.cases.keys(), what: 'prediction', where: opts.predDir },
  ]);
  if (selection) {
    // Only the split's cases are scored; the other files in either folder are not "missing".
    const held = new Set(selection.cases);
    for (const side of [predFiles, gtFiles]) for (const id of [...side.cases.keys()]) if (!held.has(id)) side.cases.delete(id);
  }
  const preds = predFiles.cases,
    gts = gtFiles.cases;
  let prefix = opts.output ?? join(predFiles.dir, 'metrics');
  prefix = prefix.replace(/\.(csv|json)$/i, '');
  const csvPath = `${prefix}.csv`;
  const jsonPath = `${prefix}.json`;
  const paired = pairCases(predFiles, gtFiles);
  const { missingInPred, missingInGt } = paired;
  const pairs = paired.pairs.map((p) => p.id);
  const show = (ids: string[]) => (ids.length > 10 ? `${ids.slice(0, 10).join(', ')}, … (${ids.length - 10} more)` : ids.join(', '));
  if (missingInPred.length) warn(`${missingInPred.length} ground-truth case(s) have no prediction in '${opts.predDir}': ${show(missingInPred)}`);
  if (missingInGt.length) warn(`${missingInGt.length} prediction(s) have no ground truth in '${opts.gtDir}': ${show(missingInGt)}`);
  if (!pairs.length) {
    throw new UserError(
      `no case has both a prediction and a ground truth: ${preds.size} NIfTI file(s) in '${opts.predDir}', ${gts.size} in '${opts.gtDir}', paired by name without .nii/.nii.gz`,
    );
  }

  // 2. Shapes, from the headers alone.
  const mismatched = await checkPairShapes(paired.pairs);
  if (mismatched.length) {
    throw new UserError(`prediction and ground truth shapes differ for ${mismatched.length} case(s): ${show(mismatched)}; resample predictions to the ground-truth grid first`);
  }

  // 3. Metrics.
  const tolFor = (label: number): number => (tolerances.length === 1 ? tolerances[0]! : tolerances[fixedClasses!.indexOf(label)]!);
  const gtLabels = new Set<number>();
  const perCase: ScoredCase[] = [];
  const bar = createProgress({ label: 'evaluate', total: pairs.length, fields: ['case'], plain: opts.plain });
  try {
    for (const p of paired.pairs) {
      bar.update(perCase.length, { case: p.id });
      const c = await scorePair(p, { classes: fixedClasses, tolerance: tolFor });
      for (const l of c.gtLabels) gtLabels.add(l);
      perCase.push(c);
    }
    bar.update(perCase.length, { case: '' });
  } finally {
    bar.stop();
  }
  const classes = fixedClasses ?? [...gtLabels].sort((a, b) => a - b);
  if (!classes.length) throw new UserError(`the ground truth of the ${pairs.length} paired case(s) holds no label > 0; pass --classes to score anyway`);
  const classNames = classes.map((c) => names.get(c) ?? '');
  const acc = new MetricAccumulator({ classes, classNames: namesFrom === undefined ? undefined : classNames, nsdTolerance: classes.map(tolFor) });
  for (const c of perCase) {
    const row: CaseMetrics = {
      caseId: c.id,
      spacing: c.spacing,
      classes: classes.map((label) => c.metrics.get(label) ?? { label, dice: NaN, hd95: NaN, nsd: NaN, predVoxels: 0, gtVoxels: 0 }),
    };
    acc.addRow(row);
  }
  const aggregate = acc.aggregate();

  // 4. Outputs.
  const csv = evaluationCsv(acc, classNames);
  const json = evaluationJson(acc, {
    predDir: opts.predDir,
    gtDir: opts.gtDir,
    classes,
    classNames,
    nsdTolerance: tolerances.length === 1 ? tolerances[0]! : classes.map(tolFor),
    missingInPred,
    missingInGt,
    extra: {
      ...(madeBy ? { model: madeBy } : {}),
      ...(selection ? { held_out: { split: opts.split, fold: opts.fold ?? null, cases: selection.cases.length } } : {}),
    },
    files: Object.fromEntries(
      perCase.map((c, i) => [c.id, { pred: paired.pairs[i]!.pred.slice(predFiles.dir.length + 1), gt: paired.pairs[i]!.gt.slice(gtFiles.dir.length + 1), shape: c.shape }]),
    ),
  });
  try {
    await mkdir(dirname(csvPath), { recursive: true });
    await writeFileAtomic(csvPath, new TextEncoder().encode(csv));
    await writeFileAtomic(jsonPath, new TextEncoder().encode(json));
  } catch (e) {
    throw new UserError(`cannot write '${prefix}.csv/.json': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }

  // Summary table: per-class means over cases (n = cases where the class is present on some side).
  const rows: string[][] = [['class', 'name', 'dice', 'hd95', 'nsd', 'n']];
  for (const s of aggregate.perClass) {
    const hd = s.hd95.infinite ? `${fmtTable(s.hd95.finiteMean)}*` : fmtTable(s.hd95.mean);
    rows.push([String(s.label), s.name ?? '', fmtTable(s.dice.mean), hd, fmtTable(s.nsd.mean), String(s.dice.count)]);
  }
  rows.push(['all', '', ...METRIC_NAMES.map((m) => fmtTable(aggregate.overall[m])), String(aggregate.caseCount)]);
  out.write(`${pairs.length} case(s) evaluated, ${classes.length} class(es); NSD tolerance ${tolerances.join(',')} mm\n`);
  out.write(table(rows));
  if (aggregate.perClass.some((s) => s.hd95.infinite)) out.write('* mean over the cases where both sides are non-empty (HD95 is infinite when one side is empty)\n');
  out.write(`wrote ${csvPath} and ${jsonPath}\n`);
  return { pairs, missingInPred, missingInGt, classes, aggregate, csvPath, jsonPath };
}

export function registerEvaluate(program: Command): void {
  program
    .command('evaluate')
    .description(
      'score predicted label maps against ground truth: per case and per class Dice, HD95 (mm) and NSD, spacing-aware (ground-truth pixdim); writes OUT.csv and OUT.json and prints a summary',
    )
    .argument('<pred>', 'folder of predicted label maps (.nii/.nii.gz), one per case (*_probabilities files are skipped), or one file')
    .argument('<gt>', 'folder of ground-truth label maps, paired by file name without .nii/.nii.gz, or one file')
    .option('-o, --output <prefix>', 'output prefix: writes PREFIX.csv (one row per case and class, then mean rows) and PREFIX.json (default: PRED_DIR/metrics)')
    .option('--classes <labels>', 'comma-separated labels to score, e.g. 1,2 (default: every label > 0 found in the ground truth)')
    .option('--nsd-tolerance <mm>', 'NSD tolerance in mm (pixdim units): one value, or one per --classes entry (default: 1)')
    .option('--labels <file>', 'JSON naming the labels: {"1": "liver"}, ["background", "liver"], {"liver": 1}, or a dataset.json with "labels"')
    .option('-m, --model <dir>', 'model or ensemble folder that made the predictions: its network is recorded (uxnet compare shows it); names the labels unless --labels')
    .option('--split <file>', 'score only the held-out cases of a split file or run folder (a crossval split needs --fold); each must have a prediction and a ground truth')
    .option('--fold <k>', 'with --split: the fold whose held-out cases to score', parseFold)
    .addHelpText(
      'after',
      '\nCases present on one side only are reported (warning) and listed in OUT.json; the exit status is non-zero when no case pairs, or when a pair differs in shape.',
    )
    .action(
      async (predDir: string, gtDir: string, o: { output?: string; classes?: string; nsdTolerance?: string; labels?: string; model?: string; split?: string; fold?: number }) => {
        await runEvaluate({ predDir, gtDir, ...o });
      },
    );
}
