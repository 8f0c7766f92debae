import { existsSync, realpathSync, statSync } from 'node:fs';
import { open, readdir } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { gunzipSync, constants as zc } from 'node:zlib';
import type { Command } from 'commander';
import { InputError } from '../../engine/errors.js';
import { writeFileAtomic } from '../../io/fs.js';
import { isGzip, parseHeader } from '../../io/nifti/index.js';
import { ENSEMBLE_FORMAT, segmenterDefaultTta } from '../../infer/ensemble-manifest.js';
import { loadModel, type SegmentationModel, type SegmentOptions } from '../../infer/segment.js';
import { legendOf, writeOverlayPng } from '../../infer/overlay.js';
import { createProgress } from '../progress.js';
import { selectBackend } from '../backend.js';
import { UserError } from '../errors.js';
import { checkWritableDir, checkWritableFile, LazyDirs } from '../outputs.js';
import { heldOutSelection, parseFold } from '../held-out-cases.js';

export interface PredictCliOptions {
  input: string;
  output: string;
  model: string;
  backend?: string;
  overlap?: number;
  mode?: 'gaussian' | 'constant';
  swBatch?: number;
  tta?: boolean;
  fast?: boolean;
  probabilities?: boolean;
  png?: boolean;
  /** Replace existing output files that uxnet did not write. */
  force?: boolean;
  /** Stop at the first case that fails instead of going on and listing the failures at the end. */
  failFast?: boolean;
  /** With a folder input: segment only the held-out cases of this split (file or run folder)... */
  split?: string;
  /** ...of this fold, for a cross-validation split. */
  fold?: number;
}

const NIFTI = /\.nii(\.gz)?$/i;

export function caseName(path: string): string {
  return basename(path).replace(NIFTI, '');
}

/** One input and everything written for it (labels first, then probabilities and overlay). */
export interface PredictJob {
  input: string;
  labels: string;
  probabilities?: string;
  png?: string;
}

/** Input/output pairs: a file to a file (or into a folder), or every NIfTI in a folder to the same name in another. */
export async function resolvePairs(input: string, output: string): Promise<[string, string][]> {
  if (!existsSync(input)) throw new UserError(`input '${input}' does not exist`);
  if (statSync(input).isDirectory()) {
    const outIsFile = existsSync(output) && !statSync(output).isDirectory();
    if (outIsFile || NIFTI.test(output)) {
      throw new UserError(
        `input '${input}' is a folder, so --output must be a folder too, but '${output}' ${outIsFile ? 'is a file' : 'is a file name'}; to segment one image, give that image as --input`,
      );
    }
    const files = (await readdir(input)).filter((f) => NIFTI.test(f)).sort();
    if (!files.length) throw new UserError(`input folder '${input}' holds no .nii or .nii.gz files`);
    // MSD/nnU-Net images carry a _0000 channel suffix; the label keeps the case name.
    return files.map((f) => [join(input, f), join(output, `${caseName(f).replace(/_0000$/, '')}.nii.gz`)]);
  }
  if ((existsSync(output) && statSync(output).isDirectory()) || output.endsWith('/') || output.endsWith(sep)) {
    return [[input, join(output, `${caseName(input)}.nii.gz`)]];
  }
  if (!NIFTI.test(output)) throw new UserError(`output '${output}' must end in .nii or .nii.gz (or name a folder)`);
  return [[input, output]];
}

/** The absolute path a (possibly not yet existing) file resolves to, symlinks followed. */
function realTarget(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    try {
      return join(realpathSync(dirname(p)), basename(p));
    } catch {
      return resolve(p);
    }
  }
}

