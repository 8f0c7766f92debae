import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { loadVolume } from '../../data/load.js';
import { voxelSpacing } from '../../io/nifti/index.js';
import { loadModel } from '../../infer/segment.js';
import { legendOf, writeOverlayPng } from '../../infer/overlay.js';
import { MetricAccumulator, jsonSafe } from '../../metrics/index.js';
import { writeFileAtomic } from '../../io/fs.js';
import { createProgress } from '../progress.js';
import { selectBackend } from '../backend.js';
import { UserError } from '../errors.js';
import { checkWritableDir, LazyDirs } from '../outputs.js';

/** The package root (this file is dist/src/cli/commands/demo.js once built). */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

export interface DemoOptions {
  model: string;
  dataset: string;
  output: string;
  limit?: number;
  backend?: string;
}

/** How many cases `npm start` scores with a cross-validation ensemble when --limit is not given. */
const ENSEMBLE_DEMO_CASES = 10;

/** The `training` record of a model folder, or of an ensemble written by `uxnet crossval`. */
interface CrossvalTraining {
  split?: { train?: string[]; val?: string[] };
  crossval?: string;
  folds?: number;
  crossvalMeanDice?: number;
}

const fmt = (v: number, d = 3) => (Number.isFinite(v) ? v.toFixed(d) : v === Infinity ? 'inf' : 'n/a');

/**
 * `npm start`: the bundled model segments the bundled held-out cases (its validation split, never
 * seen in training), writes labels and overlay PNGs, and scores them against the expert labels. A
 * crossval ensemble has no such cases; it scores the first bundled cases and says they were trained on.
 */
