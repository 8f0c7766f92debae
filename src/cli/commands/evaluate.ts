/**
 * `uxnet evaluate PRED_DIR GT_DIR`: per-case, per-class Dice / HD95 / NSD of predicted label maps
 * against ground truth, both folders of NIfTI files paired by base name (`case.nii.gz` ↔ `case.nii`).
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
import { mkdir, open, readdir, readFile, type FileHandle } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { loadVolume, VolumeError } from '../../data/load.js';
import type { VoxelData } from '../../data/volume.js';
import { fixGeometry, NiftiError, parseHeader, type NiftiHeader } from '../../io/nifti/index.js';
import { writeFileAtomic } from '../../io/fs.js';
import { computeSegmentationMetrics, type ClassMetrics } from '../../metrics/segmentation.js';
import { MetricAccumulator, jsonSafe, METRIC_NAMES, type AggregateMetrics, type CaseMetrics } from '../../metrics/accumulator.js';
import type { Spacing3 } from '../../metrics/edt.js';
import { UserError } from '../errors.js';
import { createProgress } from '../progress.js';

export interface EvaluateOptions {
  predDir: string;
  gtDir: string;
  /** Output prefix: writes PREFIX.csv and PREFIX.json (default PRED_DIR/metrics). */
  output?: string;
  /** "1,2": labels to score (default: every label > 0 in the ground truth). */
  classes?: string;
  /** "1" or one value per class "1,2" (needs --classes), in the pixdim unit (mm). Default 1. */
  nsdTolerance?: string;
  /** JSON file naming the labels. */
  labels?: string;
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

const NIFTI_SUFFIX = /\.nii(\.gz)?$/i;

/** case id -> file name, for the NIfTI files directly in `dir`. Two files of one case are refused. */
async function listCases(dir: string, what: string): Promise<Map<string, string>> {
  let names: string[];
  try {
    names = (await readdir(dir, { withFileTypes: true })).filter((d) => d.isFile() || d.isSymbolicLink()).map((d) => d.name);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`cannot read ${what} directory '${dir}': ${code === 'ENOENT' ? 'no such directory' : code === 'ENOTDIR' ? 'not a directory' : code ?? (e as Error).message}`);
  }
  const cases = new Map<string, string>();
  for (const name of names.sort()) {
    if (!NIFTI_SUFFIX.test(name)) continue;
    const id = name.replace(NIFTI_SUFFIX, '');
    const prev = cases.get(id);
    if (prev !== undefined) throw new UserError(`${what} directory '${dir}' holds two files for case '${id}' ('${prev}' and '${name}'); keep one`);
    cases.set(id, name);
  }
  return cases;
}

/** The header only: reads (and for .gz inflates) just the first bytes of the file. */
async function readHeaderOnly(path: string): Promise<NiftiHeader> {
  const NEED = 540 + 4;
  let head: Uint8Array;
  try {
    const fh = await open(path, 'r');
    try {
      const first = new Uint8Array(NEED);
      const { bytesRead } = await fh.read(first, 0, NEED, 0);
      head = first.subarray(0, bytesRead);
      if (bytesRead >= 2 && head[0] === 0x1f && head[1] === 0x8b) head = await inflatePrefix(path, fh, NEED);
    } finally {
      await fh.close();
    }
  } catch (e) {
    if (e instanceof NiftiError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new NiftiError('IO', code === 'ENOENT' ? 'no such file' : `cannot read (${code ?? (e as Error).message})`, path);
  }
  return parseHeader(head, path);
}

async function inflatePrefix(path: string, fh: FileHandle, need: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const gunzip = createGunzip();
    const stream = fh.createReadStream({ start: 0, autoClose: false, highWaterMark: 16384 });
    const chunks: Buffer[] = [];
    let got = 0;
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      stream.unpipe(gunzip);
      stream.destroy();
      gunzip.destroy();
      if (err && got < need) reject(new NiftiError('GZIP', `corrupt gzip data (${err.message})`, path));
      else resolve(new Uint8Array(Buffer.concat(chunks)).subarray(0, Math.min(got, need)));
    };
    gunzip.on('data', (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (got >= need) finish();
    });
    gunzip.on('end', () => finish());
    gunzip.on('error', (e) => finish(e));
    stream.on('error', (e) => finish(e));
    stream.pipe(gunzip);
  });
}