/** Whether an existing file is something uxnet wrote (a NIfTI whose description starts with "uxnet3d"). */
async function writtenByUxnet(path: string): Promise<boolean> {
  let head: Uint8Array;
  const fh = await open(path, 'r');
  try {
    const buf = new Uint8Array(64 * 1024);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    head = buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
  try {
    // A partial gzip stream inflates as far as it goes with a sync flush: the header is at the start.
    if (isGzip(head)) head = gunzipSync(head, { finishFlush: zc.Z_SYNC_FLUSH });
    return parseHeader(head).descrip.startsWith('uxnet3d');
  } catch {
    return false;
  }
}

/**
 * Everything that could destroy data or fail late, checked before the model is even loaded: an output
 * that is an input (same file through any path or symlink), two inputs written to one output,
 * existing files uxnet did not write (kept unless `force`), and output locations that cannot be written.
 */
export async function checkJobs(jobs: PredictJob[], inputRoot: string, force: boolean): Promise<void> {
  const inputs = new Map<string, string>();
  const inputFiles = statSync(inputRoot).isDirectory() ? (await readdir(inputRoot)).sort().map((f) => join(inputRoot, f)) : [inputRoot];
  // The first name wins, so a file is reported under its own name rather than a symlink's.
  for (const f of inputFiles) if (!inputs.has(realTarget(f))) inputs.set(realTarget(f), f);
  const outputs = new Map<string, string>();
  for (const job of jobs) {
    for (const out of [job.labels, job.probabilities, job.png]) {
      if (!out) continue;
      const real = realTarget(out);
      const asInput = inputs.get(real);
      if (asInput !== undefined) throw new UserError(`output '${out}' would replace the input '${asInput}': choose another output (predict never overwrites an input)`);
      const other = outputs.get(real);
      if (other !== undefined) throw new UserError(`inputs '${other}' and '${job.input}' would both be written to '${out}'; rename one of them`);
      outputs.set(real, job.input);
    }
  }
  if (!force) {
    const foreign: string[] = [];
    for (const job of jobs) {
      const labelsOurs = existsSync(job.labels) && statSync(job.labels).isFile() && (await writtenByUxnet(job.labels));
      for (const out of [job.labels, job.probabilities, job.png]) {
        if (!out || !existsSync(out) || statSync(out).isDirectory()) continue;
        // An overlay is replaced along with the prediction it belongs to.
        const ours = out === job.png ? labelsOurs : await writtenByUxnet(out);
        if (!ours) foreign.push(out);
      }
    }
    if (foreign.length) {
      const more = foreign.length > 1 ? ` and ${foreign.length - 1} other output file(s) already exist` : ' already exists';
      throw new UserError(`'${foreign[0]}'${more} and ${foreign.length > 1 ? 'were' : 'was'} not written by uxnet; pass --force to replace, or choose another output`);
    }
  }
  for (const dir of new Set(jobs.map((j) => dirname(j.labels)))) await checkWritableDir(dir);
  for (const job of jobs) for (const out of [job.labels, job.probabilities, job.png]) if (out) await checkWritableFile(out, 'output', { createDirs: true });
}

function parseNumber(v: string, what: string, check: (n: number) => boolean): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || !check(n)) throw new UserError(`invalid ${what}: '${v}'`);
  return n;
}

export interface PredictSummary {
  cases: number;
  failed: { input: string; message: string }[];
}

export async function runPredict(
  opts: PredictCliOptions,
  log: (s: string) => void = (s) => process.stdout.write(s + '\n'),
  warn: (s: string) => void = (s) => process.stderr.write(`uxnet: warning: ${s}\n`),
): Promise<PredictSummary> {
  if (opts.split !== undefined && existsSync(opts.input) && !statSync(opts.input).isDirectory()) {
    throw new UserError(`--split picks cases from a folder of images, but '${opts.input}' is one file; give the folder that holds the split's images`);
  }
  let pairs = await resolvePairs(opts.input, opts.output);
  const inputCase = (f: string) => caseName(f).replace(/_0000$/, '');
  const selection = await heldOutSelection(opts, [{ present: pairs.map(([input]) => inputCase(input)), what: 'image', where: opts.input }]);
  if (selection) {
    const held = new Set(selection.cases);
    pairs = pairs.filter(([input]) => held.has(inputCase(input)));
  }
  const jobs: PredictJob[] = pairs.map(([input, labels]) => ({
    input,
    labels,
    probabilities: opts.probabilities ? labels.replace(NIFTI, '_probabilities.nii.gz') : undefined,
    png: opts.png ? labels.replace(NIFTI, '.png') : undefined,
  }));
  await checkJobs(jobs, opts.input, !!opts.force);
  const backend = await selectBackend(opts.backend);
  const model: SegmentationModel = await loadModel(opts.model);
  const sopts: SegmentOptions = {
    overlap: opts.overlap,
    mode: opts.mode,
    swBatchSize: opts.swBatch,
    tta: opts.tta,
    fast: opts.fast,
    probabilities: opts.probabilities,
    gzip: true,
    onWarning: warn,
  };
  model.checkOptions(sopts);
  // Say when mirroring runs by the model's default, so a slower run (or a --no-tta comparison) is never a surprise.
  const ttaByDefault = opts.tta === undefined && segmenterDefaultTta(model.loaded);
  log(
    `${model.manifest.format === ENSEMBLE_FORMAT ? `ensemble of ${model.members.length}` : 'model'} '${model.manifest.name}' (${model.numParameters().toLocaleString('en-US')} parameters) on backend '${backend}', ${jobs.length} case(s)${selection ? ` (the held-out cases of ${selection.description})` : ''}${ttaByDefault ? ", mirroring TTA (the model's default; --no-tta to skip)" : ''}`,
  );
  const dirs = new LazyDirs();
  const failed: PredictSummary['failed'] = [];
  let written = 0;
  try {
    for (const job of jobs) {
      const t0 = Date.now();
      const bar = createProgress({ label: caseName(job.input), total: 1 });
      let result;
      try {
        result = await model.segment(job.input, {
          ...sopts,
          onProgress: (d, t) => {
            bar.setTotal(t);
            bar.update(d);
          },
        });
      } catch (e) {
        // A bad case is the user's input: go on with the others (unless asked not to); bugs still stop.
        if (!(e instanceof InputError) || opts.failFast || jobs.length === 1) throw e;
        failed.push({ input: job.input, message: e.message });
        continue;
      } finally {
        bar.stop();
      }
      await dirs.ensure(dirname(job.labels));
      await writeFileAtomic(job.labels, job.labels.endsWith('.gz') ? result.labelsNifti : gunzipSync(result.labelsNifti));
      written++;
      if (job.probabilities && result.probabilitiesNifti) await writeFileAtomic(job.probabilities, result.probabilitiesNifti);
      if (job.png) await writeOverlayPng(job.png, result.image.data, result.labels.data, result.image.shape, { legend: legendOf(model.labelNames) });
      log(`${caseName(job.input)}: ${result.image.shape.join('x')} -> network ${result.networkShape.join('x')}, ${((Date.now() - t0) / 1000).toFixed(1)} s -> ${job.labels}`);
    }
  } finally {
    if (!written) await dirs.discardIfUnused();
    model.dispose();
  }
  if (failed.length) {
    for (const f of failed) process.stderr.write(`  failed: ${f.message}\n`);
    throw new UserError(`${failed.length} of ${jobs.length} case(s) failed (listed above)${written ? `; the other ${written} were written` : ''}`, 1);
  }
  return { cases: jobs.length, failed };
}

