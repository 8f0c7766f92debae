import { orientation } from './transforms/orientation.js';
import { spacing } from './transforms/spacing.js';
import { clipPercentiles, scaleIntensityRange, zScore } from './transforms/intensity.js';
import { cropForeground, spatialPad } from './transforms/croppad.js';
import { z } from 'zod';
import { parseWithSchema } from '../io/schema.js';
import { StepSpecSchema, type StepSpec } from './step-schema.js';
import type { Vec3, Volume, VoxelData } from './volume.js';

export type { StepSpec };

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

/** Validates a deterministic chain; errors read "WHERE: [i].field: expected ..., got ...". */
export function validateSteps(steps: unknown, where: string): StepSpec[] {
  return parseWithSchema(z.array(StepSpecSchema), steps, where);
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
