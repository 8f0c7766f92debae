import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { InputError } from '../../engine/errors.js';
import { writeFileAtomic } from '../../io/fs.js';
import { loadVolume } from '../../data/load.js';
import { toRows } from '../../io/nifti/mat4.js';
import { runSteps, type Sample } from '../../data/pipeline.js';
import { loadPreset, type Preset } from '../../data/presets.js';
import { saveVolume } from '../../data/save.js';
import type { Volume } from '../../data/volume.js';
import { UserError } from '../errors.js';
import { checkWritableDir, LazyDirs, sameFile } from '../outputs.js';

export interface TransformOptions {
  input: string;
  label?: string;
  preset: string;
  stage: string;
  output: string;
}

function asUserError(e: unknown, what: string): never {
  if (e instanceof InputError) throw new UserError(`${what}: ${e.message}`);
  throw e;
}

/**
 * `uxnet transform`: one case through a preset's deterministic validation chain. Writes
 * image.nii.gz (float32), label.nii.gz (smallest integer type) and meta.json. Both NIfTI files carry
 * the affine MONAI's meta data would carry (after a foreground crop that is the affine of the grid
 * *before* the crop, as in MONAI 0.9.0); meta.json also gives the true affine of the written grid.
 */
export async function runTransform(opts: TransformOptions): Promise<{ meta: Record<string, unknown> }> {
  if (opts.stage !== 'val') {
    throw new UserError(`--stage ${opts.stage}: only 'val' (the deterministic chain) can be written; the training tail is random and runs in the loader`);
  }
  let preset: Preset;
  try {
    preset = loadPreset(opts.preset);
  } catch (e) {
    throw new UserError((e as Error).message);
  }
  if (preset.auto) throw new UserError(`preset 'auto' is planned from a dataset: run 'uxnet preprocess --dataset DIR --preset auto' and pass the written plan.json as --preset`);
  await checkWritableDir(opts.output);
  for (const name of ['image.nii.gz', 'label.nii.gz', 'meta.json']) {
    const same = [opts.input, opts.label].find((p) => p !== undefined && sameFile(p, join(opts.output, name)));
    if (same !== undefined) throw new UserError(`output '${join(opts.output, name)}' would replace the input '${same}'; choose another output folder`);
  }
  const image = (await loadVolume(opts.input, 'image').catch((e) => asUserError(e, 'image'))) as Volume<Float32Array>;
  const label = opts.label === undefined ? undefined : await loadVolume(opts.label, 'label').catch((e) => asUserError(e, 'label'));
  if (label && label.channels !== 1) throw new UserError(`label '${opts.label}' has ${label.channels} channels; a label map has one`);
  const sample: Sample = { image, label };
  const inputShape = [...image.shape];
  let result: ReturnType<typeof runSteps>;
  try {
    result = runSteps(sample, preset.val);
  } catch (e) {
    throw new UserError(`preset '${preset.name}' failed on '${opts.input}': ${(e as Error).message}`);
  }
  const out = result.sample;
  const meta = {
    preset: preset.name,
    stage: opts.stage,
    input: { image: opts.input, label: opts.label ?? null, shape: inputShape, affine: toRows(image.affine) },
    foreground: out.foreground ? { start: out.foreground.start, end: out.foreground.end } : null,
    steps: result.records.map((r) => ({ op: r.op, image_shape: r.imageShape, ...(r.labelShape ? { label_shape: r.labelShape } : {}), ...(r.detail ?? {}) })),
    output: {
      shape: out.image.shape,
      affine: toRows(out.image.affine),
      affine_note: 'MONAI 0.9.0 meta affine (written to the NIfTI files); after a foreground crop it describes the uncropped grid',
      grid_affine: toRows(out.image.gridAffine),
    },
    ops: out.image.ops,
  };
  const desc = `uxnet transform ${preset.name}`;
  // All three files or none: a failure part-way (disk full) removes what this run wrote.
  const dirs = new LazyDirs();
  const written: string[] = [];
  const put = async (name: string, write: (path: string) => Promise<void>) => {
    const path = join(opts.output, name);
    await write(path);
    written.push(path);
  };
  try {
    await dirs.ensure(opts.output);
    await put('image.nii.gz', (p) => saveVolume(p, out.image, { description: desc }));
    if (out.label) await put('label.nii.gz', (p) => saveVolume(p, out.label!, { label: true, description: desc }));
    await put('meta.json', (p) => writeFileAtomic(p, new TextEncoder().encode(JSON.stringify(meta, null, 1) + '\n')));
  } catch (e) {
    for (const p of written) await unlink(p).catch(() => {});
    await dirs.discardIfUnused();
    throw e;
  }
  return { meta };
}

export function registerTransform(program: Command): void {
  program
    .command('transform')
    .description("apply a preset's deterministic validation chain to one case; writes image.nii.gz, label.nii.gz and meta.json")
    .requiredOption('-i, --input <image>', 'image NIfTI (.nii or .nii.gz)')
    .option('--label <label>', 'label NIfTI on the same grid')
    .option('--preset <name>', 'flare, amos, feta, or a preset/plan JSON file', 'flare')
    .option('--stage <stage>', 'which chain: val', 'val')
    .requiredOption('-o, --output <dir>', 'output directory')
    .action(async (o: { input: string; label?: string; preset: string; stage: string; output: string }) => {
      const { meta } = await runTransform(o);
      process.stderr.write(`wrote ${o.output}/image.nii.gz${o.label ? ', label.nii.gz' : ''}, meta.json (shape ${(meta.output as { shape: number[] }).shape.join('x')})\n`);
    });
}
