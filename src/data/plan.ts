import { columnNorms } from '../io/nifti/mat4.js';
import type { Dataset } from './dataset.js';
import { loadCase } from './dataset.js';
import { percentileSorted } from './transforms/intensity.js';
import type { StepSpec } from './pipeline.js';
import type { Preset } from './presets.js';
import { Rng } from '../engine/rng.js';
import type { Vec3 } from './volume.js';

export interface ModalityStats {
  name: string;
  mean: number;
  std: number;
  median: number;
  p00_5: number;
  p99_5: number;
  min: number;
  max: number;
}

/** What nnU-Net's planner looks at: voxel sizes, shapes, and foreground intensities per modality. */
export interface Fingerprint {
  cases: number;
  spacings: Vec3[];
  shapes: Vec3[];
  medianSpacing: Vec3;
  medianShape: Vec3;
  modalities: ModalityStats[];
  labelValues: number[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return percentileSorted(s, 50);
}

/** Reads every training case once (foreground voxels sampled per case with a fixed seed). */
export async function fingerprintDataset(ds: Dataset, opts: { samplesPerCase?: number; onCase?: (id: string) => void } = {}): Promise<Fingerprint> {
  const train = ds.cases.filter((c) => c.split === 'train' && c.label);
  if (train.length === 0) throw new Error('the dataset has no labelled training cases to fingerprint');
  const per = opts.samplesPerCase ?? 10000;
  const rng = new Rng(1234);
  const spacings: Vec3[] = [],
    shapes: Vec3[] = [];
  const samples: number[][] = ds.modalities.map(() => []);
  const labelValues = new Set<number>();
  for (const c of train) {
    const { image, label } = await loadCase(c);
    spacings.push(columnNorms(image.affine));
    shapes.push(image.shape);
    const n = image.shape[0] * image.shape[1] * image.shape[2];
    const fg: number[] = [];
    for (let i = 0; i < n; i++) {
      const l = label!.data[i]!;
      labelValues.add(l);
      if (l !== 0) fg.push(i);
    }
    for (let ch = 0; ch < image.channels; ch++) {
      for (let s = 0; s < Math.min(per, fg.length); s++) (samples[ch] ??= []).push(image.data[ch * n + fg[rng.int(fg.length)]!]!);
    }
    opts.onCase?.(c.id);
  }
  const modalities = samples.map((vals, ch) => {
    const sorted = Float64Array.from(vals).sort();
    const mean = vals.reduce((a, b) => a + b, 0) / Math.max(1, vals.length);
    const std = Math.sqrt(vals.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, vals.length));
    return {
      name: ds.modalities[ch] ?? 'unknown',
      mean,
      std,
      median: percentileSorted(sorted, 50),
      p00_5: percentileSorted(sorted, 0.5),
      p99_5: percentileSorted(sorted, 99.5),
      min: sorted[0] ?? NaN,
      max: sorted.at(-1) ?? NaN,
    };
  });
  return {
    cases: train.length,
    spacings,
    shapes,
    medianSpacing: [0, 1, 2].map((k) => median(spacings.map((s) => s[k]!))) as Vec3,
    medianShape: [0, 1, 2].map((k) => median(shapes.map((s) => s[k]!))) as Vec3,
    modalities,
    labelValues: [...labelValues].sort((a, b) => a - b),
  };
}

/**
 * nnU-Net's choices from a fingerprint: target spacing = median spacing, except that on a very
 * anisotropic dataset the coarse axis takes the 10th percentile of its spacings; CT is clipped to
 * the foreground 0.5..99.5 percentiles and z-scored with the dataset's foreground statistics, any
 * other modality is z-scored per image.
 */
export function planFromFingerprint(fp: Fingerprint, auto: Preset): Preset & { fingerprint: Fingerprint } {
  const cfg = (auto.planner ?? {}) as { anisotropyThreshold?: number; lowResPercentile?: number; skipResamplingTolerance?: number };
  const target = [...fp.medianSpacing] as Vec3;
  const worst = target.indexOf(Math.max(...target));
  const others = target.filter((_, k) => k !== worst);
  if (target[worst]! > (cfg.anisotropyThreshold ?? 3) * Math.max(...others)) {
    const sorted = Float64Array.from(fp.spacings.map((s) => s[worst]!)).sort();
    target[worst] = Math.max(percentileSorted(sorted, cfg.lowResPercentile ?? 10), Math.max(...others));
  }
  const tol = cfg.skipResamplingTolerance ?? 1e-3;
  const allAtTarget = fp.spacings.every((s) => s.every((x, k) => Math.abs(x - target[k]!) <= tol));
  const steps: StepSpec[] = [];
  if (!allAtTarget) steps.push({ op: 'spacing', pixdim: target });
  steps.push({ op: 'orientation', axcodes: 'RAS' });
  const allCT = fp.modalities.length > 0 && fp.modalities.every((m) => m.name.toUpperCase() === 'CT');
  if (allCT && fp.modalities.length === 1) {
    const m = fp.modalities[0]!;
    steps.push({ op: 'zScore', clipMin: m.p00_5, clipMax: m.p99_5, mean: m.mean, std: m.std });
  } else {
    steps.push({ op: 'zScore' });
  }
  const numClasses = Math.max(2, (fp.labelValues.at(-1) ?? 1) + 1);
  // Patch: the preset's ROI, shrunk per axis to the smallest multiple of 16 that still covers the
  // largest resampled case (small datasets like MSD Hippocampus then train on whole volumes, 4x cheaper
  // than 96³). Axis order is the stored one, so this assumes storage close to RAS.
  const extent = [0, 1, 2].map((k) => Math.max(...fp.shapes.map((sh, i) => Math.ceil((sh[k]! * fp.spacings[i]![k]!) / target[k]! - 1e-6))));
  const roiSize = auto.roiSize.map((r, k) => Math.max(16, Math.min(r, Math.ceil(extent[k]! / 16) * 16))) as Vec3;
  return { ...auto, name: 'auto-plan', auto: false, roiSize, val: steps, numClasses, modality: fp.modalities.map((m) => m.name).join('+'), fingerprint: fp };
}
