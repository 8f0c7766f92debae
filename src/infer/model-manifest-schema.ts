import { z } from 'zod';
import { normalizeUXNetConfig, type UXNetConfig } from '../models/config.js';
import { StepSpecSchema } from '../data/step-schema.js';

export const MODEL_FORMAT = 'uxnet3d-model/1';
/** Version of model.json; folders written before the field existed (no version) are version 1. */
export const MODEL_VERSION = 1;

const posInt = z.number().int().positive();
const roiDim = posInt.refine((d) => d % 16 === 0, { message: 'expected a positive multiple of 16' });
const axis = z.number().int().min(0).max(2);

/** The network section: the UX-Net constructor options, camelCase or the official snake_case. */
const NetworkSchema = z.unknown().transform((v, ctx): UXNetConfig => {
  try {
    return normalizeUXNetConfig(v as Parameters<typeof normalizeUXNetConfig>[0]);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message, input: v });
    return z.NEVER;
  }
});

export const ModelManifestSchema = z.object({
  format: z.literal(MODEL_FORMAT),
  version: z.literal(MODEL_VERSION).optional(),
  name: z.string(),
  description: z.string().optional(),
  network: NetworkSchema,
  preprocessing: z.object({
    /** The deterministic chain applied to every input (the plan's validation chain). */
    steps: z.array(StepSpecSchema).default([]),
    /** Spacing used by `--fast` (coarser, e.g. 2x the plan's); absent = not offered. */
    fastPixdim: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]).optional(),
  }).default({ steps: [] }),
  inference: z.object({
    roiSize: z.tuple([roiDim, roiDim, roiDim]),
    overlap: z.number().min(0).lt(1),
    mode: z.enum(['gaussian', 'constant']),
    swBatchSize: posInt,
    /**
     * Axes the model was trained to be mirror-invariant along (its flip augmentation); `--tta` only
     * averages mirrorings along these. Mirroring along an axis never flipped in training gives
     * out-of-distribution inputs (and for left/right-specific labels, wrong ones). Default: none.
     */
    mirrorAxes: z.array(axis).optional(),
  }),
  /** Class index -> name, background included. */
  labels: z.record(z.string(), z.string()).default({}),
  /** Free-form provenance: training config, steps, validation metrics. */
  training: z.record(z.string(), z.unknown()).optional(),
}).superRefine((m, ctx) => {
  const n = Object.keys(m.labels).length;
  if (n !== m.network.outChans) ctx.addIssue({ code: 'custom', path: ['labels'], message: `names ${n} classes but the network has ${m.network.outChans} outputs` });
});

/** A model folder's model.json (the type is the schema's). */
export type ModelManifest = z.output<typeof ModelManifestSchema>;
