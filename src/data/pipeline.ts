import { orientation } from './transforms/orientation.js';
import { spacing } from './transforms/spacing.js';
import { clipPercentiles, scaleIntensityRange, zScore, type ScaleRangeOptions, type ZScoreOptions } from './transforms/intensity.js';
import { cropForeground, spatialPad, type PadMethod } from './transforms/croppad.js';
import type { Vec3, Volume, VoxelData } from './volume.js';
import { InputError } from '../engine/errors.js';

/** One deterministic step of a preset, as written in presets/*.json. */
export type StepSpec =
  | { op: 'spacing'; pixdim: Vec3 }
  | { op: 'orientation'; axcodes: string }
  | ({ op: 'scaleIntensityRange' } & ScaleRangeOptions)
  | ({ op: 'zScore' } & ZScoreOptions)
  | { op: 'clipPercentiles'; lower: number; upper: number; nonzero?: boolean }
  | { op: 'cropForeground'; threshold?: number }
  | { op: 'spatialPad'; size: number[]; method?: PadMethod };

/** An image with its (optional) label map; both go through the same spatial steps. */
export interface Sample {
  image: Volume<Float32Array>;
  label?: Volume<VoxelData>;
  /** Set by cropForeground: the box in the grid just before the crop (MONAI's foreground_*_coord). */
  foreground?: { start: Vec3; end: Vec3 };
}

/** What a step did, for meta.json and the preprocessing plan. */
export interface StepRecord {
  op: string;
  imageShape: Vec3;
  labelShape?: Vec3;
  detail?: Record<string, unknown>;
}

const STEP_OPS = new Set(['spacing', 'orientation', 'scaleIntensityRange', 'zScore', 'clipPercentiles', 'cropForeground', 'spatialPad']);

export function validateSteps(steps: unknown, where: string): StepSpec[] {
  if (!Array.isArray(steps)) throw new InputError(`${where}: steps must be an array`);
  steps.forEach((s, i) => {
    if (!s || typeof s !== 'object' || !STEP_OPS.has((s as { op?: string }).op ?? '')) {
      throw new InputError(`${where}: step ${i} has unknown op ${JSON.stringify((s as { op?: string })?.op)} (known: ${[...STEP_OPS].join(', ')})`);
    }
    const spec = s as StepSpec;
    if (spec.op === 'spacing' && !(Array.isArray(spec.pixdim) && spec.pixdim.length === 3 && spec.pixdim.every((p) => typeof p === 'number' && p > 0))) {
      throw new InputError(`${where}: step ${i} (spacing) needs pixdim: three positive numbers`);
    }
    if (spec.op === 'scaleIntensityRange' && !(typeof spec.aMin === 'number' && typeof spec.aMax === 'number' && spec.aMin !== spec.aMax)) {
      throw new InputError(`${where}: step ${i} (scaleIntensityRange) needs numbers aMin != aMax`);
    }
  });
  return steps as StepSpec[];
}

/** Applies one deterministic step to image and label, with MONAI's per-key modes. */
export function applyStep(s: Sample, step: StepSpec): { sample: Sample; detail?: Record<string, unknown> } {
  switch (step.op) {
    case 'spacing':
      return {
        sample: {
          ...s,
          image: spacing(s.image, step.pixdim, 'bilinear') as Volume<Float32Array>,
          label: s.label && spacing(s.label, step.pixdim, 'nearest'),
        },
      };
    case 'orientation':
      return { sample: { ...s, image: orientation(s.image, step.axcodes), label: s.label && orientation(s.label, step.axcodes) } };
    case 'scaleIntensityRange':
      return { sample: { ...s, image: scaleIntensityRange(s.image, step) } };
    case 'zScore':
      return { sample: { ...s, image: zScore(s.image, step) } };
    case 'clipPercentiles':
      return { sample: { ...s, image: clipPercentiles(s.image, step.lower, step.upper, step.nonzero) } };
    case 'cropForeground': {
      const { box, out } = cropForeground(s.image, [s.image as Volume<VoxelData>, ...(s.label ? [s.label] : [])], step.threshold ?? 0);
      return {
        sample: { ...s, image: out[0] as Volume<Float32Array>, label: s.label && out[1], foreground: box },
        detail: { box_start: box.start, box_end: box.end },
      };
    }
    case 'spatialPad':
      return { sample: { ...s, image: spatialPad(s.image, step.size, step.method), label: s.label && spatialPad(s.label, step.size, step.method) } };
  }
}

/** Runs a deterministic chain, recording every step's output shape (and crop box). */
export function runSteps(sample: Sample, steps: readonly StepSpec[]): { sample: Sample; records: StepRecord[] } {
  let s = sample;
  const records: StepRecord[] = [];
  for (const step of steps) {
    const r = applyStep(s, step);
    s = r.sample;
    records.push({ op: step.op, imageShape: s.image.shape, ...(s.label ? { labelShape: s.label.shape } : {}), ...(r.detail ? { detail: r.detail } : {}) });
  }
  return { sample: s, records };
}
