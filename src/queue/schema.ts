import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { JobPayloadError } from './errors.js';

/**
 * Job payloads as stored in Redis. A worker validates every payload before touching the file system:
 * Redis may be shared, and a job written by another program (or an older version) must fail with a
 * reason instead of doing something half-understood.
 */

const absPath = z
  .string()
  .min(1)
  .refine((p) => isAbsolute(p), { message: 'must be an absolute path' })
  .refine((p) => !p.includes('\0'), { message: 'must not contain NUL' });

export const PredictOptionsSchema = z
  .object({
    /** Unset: the model's default (model.json inference.tta). */
    tta: z.boolean().optional(),
    fast: z.boolean(),
    overlap: z.number().min(0).lt(1).optional(),
    mode: z.enum(['gaussian', 'constant']).optional(),
    swBatch: z.number().int().positive().optional(),
  })
  .strict();

export const PredictJobSchema = z
  .object({
    kind: z.literal('predict'),
    /** Case name, for progress and failure reports. */
    case: z.string().min(1),
    input: absPath,
    output: absPath.refine((p) => /\.nii(\.gz)?$/i.test(p), { message: 'must end in .nii or .nii.gz' }),
    model: absPath,
    /** sha256 of the model folder's model.json and weights at submission: a worker refuses a changed model. */
    modelDigest: z.string().regex(/^[0-9a-f]{64}$/),
    options: PredictOptionsSchema,
  })
  .strict();

/** Paths inside a training config that are read or written (checked against --root by the worker). */
export const TRAIN_READ_PATHS = ['dataset', 'split', 'init'] as const;
export const TRAIN_WRITE_PATHS = ['outDir', 'cacheDir', 'modelDir'] as const;

/** A resolved TrainConfig (src/train/config.ts validates the rest of its fields). */
const TrainConfigPayload = z
  .object({
    dataset: absPath,
    outDir: absPath,
    preset: z.string().min(1),
    split: absPath.optional(),
    init: absPath.optional(),
    cacheDir: absPath.optional(),
    modelDir: absPath.optional(),
  })
  .passthrough();

export const TrainJobSchema = z
  .object({
    kind: z.literal('train'),
    config: TrainConfigPayload,
  })
  .strict();

/**
 * What fold jobs and the summary job of one queued crossval share: the recipe (outDir = the crossval
 * run folder, whose crossval.json and splits.json were written at submission) and the fold count.
 */
const crossvalFields = {
  config: TrainConfigPayload.refine((c) => c.split === undefined && c.modelDir === undefined, {
    message: 'a crossval recipe sets split and modelDir per fold; it must not name them',
  }),
  folds: z.number().int().min(2),
  tta: z.boolean(),
  /** Train again the finished folds whose model has no weights (`uxnet crossval --remake-weights`); only `true` is sent. */
  remakeWeights: z.literal(true).optional(),
};

/** One fold: train (or continue from its checkpoint), predict and score its held-out cases. */
export const CrossvalFoldJobSchema = z
  .object({ kind: z.literal('crossval-fold'), ...crossvalFields, fold: z.number().int().min(0) })
  .strict()
  .refine((d) => d.fold < d.folds, { message: 'fold must be below folds', path: ['fold'] });

/** The parent of a crossval's fold jobs: runs once they have all completed; writes summary and ensemble. */
export const CrossvalSummaryJobSchema = z
  .object({ kind: z.literal('crossval-summary'), ...crossvalFields, run: z.array(z.number().int().min(0)).min(1) })
  .strict()
  .refine((d) => d.run.every((k) => k < d.folds), { message: 'fold numbers must be below folds', path: ['run'] });

export type PredictJobData = z.infer<typeof PredictJobSchema>;
export type PredictJobOptions = z.infer<typeof PredictOptionsSchema>;
export type TrainJobData = z.infer<typeof TrainJobSchema>;
export type CrossvalFoldJobData = z.infer<typeof CrossvalFoldJobSchema>;
export type CrossvalSummaryJobData = z.infer<typeof CrossvalSummaryJobSchema>;
export type CrossvalJobData = CrossvalFoldJobData | CrossvalSummaryJobData;
/** What the train queue carries: single training runs and the jobs of queued crossvals. */
export type TrainQueueJobData = TrainJobData | CrossvalJobData;
export type JobData = PredictJobData | TrainQueueJobData;

function check<T>(schema: z.ZodType<T>, data: unknown, what: string): T {
  const r = schema.safeParse(data);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(payload)'}: ${i.message}`).join('; ');
  throw new JobPayloadError(`invalid ${what} job payload: ${issues}`);
}

export const validatePredictJob = (data: unknown): PredictJobData => check(PredictJobSchema, data, 'predict');
export const validateTrainJob = (data: unknown): TrainJobData => check(TrainJobSchema, data, 'train');
export const validateCrossvalFoldJob = (data: unknown): CrossvalFoldJobData => check(CrossvalFoldJobSchema, data, 'crossval fold');
export const validateCrossvalSummaryJob = (data: unknown): CrossvalSummaryJobData => check(CrossvalSummaryJobSchema, data, 'crossval summary');

/** The train queue's payload, by its kind; an unknown kind fails like a malformed payload. */
export function validateTrainQueueJob(data: unknown): TrainQueueJobData {
  const kind = (data as { kind?: unknown } | null)?.kind;
  if (kind === 'crossval-fold') return validateCrossvalFoldJob(data);
  if (kind === 'crossval-summary') return validateCrossvalSummaryJob(data);
  return validateTrainJob(data);
}

/** A preset given as a file (not a built-in name) is a path the worker reads. */
export function presetIsPath(preset: string): boolean {
  return preset.includes('/') || /\.json$/i.test(preset);
}
