import { z } from 'zod';
import { parseWithSchema } from '../io/schema.js';

/**
 * Learning-rate schedules as pure functions of the step, so a resumed run gets exactly the rate an
 * uninterrupted one would have had. `constant` is the official recipe (AdamW at a fixed 1e-4).
 */
export const ScheduleSchema = z.strictObject({
  type: z.enum(['constant', 'poly', 'cosine']),
  /** Linear warm-up from 0 over this many steps (default 0). */
  warmupSteps: z.number().int().min(0).optional(),
  /** Exponent of the poly decay (nnU-Net uses 0.9). */
  power: z.number().positive().optional(),
  /** Floor of the decayed rate as a fraction of the base rate (default 0). */
  minFactor: z.number().min(0).max(1).optional(),
});
export type ScheduleConfig = z.output<typeof ScheduleSchema>;

export function validateSchedule(s: unknown): ScheduleConfig {
  return parseWithSchema(ScheduleSchema, s, 'schedule');
}

/** The learning rate for 0-based `step` of `totalSteps`. */
export function learningRate(baseLr: number, step: number, totalSteps: number, s: ScheduleConfig): number {
  const warm = s.warmupSteps ?? 0;
  if (step < warm) return (baseLr * (step + 1)) / warm;
  if (s.type === 'constant') return baseLr;
  const span = Math.max(1, totalSteps - warm);
  const t = Math.min(1, (step - warm) / span);
  const floor = s.minFactor ?? 0;
  const f = s.type === 'poly' ? (1 - t) ** (s.power ?? 0.9) : 0.5 * (1 + Math.cos(Math.PI * t));
  return baseLr * (floor + (1 - floor) * f);
}
