/**
 * Predicting and scoring held-out cases, one at a time, as crossval does after training a fold and as
 * `uxnet crossval-predict` does with finished folds' models: each prediction is written as a label
 * map, then scored against the case's label with the label's own voxel spacing.
 */
import { join } from 'node:path';
import { loadCase, type Case as DatasetCase } from '../data/dataset.js';
import { loadVolume } from '../data/load.js';
import { saveVolume } from '../data/save.js';
import type { Volume } from '../data/volume.js';
import type { Prediction } from '../infer/predict.js';
import { fixGeometry } from '../io/nifti/index.js';
import type { MetricAccumulator } from '../metrics/accumulator.js';
import type { Spacing3 } from '../metrics/edt.js';

export interface HeldOutOptions {
  /** where PREDDIR/<case>.nii.gz go */
  predDir: string;
  /** the NIfTI description of the written label maps */
  description: string;
  acc: MetricAccumulator;
  /** checked before each case: a stop leaves the cases done so far */
  signal?: AbortSignal;
  onCase?: (caseId: string, done: number) => void;
}

/** Seconds per case (prediction only), and whether a stop came before every case was done. */
export async function predictAndScore(
  cases: DatasetCase[],
  segment: (image: Volume<Float32Array>) => Promise<Prediction>,
  o: HeldOutOptions,
): Promise<{ seconds: Record<string, number>; stopped: boolean }> {
  const seconds: Record<string, number> = {};
  for (const [i, c] of cases.entries()) {
    if (o.signal?.aborted) return { seconds, stopped: true };
    o.onCase?.(c.id, i);
    const sample = await loadCase({ ...c, label: undefined });
    const t0 = performance.now();
    const pred = await segment(sample.image);
    seconds[c.id] = (performance.now() - t0) / 1000;
    await saveVolume(join(o.predDir, `${c.id}.nii.gz`), pred.labels, { label: true, description: o.description });
    const gt = await loadVolume(c.label!, 'label');
    const px = fixGeometry(gt.header!).pixdim;
    const spacing: Spacing3 = [px[1]!, px[2]!, px[3]!];
    if (gt.shape.join('x') !== pred.labels.shape.join('x')) throw new Error(`case '${c.id}': prediction ${pred.labels.shape.join('x')} and label ${gt.shape.join('x')} differ`);
    o.acc.add(c.id, pred.labels.data, gt.data, gt.shape, spacing);
  }
  o.onCase?.('', cases.length);
  return { seconds, stopped: false };
}
