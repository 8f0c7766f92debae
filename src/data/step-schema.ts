import { z } from 'zod';

/**
 * The schemas of preprocessing steps as presets, plans and model.json write them: the deterministic
 * steps (`val`, model.json's `preprocessing.steps`) and the random training tail (`train`). Types are
 * inferred from them; presets.ts, pipeline.ts and the random transforms all take them from here, so
 * none of them needs another.
 */
const num = z.number();
const positive = z.number().positive();
const posInt = z.number().int().positive();
const prob = z.number().min(0).max(1);
const axis = z.number().int().min(0).max(2);
const vec3 = z.tuple([num, num, num]);

export const StepSpecSchema = z.discriminatedUnion('op', [
  z.strictObject({ op: z.literal('spacing'), pixdim: z.tuple([positive, positive, positive]) }),
  z.strictObject({ op: z.literal('orientation'), axcodes: z.string().regex(/^[LRAPSI]{3}$/i, 'expected three axis codes such as "RAS"') }),
  z
    .strictObject({ op: z.literal('scaleIntensityRange'), aMin: num, aMax: num, bMin: num.optional(), bMax: num.optional(), clip: z.boolean().optional() })
    .refine((s) => s.aMin !== s.aMax, { message: 'aMax must differ from aMin', path: ['aMax'] }),
  // Key order is the order the planner writes (parsing rebuilds objects in schema order, and the cache
  // key hashes the chain's JSON): keep it so caches planned before the schemas stay valid.
  z.strictObject({ op: z.literal('zScore'), clipMin: num.optional(), clipMax: num.optional(), mean: num.optional(), std: positive.optional(), nonzero: z.boolean().optional() }),
  z.strictObject({ op: z.literal('clipPercentiles'), lower: z.number().min(0).max(100), upper: z.number().min(0).max(100), nonzero: z.boolean().optional() }),
  z.strictObject({ op: z.literal('cropForeground'), threshold: num.optional() }),
  z.strictObject({ op: z.literal('spatialPad'), size: z.array(z.number().int()), method: z.enum(['symmetric', 'end']).optional() }),
]);
/** One deterministic step of a preset, as written in presets/*.json. */
export type StepSpec = z.output<typeof StepSpecSchema>;

/** MONAI RandAdjustContrast's gamma range: a number g > 0.5 means (0.5, g); a pair is sorted. */
export function gammaRange(gamma: number | readonly number[]): [number, number] {
  if (typeof gamma === 'number') {
    if (!(gamma > 0.5)) throw new Error(`randGamma: a single gamma must be greater than 0.5 (the range is (0.5, gamma)), got ${gamma}`);
    return [0.5, gamma];
  }
  if (!Array.isArray(gamma) || gamma.length !== 2 || !gamma.every((g) => typeof g === 'number' && Number.isFinite(g))) {
    throw new Error(`randGamma: gamma must be a number or a pair of numbers, got ${JSON.stringify(gamma)}`);
  }
  return [Math.min(gamma[0]!, gamma[1]!), Math.max(gamma[0]!, gamma[1]!)];
}

export const RandomStepSpecSchema = z.discriminatedUnion('op', [
  z.strictObject({
    op: z.literal('randCropByPosNegLabel'),
    spatialSize: z.tuple([posInt, posInt, posInt]),
    pos: z.number().min(0),
    neg: z.number().min(0),
    numSamples: posInt,
    imageThreshold: num,
    allowSmaller: z.boolean().optional(),
  }),
  z.strictObject({ op: z.literal('randShiftIntensity'), offsets: num, prob }),
  // MONAI RandScaleIntensityd: x * (1 + factor), factor ~ U(-f, f) for a number f, U(lo, hi) for a pair.
  z.strictObject({ op: z.literal('randScaleIntensity'), factors: z.union([num, z.tuple([num, num])]), prob }),
  // MONAI RandGaussianNoised: x + N(mean, sigma²) per voxel, sigma ~ U(0, std) per application.
  z.strictObject({ op: z.literal('randGaussianNoise'), prob, mean: num.optional(), std: z.number().min(0) }),
  z.strictObject({ op: z.literal('randAffine'), prob, rotateRange: vec3, scaleRange: vec3 }),
  z.strictObject({ op: z.literal('randFlip'), prob, axes: z.array(axis).optional() }),
  z.strictObject({ op: z.literal('randRotate90'), prob, maxK: posInt.optional(), axes: z.tuple([axis, axis]).optional() }),
  z.strictObject({ op: z.literal('randGamma'), prob, gamma: z.union([num, z.tuple([num, num])]) }).superRefine((s, ctx) => {
    try {
      gammaRange(s.gamma);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message.replace(/^randGamma: /, ''), path: ['gamma'] });
    }
  }),
]);
/** A random step of a training tail (see transforms/random.ts for the semantics of each). */
export type RandomStepSpec = z.output<typeof RandomStepSpecSchema>;
