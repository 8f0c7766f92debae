import { z } from 'zod';
import { RandomStepSpecSchema, StepSpecSchema } from './step-schema.js';

/** Version of the preset format; files without a version field are version 1. */
export const PRESET_VERSION = 1;

const posInt = z.number().int().positive();

/** A preset file (presets/*.json, recipes' preset.json); a plan.json is a preset with more fields. */
export const PresetSchema = z.object({
  version: z.literal(PRESET_VERSION).optional(),
  name: z.string().min(1),
  description: z.string().optional(),
  modality: z.string().optional(),
  numClasses: posInt.optional(),
  roiSize: z.tuple([posInt, posInt, posInt]).default([96, 96, 96]),
  /** The deterministic chain (MONAI's val_transforms after loading). */
  val: z.array(StepSpecSchema).default([]),
  /** The random tail appended to `val` for training. */
  train: z.array(RandomStepSpecSchema).default([]),
  /** `auto`: the val chain is planned from the dataset fingerprint. */
  auto: z.boolean().optional(),
  planner: z.record(z.string(), z.unknown()).optional(),
});
export type Preset = z.output<typeof PresetSchema>;
