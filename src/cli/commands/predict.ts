import { existsSync, statSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Command } from 'commander';
import { loadImage, NiftiError, VolumeError } from '../../data/load.js';
import { saveVolume } from '../../data/save.js';
import { loadModelFolder, ModelFolderError, type LoadedModel } from '../../infer/model-folder.js';
import { predictVolume, type PredictOptions } from '../../infer/predict.js';
import { writeOverlayPng } from '../../infer/overlay.js';
import { createProgress } from '../progress.js';
import { selectBackend } from '../backend.js';
import { UserError } from '../errors.js';

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
}

const NIFTI = /\.nii(\.gz)?$/i;

export function caseName(path: string): string {
  return basename(path).replace(NIFTI, '');
}

/** Input/output pairs: a file to a file, or every NIfTI in a folder to the same name in another. */
export async function resolvePairs(input: string, output: string): Promise<[string, string][]> {
  if (!existsSync(input)) throw new UserError(`input '${input}' does not exist`);
  if (statSync(input).isDirectory()) {
    const files = (await readdir(input)).filter((f) => NIFTI.test(f)).sort();
    if (!files.length) throw new UserError(`input folder '${input}' holds no .nii or .nii.gz files`);
    if (existsSync(output) && !statSync(output).isDirectory()) throw new UserError(`input is a folder, so the output '${output}' must be a folder too`);
    await mkdir(output, { recursive: true });
    // MSD/nnU-Net images carry a _0000 channel suffix; the label keeps the case name.
    return files.map((f) => [join(input, f), join(output, `${caseName(f).replace(/_0000$/, '')}.nii.gz`)]);
  }
  if (!NIFTI.test(output)) throw new UserError(`output '${output}' must end in .nii or .nii.gz`);
  await mkdir(dirname(output), { recursive: true });
  return [[input, output]];
}

function parseNumber(v: string, what: string, check: (n: number) => boolean): number {
  const n = Number(v);
  if (!Number.isFinite(n) || !check(n)) throw new UserError(`invalid ${what}: '${v}'`);
  return n;
}

export async function runPredict(opts: PredictCliOptions, log: (s: string) => void = (s) => process.stderr.write(s + '\n')): Promise<{ cases: number }> {
  const backend = await selectBackend(opts.backend);
  const pairs = await resolvePairs(opts.input, opts.output);
  let loaded: LoadedModel;
  try {
    loaded = await loadModelFolder(opts.model);
  } catch (e) {
    if (e instanceof ModelFolderError) throw new UserError(e.message);
    throw e;
  }
  log(`model '${loaded.manifest.name}' (${loaded.model.numParameters().toLocaleString('en-US')} parameters) on backend '${backend}', ${pairs.length} case(s)`);
  const popts: PredictOptions = { overlap: opts.overlap, mode: opts.mode, swBatchSize: opts.swBatch, tta: opts.tta, fast: opts.fast, probabilities: opts.probabilities };
  for (const [inPath, outPath] of pairs) {
    const t0 = Date.now();
    let image;
    try {
      image = await loadImage(inPath);
    } catch (e) {
      if (e instanceof NiftiError || e instanceof VolumeError) throw new UserError(`${inPath}: ${e.message}`);
      throw e;
    }
    const bar = createProgress({ label: caseName(inPath), total: 1 });
    let pred;
    try {
      pred = await predictVolume(loaded, image, { ...popts, onProgress: (d, t) => { bar.setTotal(t); bar.update(d); } });
    } catch (e) {
      if (e instanceof UserError) throw e;
      throw new UserError(`${inPath}: ${(e as Error).message}`);
    } finally {
      bar.stop();
    }
    await saveVolume(outPath, pred.labels, { label: true, description: `uxnet3d ${loaded.manifest.name}` });
    if (pred.probabilities) await saveVolume(outPath.replace(NIFTI, '_probabilities.nii.gz'), pred.probabilities, { description: `uxnet3d ${loaded.manifest.name} probabilities` });
    if (opts.png) await writeOverlayPng(outPath.replace(NIFTI, '.png'), image.data, pred.labels.data, image.shape);
    log(`${caseName(inPath)}: ${image.shape.join('x')} -> network ${pred.networkShape.join('x')}, ${((Date.now() - t0) / 1000).toFixed(1)} s -> ${outPath}`);
  }
  return { cases: pairs.length };
}

export function registerPredict(program: Command): void {
  program
    .command('predict')
    .description('segment NIfTI images with a trained model folder; labels are written on the input\'s own grid')
    .requiredOption('-i, --input <path>', 'input image (.nii/.nii.gz) or a folder of them')
    .requiredOption('-o, --output <path>', 'output label file (.nii.gz), or a folder when --input is a folder')
    .requiredOption('-m, --model <dir>', 'model folder (model.json + weights.safetensors), e.g. models/hippocampus')
    .option('--backend <name>', 'compute backend (default: native when built, else reference)')
    .option('--overlap <f>', 'sliding-window overlap in [0, 1) (default: the model\'s, usually 0.5)', (v) => parseNumber(v, '--overlap', (n) => n >= 0 && n < 1))
    .option('--mode <mode>', 'window blending: gaussian or constant (default: the model\'s)', (v) => {
      if (v !== 'gaussian' && v !== 'constant') throw new UserError(`--mode must be gaussian or constant, got '${v}'`);
      return v;
    })
    .option('--sw-batch <n>', 'windows per network call (default: the model\'s)', (v) => parseNumber(v, '--sw-batch', (n) => Number.isInteger(n) && n >= 1))
    .option('--tta', 'mirroring test-time augmentation: average the flips along the axes the model was trained with (up to 8x slower)')
    .option('--fast', 'use the model\'s coarser spacing for a quicker, rougher result')
    .option('--probabilities', 'also write class probabilities next to each output (<name>_probabilities.nii.gz)')
    .option('--png', 'also write an axial/coronal/sagittal overlay image next to each output (<name>.png)')
    .action(async (o: PredictCliOptions) => {
      await runPredict(o);
    });
}