export async function runDemo(o: DemoOptions, log: (s: string) => void = (s) => process.stdout.write(s + '\n')): Promise<{ meanDice: number; cases: number }> {
  const backend = await selectBackend(o.backend);
  if (!existsSync(join(o.model, 'model.json'))) throw new UserError(`no model at '${o.model}' (model.json missing)`);
  await checkWritableDir(o.output);
  const model = await loadModel(o.model);
  const loaded = model;
  const training = (loaded.manifest.training ?? {}) as CrossvalTraining;
  let ids = training.split?.val ?? [];
  const hasCase = (id: string) => existsSync(join(o.dataset, 'imagesTr', `${id}.nii.gz`)) && existsSync(join(o.dataset, 'labelsTr', `${id}.nii.gz`));
  // A cross-validation ensemble holds out no case from all its members: say so, and score bundled cases anyway.
  const seenInTraining = !ids.length && typeof training.crossval === 'string';
  if (seenInTraining) {
    ids = (training.split?.train ?? []).filter(hasCase).slice(0, o.limit ?? ENSEMBLE_DEMO_CASES);
    if (!ids.length) throw new UserError(`none of the training cases of ensemble '${loaded.manifest.name}' is in ${o.dataset} (imagesTr/ and labelsTr/)`);
    const k = training.folds ?? 0;
    const cv = typeof training.crossvalMeanDice === 'number' ? `; its cross-validated mean foreground Dice is ${fmt(training.crossvalMeanDice, 4)}` : '';
    log(
      `model '${loaded.manifest.name}' is the ${k}-fold ensemble of crossval run '${training.crossval}': every case trained ${k - 1} of its ${k} members, so these scores are not held-out${cv}`,
    );
  } else {
    if (!ids.length) throw new UserError(`model '${loaded.manifest.name}' records no held-out cases (training.split.val)`);
    // The npm package carries only a few of the held-out cases; a clone has them all.
    const present = ids.filter(hasCase);
    if (!present.length) throw new UserError(`none of the ${ids.length} held-out cases of model '${loaded.manifest.name}' is in ${o.dataset} (imagesTr/ and labelsTr/)`);
    if (present.length < ids.length) log(`${present.length} of the ${ids.length} held-out cases are in ${o.dataset}; scoring those`);
    ids = present;
    if (o.limit) ids = ids.slice(0, o.limit);
  }
  for (const id of ids) {
    for (const sub of ['imagesTr', 'labelsTr'])
      if (!existsSync(join(o.dataset, sub, `${id}.nii.gz`))) throw new UserError(`case '${id}' is missing from ${o.dataset} (${sub}/${id}.nii.gz)`);
  }
  const dirs = new LazyDirs();
  await dirs.ensure(o.output);
  const K = Object.keys(loaded.manifest.labels).length;
  const classes = Array.from({ length: K - 1 }, (_, i) => i + 1);
  const names = classes.map((c) => loaded.manifest.labels[String(c)] ?? `class ${c}`);
  const acc = new MetricAccumulator({ classes, classNames: names });
  log(`model '${loaded.manifest.name}' on backend '${backend}': segmenting ${ids.length} ${seenInTraining ? 'training' : 'held-out'} cases -> ${o.output}`);
  const bar = createProgress({ label: 'segmenting', total: ids.length, fields: ['case'] });
  const t0 = Date.now();
  const rows: string[][] = [];
  try {
    for (const [i, id] of ids.entries()) {
      const imgPath = join(o.dataset, 'imagesTr', `${id}.nii.gz`);
      const lblPath = join(o.dataset, 'labelsTr', `${id}.nii.gz`);
      const pred = await model.segment(imgPath);
      const image = pred.image;
      const gt = await loadVolume(lblPath, 'label');
      await writeFileAtomic(join(o.output, `${id}.nii.gz`), pred.labelsNifti);
      await writeOverlayPng(join(o.output, `${id}.png`), image.data, pred.labels.data, image.shape, { legend: legendOf(loaded.manifest.labels) });
      // Spacing from the ground truth's header, as `evaluate` takes it; Dice follows diceFromCounts there too.
      const spacing = voxelSpacing(gt.header!);
      const row = acc.add(id, pred.labels.data as Uint8Array, gt.data as Uint8Array, image.shape, spacing);
      rows.push([id, ...row.classes.flatMap((c) => [fmt(c.dice), fmt(c.hd95, 2)])]);
      bar.update(i + 1, { case: id });
    }
  } catch (e) {
    await dirs.discardIfUnused();
    throw e;
  } finally {
    bar.stop();
    model.dispose();
  }
  const seconds = (Date.now() - t0) / 1000;
  const agg = acc.aggregate();
  const header = ['case', ...names.flatMap((n) => [`${n} Dice`, 'HD95 mm'])];
  const mean = ['mean', ...agg.perClass.flatMap((c) => [fmt(c.dice.mean), fmt(c.hd95.finiteMean, 2)])];
  log('');
  for (const line of alignTable([header, ...rows, mean])) log(line);
  const meanDice = agg.perClass.reduce((a, c) => a + c.dice.mean, 0) / agg.perClass.length;
  log(`\nmean foreground Dice ${fmt(meanDice, 4)} over ${ids.length} cases; ${(seconds / ids.length).toFixed(2)} s per case (${seconds.toFixed(1)} s total)`);
  await writeFileAtomic(
    join(o.output, 'metrics.json'),
    new TextEncoder().encode(JSON.stringify(jsonSafe({ model: loaded.manifest.name, backend, heldOut: !seenInTraining, seconds, ...(acc.toJSON() as object) }), null, 1) + '\n'),
  );
  log(`labels, overlays (*.png) and metrics.json are in ${o.output}`);
  return { meanDice, cases: ids.length };
}

/** Columns padded to their widest cell: the first left-aligned (names), the rest right-aligned (numbers). */
export function alignTable(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, j) => Math.max(...rows.map((r) => (r[j] ?? '').length)));
  return rows.map((r) =>
    r
      .map((c, j) => (j === 0 ? c.padEnd(widths[j]!) : c.padStart(widths[j]!)))
      .join('  ')
      .trimEnd(),
  );
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('segment the bundled held-out hippocampus MRIs with the bundled model and score them (what `npm start` runs)')
    .option('-m, --model <dir>', 'model folder', join(ROOT, 'models', 'hippocampus'))
    .option('--dataset <dir>', 'dataset with imagesTr/ and labelsTr/', join(ROOT, 'datasets', 'msd-hippocampus'))
    .option('-o, --output <dir>', 'where labels, overlays and metrics go', 'out')
    .option('--limit <n>', 'only the first n held-out cases', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new UserError(`--limit must be a positive integer, got '${v}'`);
      return n;
    })
    .option('--backend <name>', 'compute backend (default: native when built)')
    .action(async (o: DemoOptions) => {
      await runDemo(o);
    });
}
