/**
 * `uxnet crossval-predict RUN [RUN2 ...] -o OUT`: the held-out cases of finished crossval folds,
 * predicted again with those folds' models — with mirroring TTA, or averaged over the same fold of
 * several runs (other recipes, other networks: an ensemble cross-validated, as nnU-Net's
 * find_best_configuration scores ensembles of configurations) — and scored. Fold k's cases are
 * predicted only by models that never trained on them, so the score is as held-out as the runs' own.
 *
 * OUT/predictions/<case>.nii.gz and OUT/metrics.{json,csv} in `uxnet evaluate`'s format, which
 * `uxnet compare RUN OUT` sets beside the runs with paired tests.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { discoverDataset, type Case as DatasetCase } from '../data/dataset.js';
import { checkMembers, ENSEMBLE_FORMAT, predictEnsemble, type EnsembleManifest } from '../infer/ensemble-manifest.js';
import { loadModelFolder, modelWeightsPath, type LoadedModel } from '../infer/model-folder.js';
import { predictVolume } from '../infer/predict.js';
import { isInside, writeFileAtomic } from '../io/fs.js';
import { MetricAccumulator } from '../metrics/accumulator.js';
import { meanDefined } from '../metrics/summary.js';
import { evaluationCsv, evaluationJson } from '../metrics/report.js';
import { CompareError, pairingProblem, readCrossvalRun, restrictToFolds } from './compare.js';
import { predictAndScore } from './held-out.js';
import { TrainRunError } from './run.js';

export interface CrossvalPredictOptions {
  /** crossval run folders with the same dataset and split; several: their fold-k models averaged */
  runs: string[];
  outDir: string;
  /** default: every fold that all runs have finished */
  folds?: readonly number[];
  tta?: boolean;
  /** replace OUT's earlier predictions and metrics */
  force?: boolean;
  log?: (s: string) => void;
  onCase?: (fold: number, caseId: string, done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface CrossvalPredictResult {
  folds: number[];
  perFold: { fold: number; cases: number; meanDice: number }[];
  /** mean over cases of each case's mean foreground Dice */
  meanDice: number;
  cases: number;
  /** null when stopped before every fold was done (then no metrics file is written) */
  metricsPath: string | null;
  csvPath: string | null;
  predDir: string;
}

const enc = (s: string) => new TextEncoder().encode(s);

export async function crossvalPredict(o: CrossvalPredictOptions): Promise<CrossvalPredictResult> {
  const log = o.log ?? (() => {});
  if (!o.runs.length) throw new TrainRunError('give at least one crossval run folder');
  const outDir = resolve(o.outDir);
  const runs = await Promise.all(
    o.runs.map(async (d) => {
      try {
        return { dir: resolve(d), ...(await readCrossvalRun(d)) };
      } catch (e) {
        throw e instanceof CompareError ? new TrainRunError(e.message) : e;
      }
    }),
  );
  // The folds: those asked for (each run must have finished them), else all that every run has.
  const folds = o.folds ? [...o.folds] : runs[0]!.s.foldsDone.filter((k) => runs.every((r) => r.s.foldsDone.includes(k)));
  if (!folds.length) throw new TrainRunError(`no fold is finished in every run (${runs.map((r) => `${basename(r.dir)}: [${r.s.foldsDone.join(', ')}]`).join('; ')})`);
  const restricted = runs.map((r) => {
    for (const k of folds)
      if (!(Number.isInteger(k) && k >= 0 && k < r.s.folds)) throw new TrainRunError(`--folds: ${basename(r.dir)} has ${r.s.folds} folds, there is no fold ${k}`);
    try {
      return { dir: r.dir, s: restrictToFolds(r.dir, r.s, folds), splits: r.splits };
    } catch (e) {
      throw e instanceof CompareError ? new TrainRunError(e.message) : e;
    }
  });
  for (const r of restricted.slice(1)) {
    const p = pairingProblem(restricted[0]!, r);
    if (p) throw new TrainRunError(p);
  }
  for (const r of runs) {
    if (isInside(r.dir, outDir)) throw new TrainRunError(`the output folder ${o.outDir} is inside the run ${basename(r.dir)}; write it elsewhere`);
  }
  if (existsSync(outDir)) {
    if (!statSync(outDir).isDirectory()) throw new TrainRunError(`${o.outDir} is a file, not a folder`);
    if (readdirSync(outDir).length && !o.force)
      throw new TrainRunError(`${o.outDir} already exists; pass --force to replace its predictions and metrics, or choose another folder`);
  }

  // The cases, from the first run's dataset (its summary names the folder relative to the run).
  const first = runs[0]!;
  const dsDir = resolve(first.dir, first.s.dataset);
  const labelled = new Map(
    discoverDataset(dsDir)
      .cases.filter((c) => c.label)
      .map((c) => [c.id, c]),
  );
  const heldOut = folds.map((k) =>
    first.splits.folds[k]!.val.map((id) => {
      const c = labelled.get(id);
      if (!c) throw new TrainRunError(`fold ${k} holds out case '${id}', which is not a labelled case of ${dsDir}`);
      return c;
    }),
  );

  // Every fold model must have its weights (a run kept in a repository may not): checked before any work.
  for (const r of runs)
    for (const k of folds) {
      const m = join(r.dir, `fold_${k}`, 'model');
      if (!modelWeightsPath(m))
        throw new TrainRunError(
          `${basename(r.dir)}: fold ${k}'s model folder ${m} has no weights, so it cannot predict (the run's uxnet crossval command with --remake-weights re-makes them)`,
        );
    }

  // Built in a folder beside OUT and moved into place at the end: a failed or stopped run leaves OUT as it was.
  const predDir = join(outDir, 'predictions');
  const stage = `${outDir}.tmp-${process.pid}`;
  await rm(stage, { recursive: true, force: true });
  await mkdir(join(stage, 'predictions'), { recursive: true });
  try {
    const r = await predictFolds(stage, { runs, folds, heldOut, labelled, outDir, o, log });
    if (!r) {
      await rm(stage, { recursive: true, force: true });
      return { folds, perFold: [], meanDice: NaN, cases: 0, metricsPath: null, csvPath: null, predDir };
    }
    if (!existsSync(outDir)) await rename(stage, outDir);
    else {
      for (const f of ['predictions', 'metrics.json', 'metrics.csv']) {
        await rm(join(outDir, f), { recursive: true, force: true });
        await rename(join(stage, f), join(outDir, f));
      }
      await rm(stage, { recursive: true, force: true });
    }
    return { ...r, metricsPath: join(outDir, 'metrics.json'), csvPath: join(outDir, 'metrics.csv'), predDir };
  } catch (e) {
    await rm(stage, { recursive: true, force: true });
    throw e;
  }
}

interface FoldWork {
  runs: { dir: string }[];
  folds: number[];
  heldOut: DatasetCase[][];
  labelled: Map<string, DatasetCase>;
  outDir: string;
  o: CrossvalPredictOptions;
  log: (s: string) => void;
}

/** Predicts and scores every fold into `dir` (predictions/, metrics.{json,csv}); null when stopped. */
async function predictFolds(dir: string, w: FoldWork): Promise<Pick<CrossvalPredictResult, 'folds' | 'perFold' | 'meanDice' | 'cases'> | null> {
  const { runs, folds, heldOut, labelled, outDir, o, log } = w;
  let acc: MetricAccumulator | null = null;
  let classes: number[] = [];
  let names: string[] = [];
  const foldOf: Record<string, number> = {};
  const perFold: CrossvalPredictResult['perFold'] = [];
  const how = `${runs.length > 1 ? `the average of ${runs.map((r) => basename(r.dir)).join(' + ')}` : basename(runs[0]!.dir)}${o.tta ? ', mirroring TTA' : ''}`;
  for (const [i, k] of folds.entries()) {
    const members: LoadedModel[] = [];
    try {
      for (const r of runs) members.push(await loadModelFolder(join(r.dir, `fold_${k}`, 'model')));
      if (!acc) {
        const labels = members[0]!.manifest.labels;
        classes = Object.keys(labels)
          .map(Number)
          .filter((c) => c > 0)
          .sort((a, b) => a - b);
        names = classes.map((c) => labels[String(c)]!);
        acc = new MetricAccumulator({ classes, classNames: names, nsdTolerance: 1 });
      }
      let segment: Parameters<typeof predictAndScore>[1];
      if (members.length === 1) segment = (image) => predictVolume(members[0]!, image, { tta: o.tta });
      else {
        const manifest: EnsembleManifest = {
          format: ENSEMBLE_FORMAT,
          name: `fold ${k}`,
          labels: members[0]!.manifest.labels,
          members: runs.map((r) => ({ path: basename(r.dir) })),
        };
        checkMembers(manifest, members, `fold ${k}`);
        const ens = { manifest, members, dir: outDir };
        segment = (image) => predictEnsemble(ens, image, { tta: o.tta });
      }
      const before = acc.rows().length;
      const cases: DatasetCase[] = heldOut[i]!;
      const r = await predictAndScore(cases, segment, {
        predDir: join(dir, 'predictions'),
        description: `uxnet3d crossval-predict fold ${k}`,
        acc,
        signal: o.signal,
        onCase: (id, done) => o.onCase?.(k, id, done, cases.length),
      });
      if (r.stopped) {
        log(`stopped in fold ${k}; nothing written`);
        return null;
      }
      const rows = acc.rows().slice(before);
      for (const row of rows) foldOf[row.caseId] = k;
      const meanDice = rows.reduce((a, row) => a + meanDefined(row.classes.map((c) => c.dice)), 0) / rows.length;
      perFold.push({ fold: k, cases: rows.length, meanDice });
      log(`fold ${k}: mean Dice ${meanDice.toFixed(4)} over ${rows.length} held-out cases (${how})`);
    } finally {
      for (const m of members) m.model.dispose();
    }
  }
  // Cases in id order, as `uxnet evaluate` lists them, so the two write the same files for the same predictions.
  const sorted = new MetricAccumulator({ classes, classNames: names, nsdTolerance: 1 });
  for (const row of [...acc!.rows()].sort((x, y) => (x.caseId < y.caseId ? -1 : x.caseId > y.caseId ? 1 : 0))) sorted.addRow(row);
  acc = sorted;
  const rows = acc.rows();
  const meanDice = rows.reduce((a, row) => a + meanDefined(row.classes.map((c) => c.dice)), 0) / rows.length;
  // the labels' folder (labelsTr), and each file relative to it, as evaluate records them
  const gtDir = dirname(labelled.get(rows[0]!.caseId)!.label!);
  const files = Object.fromEntries(rows.map((row) => [row.caseId, { pred: `${row.caseId}.nii.gz`, gt: relative(gtDir, labelled.get(row.caseId)!.label!) }]));
  await writeFileAtomic(join(dir, 'metrics.csv'), enc(evaluationCsv(acc, names)));
  await writeFileAtomic(
    join(dir, 'metrics.json'),
    enc(
      evaluationJson(acc, {
        predDir: 'predictions', // paths relative to OUT, where this file lies
        gtDir: relative(outDir, gtDir),
        classes,
        classNames: names,
        nsdTolerance: 1,
        missingInPred: [],
        missingInGt: [],
        files,
        extra: {
          crossval: { runs: runs.map((r) => relative(outDir, r.dir)), folds, tta: !!o.tta, foldOf },
        },
      }),
    ),
  );
  log(`all ${folds.length} fold(s): mean Dice ${meanDice.toFixed(4)} over ${rows.length} held-out cases`);
  return { folds, perFold, meanDice, cases: rows.length };
}
