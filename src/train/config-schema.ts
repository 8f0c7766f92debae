import { z } from 'zod';
import { normalizeUXNetConfig, type UXNetConfigInput } from '../models/config.js';
import { ScheduleSchema } from './schedule.js';

/** Version of the training config format; files without a version field are version 1. */
export const TRAIN_CONFIG_VERSION = 1;

const posInt = z.number().int().positive();

/** UXNet constructor options; inChans/outChans come from the data later, so the rest is checked now. */
const NetworkInputSchema = z
  .custom<UXNetConfigInput>((v) => typeof v === 'object' && v !== null && !Array.isArray(v), { message: 'expected an object of UX-Net options' })
  .superRefine((v, ctx) => {
    try {
      normalizeUXNetConfig({ inChans: 1, outChans: 2, ...v });
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message });
    }
  });

/**
 * Everything a training run needs, as one JSON object (a file given with --config; any field can be
 * overridden by a flag). Defaults (TRAIN_DEFAULTS) are the official 3D UX-Net recipe where it has one.
 */
export const TrainConfigSchema = z.object({
  version: z.literal(TRAIN_CONFIG_VERSION).optional(),
  dataset: z.string().min(1),
  /** Name of the trained model (default: the dataset folder's name). */
  name: z.string().optional(),
  /** Built-in preset name (flare, amos, feta, auto) or a preset / plan.json path. */
  preset: z.string().min(1),
  outDir: z.string().min(1),
  /**
   * The network: a registry name ("uxnet" | "swin_unetr" | "unetr" | ...) with its constructor arguments
   * in `networkArgs`, or (the older form) an object of UX-Net options. Channel and class counts default
   * to the dataset's; SwinUNETR's and UNETR's img_size defaults to roiSize.
   */
  network: z.union([z.string(), NetworkInputSchema]),
  /** Constructor arguments of a named network (official snake_case or camelCase). */
  networkArgs: z.record(z.string(), z.unknown()).optional(),
  /** Training crop and sliding-window ROI; default: the preset's roiSize. What fits is the network's to say. */
  roiSize: z.tuple([posInt, posInt, posInt]).optional(),
  /** Random crops per volume per step (official: 2, i.e. batch 2). */
  cropsPerVolume: posInt,
  /**
   * Volumes per step, each giving cropsPerVolume crops (batch = volumesPerStep x cropsPerVolume; default
   * 1, the official batch of one case). Where the crop covers most of a volume, the crops of one case
   * nearly coincide, so 2 volumes x 1 crop is a more varied batch at the same cost.
   */
  volumesPerStep: posInt.optional(),
  /**
   * Deep supervision (nnU-Net's): this many decoder levels below full resolution (1/2, 1/4, ...) each get a
   * training-only 1x1x1 head, and their DiceCE against the label downsampled to them is added to the loss with
   * nnU-Net's weights (1/2^level, normalised). The model folder holds the network alone. Default 0 (off, official).
   */
  deepSupervision: z.number().int().min(0).optional(),
  steps: posInt,
  lr: z.number().positive(),
  weightDecay: z.number().min(0),
  schedule: ScheduleSchema,
  valEvery: posInt,
  saveEvery: posInt,
  valOverlap: z.number().min(0).lt(1),
  valMode: z.enum(['gaussian', 'constant']),
  seed: z.number().int().min(0),
  workers: posInt,
  /** Weights to start from (fine-tuning): matching tensors load, a differently sized out block is reinitialised. */
  init: z.string().optional(),
  /** A split file (./split-file.ts); default: the dataset's own val split, else a seeded 20% hold-out. */
  split: z.string().optional(),
  cacheDir: z.string().optional(),
  backend: z.string().optional(),
  /** Where the trained model folder goes (default OUTDIR/model). */
  modelDir: z.string().optional(),
  /** Weight precision of the exported model folder: F16 halves its size (checkpoints stay F32; a tensor outside F16's range, e.g. a BatchNorm running variance, stays F32). */
  modelDtype: z.enum(['F32', 'F16']).optional(),
});
export type TrainConfig = z.output<typeof TrainConfigSchema>;

/** A config file alone: every field optional (flags and defaults fill the rest). */
export const TrainConfigFileSchema = TrainConfigSchema.partial();
