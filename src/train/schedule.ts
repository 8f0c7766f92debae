/**
 * Learning-rate schedules as pure functions of the step, so a resumed run gets exactly the rate an
 * uninterrupted one would have had. `constant` is the official recipe (AdamW at a fixed 1e-4).
 */
export interface ScheduleConfig {
  type: 'constant' | 'poly' | 'cosine';
  /** Linear warm-up from 0 over this many steps (default 0). */
  warmupSteps?: number;
  /** Exponent of the poly decay (nnU-Net uses 0.9). */
  power?: number;
  /** Floor of the decayed rate as a fraction of the base rate (default 0). */
  minFactor?: number;
}

export function validateSchedule(s: ScheduleConfig): ScheduleConfig {
  if (!['constant', 'poly', 'cosine'].includes(s.type)) throw new Error(`schedule.type must be constant, poly or cosine, got '${s.type}'`);
  const w = s.warmupSteps ?? 0;
  if (!Number.isInteger(w) || w < 0) throw new Error(`schedule.warmupSteps must be a non-negative integer, got ${w}`);
  const m = s.minFactor ?? 0;
  if (!(m >= 0 && m <= 1)) throw new Error(`schedule.minFactor must be in [0, 1], got ${m}`);
  if (s.power !== undefined && !(s.power > 0)) throw new Error(`schedule.power must be positive, got ${s.power}`);
  return s;
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