export function registerPredict(program: Command): void {
  program
    .command('predict')
    .description(
      "segment NIfTI images with a trained model folder; labels are written on the input's own grid. Never overwrites an input; replaces earlier uxnet predictions but no other existing file unless --force",
    )
    .requiredOption('-i, --input <path>', 'input image (.nii/.nii.gz) or a folder of them')
    .requiredOption('-o, --output <path>', 'output label file (.nii.gz), or a folder (required when --input is a folder)')
    .requiredOption(
      '-m, --model <dir>',
      "model folder (model.json + weights.safetensors), e.g. models/hippocampus, or an ensemble folder (its members' probabilities are averaged)",
    )
    .option('--backend <name>', 'compute backend (default: native when built, else reference)')
    .option('--overlap <f>', "sliding-window overlap in [0, 1) (default: the model's, usually 0.5)", (v) => parseNumber(v, '--overlap', (n) => n >= 0 && n < 1))
    .option('--mode <mode>', "window blending: gaussian or constant (default: the model's)", (v) => {
      if (v !== 'gaussian' && v !== 'constant') throw new UserError(`--mode must be gaussian or constant, got '${v}'`);
      return v;
    })
    .option('--sw-batch <n>', "windows per network call (default: the model's)", (v) => parseNumber(v, '--sw-batch', (n) => Number.isInteger(n) && n >= 1))
    .option(
      '--tta',
      "mirroring test-time augmentation: average the flips along the axes the model was trained with (up to 8x slower; default: the model's, model.json inference.tta)",
    )
    .option('--no-tta', "no mirroring test-time augmentation even where the model's default is on")
    .option('--fast', "use the model's coarser spacing for a quicker, rougher result (only models whose model.json sets preprocessing.fastPixdim)")
    .option('--probabilities', 'also write class probabilities next to each output (<name>_probabilities.nii.gz)')
    .option('--png', 'also write an axial/coronal/sagittal overlay image next to each output (<name>.png)')
    .option('--force', 'replace existing output files even if uxnet did not write them (inputs are never replaced)')
    .option('--split <file>', 'with a folder --input: segment only the held-out cases of a split file or run folder (a crossval split needs --fold)')
    .option('--fold <k>', 'with --split: the fold whose held-out cases to segment', parseFold)
    .option('--fail-fast', 'with a folder: stop at the first case that fails (default: segment the others, list the failures at the end)')
    .action(async (o: PredictCliOptions) => {
      await runPredict(o);
    });
}
