import { z } from 'zod';
import { parseWithSchema } from '../io/schema.js';
import { PresetSchema } from './preset-schema.js';
import type { AppliedOp } from './volume.js';

/** Version of plan.json (a preset plus what preprocessing found); files without one are version 1. */
export const PLAN_VERSION = 1;

const posInt = z.number().int().positive();
const int3 = z.tuple([z.number().int(), z.number().int(), z.number().int()]);

/** One preprocessed case of the on-disk cache (its meta file, and an entry of plan.json's `cache`). */
export const CacheEntrySchema = z.object({
  id: z.string().min(1),
  split: z.string(),
  shape: z.tuple([posInt, posInt, posInt]),
  channels: posInt,
  image: z.string().min(1),
  label: z.string().optional(),
  foreground: z.object({ start: int3, end: int3 }).optional(),
  // Replayed by invert(); written by the transforms themselves, so only their kind is checked here.
  ops: z.array(
    z.custom<AppliedOp>((v) => typeof v === 'object' && v !== null && typeof (v as { kind?: unknown }).kind === 'string', { message: 'expected a recorded step {kind, ...}' }),
  ),
});

export const PlanSchema = PresetSchema.extend({
  version: z.literal(PLAN_VERSION).optional(),
  fingerprint: z.record(z.string(), z.unknown()).optional(),
  dataset: z
    .object({
      root: z.string().optional(),
      layout: z.string().optional(),
      modalities: z.array(z.string()).optional(),
      labels: z.record(z.string(), z.string()).nullable().optional(),
      cases: z.number().int().min(0).optional(),
    })
    .optional(),
  chainHash: z.string().optional(),
  cache: z.array(CacheEntrySchema),
});
/** plan.json as preprocessing writes it and training reads it. */
export type Plan = z.output<typeof PlanSchema>;

export function parsePlan(json: unknown, where: string, makeError?: (message: string) => Error): Plan {
  return parseWithSchema(PlanSchema, json, where, makeError);
}