/** nibabel's shape (trailing singletons beyond 3-D dropped) from a header. */
function headerShape(h: NiftiHeader): number[] {
  const n = Math.max(1, Math.min(7, h.dim[0]!));
  const s = h.dim.slice(1, n + 1);
  while (s.length > 3 && s[s.length - 1] === 1) s.pop();
  while (s.length < 3) s.push(1);
  return s;
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

/**
 * Label names from JSON: {"1": "liver"}, ["background", "liver"] (index = label), nnU-Net v2
 * {"background": 0, "liver": 1}, or any of these under a "labels" key (MSD / nnU-Net dataset.json).
 */
async function readLabelNames(path: string): Promise<Map<number, string>> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(code ? `cannot read labels file '${path}': ${code}` : `labels file '${path}' is not valid JSON: ${(e as Error).message}`);
  }
  if (raw && typeof raw === 'object' && !Array.isArray(raw) && 'labels' in raw) raw = (raw as { labels: unknown }).labels;
  const names = new Map<number, string>();
  const bad = () => new UserError(`labels file '${path}': expected {"1": "name", ...}, ["background", "name", ...] or {"name": 1, ...} (optionally under "labels")`);
  if (Array.isArray(raw)) {
    raw.forEach((n, i) => { if (typeof n !== 'string') throw bad(); names.set(i, n); });
  } else if (raw && typeof raw === 'object') {
    for (const [k, v] of Object.entries(raw)) {
      if (typeof v === 'string' && /^\d+$/.test(k)) names.set(Number(k), v);
      else if (typeof v === 'number' && Number.isInteger(v) && v >= 0) names.set(v, k);
      else throw bad();
    }
  } else {
    throw bad();
  }
  return names;
}

function asUserError(e: unknown, what: string): never {
  if (e instanceof NiftiError || e instanceof VolumeError) throw new UserError(`${what}: ${e.message}`);
  throw e;
}

/** Sorted labels > 0 present in a label map. */
function labelsOf(data: VoxelData): number[] {
  const seen = new Set<number>();
  let last = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v !== last) { last = v; if (v > 0) seen.add(v); }
  }
  return [...seen].sort((a, b) => a - b);
}

function fmtCsv(v: number): string {
  if (Number.isNaN(v)) return '';
  if (v === Infinity) return 'inf';
  if (v === -Infinity) return '-inf';
  return String(v);
}

function csvField(s: string): string {
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function fmtTable(v: number, digits = 4): string {
  if (Number.isNaN(v)) return 'n/a';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  return v.toFixed(digits);
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, j) => Math.max(...rows.map((r) => r[j]!.length)));
  return rows.map((r) => r.map((c, j) => (j < 2 ? c.padEnd(widths[j]!) : c.padStart(widths[j]!))).join('  ').trimEnd()).join('\n') + '\n';
}

export async function runEvaluate(opts: EvaluateOptions): Promise<EvaluateResult> {
  const out = opts.out ?? process.stdout;
  const err = opts.err ?? process.stderr;
  const warn = (msg: string) => err.write(`uxnet: warning: ${msg}\n`);

  // Flags first: nothing is read before they are known to be good.
  const fixedClasses = opts.classes === undefined ? undefined : parseIntList(opts.classes, '--classes');
  const tolerances = parseTolerances(opts.nsdTolerance ?? '1');
  if (tolerances.length > 1 && !fixedClasses) throw new UserError(`--nsd-tolerance '${opts.nsdTolerance}': one tolerance per class needs --classes (which classes the values belong to)`);
  if (fixedClasses && tolerances.length !== 1 && tolerances.length !== fixedClasses.length) {
    throw new UserError(`--nsd-tolerance '${opts.nsdTolerance}' gives ${tolerances.length} values for ${fixedClasses.length} classes (--classes ${opts.classes}); give one, or one per class`);
  }
  const names = opts.labels === undefined ? new Map<number, string>() : await readLabelNames(opts.labels);
  let prefix = opts.output ?? join(opts.predDir, 'metrics');
  prefix = prefix.replace(/\.(csv|json)$/i, '');
  const csvPath = `${prefix}.csv`;
  const jsonPath = `${prefix}.json`;

  // 1. Pair the cases.
  const preds = await listCases(opts.predDir, 'prediction');
  const gts = await listCases(opts.gtDir, 'ground truth');
  const pairs = [...gts.keys()].filter((id) => preds.has(id));
  const missingInPred = [...gts.keys()].filter((id) => !preds.has(id));
  const missingInGt = [...preds.keys()].filter((id) => !gts.has(id));
  const show = (ids: string[]) => (ids.length > 10 ? `${ids.slice(0, 10).join(', ')}, … (${ids.length - 10} more)` : ids.join(', '));
  if (missingInPred.length) warn(`${missingInPred.length} ground-truth case(s) have no prediction in '${opts.predDir}': ${show(missingInPred)}`);
  if (missingInGt.length) warn(`${missingInGt.length} prediction(s) have no ground truth in '${opts.gtDir}': ${show(missingInGt)}`);
  if (!pairs.length) {
    throw new UserError(`no case has both a prediction and a ground truth: ${preds.size} NIfTI file(s) in '${opts.predDir}', ${gts.size} in '${opts.gtDir}', paired by name without .nii/.nii.gz`);
  }

  // 2. Shapes, from the headers alone.
  const mismatched: string[] = [];
  for (const id of pairs) {
    const ph = await readHeaderOnly(join(opts.predDir, preds.get(id)!)).catch((e) => asUserError(e, `case '${id}' prediction`));
    const gh = await readHeaderOnly(join(opts.gtDir, gts.get(id)!)).catch((e) => asUserError(e, `case '${id}' ground truth`));
    const ps = headerShape(ph), gs = headerShape(gh);
    if (gs.length > 3) throw new UserError(`case '${id}': ground truth '${gts.get(id)}' is ${gs.join('x')}; a label map is 3-D`);
    if (ps.length > 3) throw new UserError(`case '${id}': prediction '${preds.get(id)}' is ${ps.join('x')}; a label map is 3-D (write argmax labels, not probabilities)`);
    if (ps.join('x') !== gs.join('x')) mismatched.push(`'${id}' (prediction ${ps.join('x')}, ground truth ${gs.join('x')})`);
  }
  if (mismatched.length) {
    throw new UserError(`prediction and ground truth shapes differ for ${mismatched.length} case(s): ${show(mismatched)}; resample predictions to the ground-truth grid first`);
  }

  // 3. Metrics.
  const tolFor = (label: number): number => (tolerances.length === 1 ? tolerances[0]! : tolerances[fixedClasses!.indexOf(label)]!);
  const gtLabels = new Set<number>();
  const perCase: { id: string; spacing: Spacing3; shape: number[]; metrics: Map<number, ClassMetrics> }[] = [];
  const bar = createProgress({ label: 'evaluate', total: pairs.length, fields: ['case'], plain: opts.plain });
  try {
    for (const id of pairs) {
      bar.update(perCase.length, { case: id });
      const gt = await loadVolume(join(opts.gtDir, gts.get(id)!), 'label').catch((e) => asUserError(e, `case '${id}' ground truth`));
      const pred = await loadVolume(join(opts.predDir, preds.get(id)!), 'label').catch((e) => asUserError(e, `case '${id}' prediction`));
      if (pred.data instanceof Float32Array) {
        throw new UserError(`case '${id}': prediction '${preds.get(id)}' holds non-integer values; evaluate expects label maps (argmax of the logits), not probabilities`);
      }
      if (pred.shape.join('x') !== gt.shape.join('x')) throw new UserError(`case '${id}': prediction ${pred.shape.join('x')} and ground truth ${gt.shape.join('x')} differ in shape`);
      const px = fixGeometry(gt.header!).pixdim;
      const spacing: Spacing3 = [px[1]!, px[2]!, px[3]!];
      const inGt = labelsOf(gt.data);
      for (const l of inGt) gtLabels.add(l);
      const labels = fixedClasses ?? [...new Set([...inGt, ...labelsOf(pred.data)])].sort((a, b) => a - b);
      const metrics = new Map<number, ClassMetrics>();
      if (labels.length) {
        const rows = computeSegmentationMetrics(pred.data, gt.data, gt.shape, { classes: labels, spacing, nsdTolerance: labels.map(tolFor) });
        for (const r of rows) metrics.set(r.label, r);
      }
      perCase.push({ id, spacing, shape: [...gt.shape], metrics });
    }
    bar.update(perCase.length, { case: '' });
  } finally {
    bar.stop();
  }
  const classes = fixedClasses ?? [...gtLabels].sort((a, b) => a - b);
  if (!classes.length) throw new UserError(`the ground truth of the ${pairs.length} paired case(s) holds no label > 0; pass --classes to score anyway`);
  const classNames = classes.map((c) => names.get(c) ?? '');
  const acc = new MetricAccumulator({ classes, classNames: opts.labels === undefined ? undefined : classNames, nsdTolerance: classes.map(tolFor) });
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
  const header = ['case', 'label', 'name', 'dice', 'hd95', 'nsd', 'pred_voxels', 'gt_voxels'];
  const lines = [header.join(',')];
  for (const r of acc.rows()) {
    r.classes.forEach((m, k) => {
      lines.push([csvField(r.caseId), String(m.label), csvField(classNames[k]!), fmtCsv(m.dice), fmtCsv(m.hd95), fmtCsv(m.nsd), String(m.predVoxels), String(m.gtVoxels)].join(','));
    });
  }
  for (const s of aggregate.perClass) {
    lines.push(['mean', String(s.label), csvField(s.name ?? ''), fmtCsv(s.dice.mean), fmtCsv(s.hd95.mean), fmtCsv(s.nsd.mean), '', ''].join(','));
  }
  lines.push(['mean', 'all', '', fmtCsv(aggregate.overall.dice), fmtCsv(aggregate.overall.hd95), fmtCsv(aggregate.overall.nsd), '', ''].join(','));

  const json = {
    pred_dir: opts.predDir,
    gt_dir: opts.gtDir,
    classes: classes.map((label, k) => ({ label, name: classNames[k] || null })),
    nsd_tolerance_mm: tolerances.length === 1 ? tolerances[0] : classes.map(tolFor),
    spacing_source: 'ground-truth header pixdim',
    conventions: 'NaN (class empty in both prediction and ground truth) and infinite HD95 (empty on one side only) are written as null; per-class means exclude NaN cases, so a class mean of HD95 is null when any case was empty on one side (see perClass[].hd95.finiteMean)',
    missing_in_pred: missingInPred,
    missing_in_gt: missingInGt,
    ...(acc.toJSON() as object),
    files: Object.fromEntries(perCase.map((c) => [c.id, { pred: preds.get(c.id), gt: gts.get(c.id), shape: c.shape }])),
  };
  try {
    await mkdir(dirname(csvPath), { recursive: true });
    await writeFileAtomic(csvPath, new TextEncoder().encode(lines.join('\n') + '\n'));
    await writeFileAtomic(jsonPath, new TextEncoder().encode(JSON.stringify(jsonSafe(json), null, 1) + '\n'));
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
    .description('score predicted label maps against ground truth: per case and per class Dice, HD95 (mm) and NSD, spacing-aware (ground-truth pixdim); writes OUT.csv and OUT.json and prints a summary')
    .argument('<pred_dir>', 'folder of predicted label maps (.nii/.nii.gz), one per case')
    .argument('<gt_dir>', 'folder of ground-truth label maps; cases are paired by file name without .nii/.nii.gz')
    .option('-o, --output <prefix>', 'output prefix: writes PREFIX.csv (one row per case and class, then mean rows) and PREFIX.json (default: PRED_DIR/metrics)')
    .option('--classes <labels>', 'comma-separated labels to score, e.g. 1,2 (default: every label > 0 found in the ground truth)')
    .option('--nsd-tolerance <mm>', 'NSD tolerance in mm (pixdim units): one value, or one per --classes entry (default: 1)')
    .option('--labels <file>', 'JSON naming the labels: {"1": "liver"}, ["background", "liver"], {"liver": 1}, or a dataset.json with "labels"')
    .addHelpText('after', '\nCases present on one side only are reported (warning) and listed in OUT.json; the exit status is non-zero when no case pairs, or when a pair differs in shape.')
    .action(async (predDir: string, gtDir: string, o: { output?: string; classes?: string; nsdTolerance?: string; labels?: string }) => {
      await runEvaluate({ predDir, gtDir, ...o });
    });
}
