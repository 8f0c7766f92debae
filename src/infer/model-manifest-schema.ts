import { z } from 'zod';
import { CHANNEL_KEYS, createNetwork, resolveNetwork, type NetworkSpec } from '../models/registry.js';
import { StepSpecSchema } from '../data/step-schema.js';

export const MODEL_FORMAT = 'uxnet3d-model/1';
/** Version of model.json; folders written before the field existed (no version) are version 1. */
export const MODEL_VERSION = 1;

const posInt = z.number().int().positive();
const axis = z.number().int().min(0).max(2);

/**
 * The network section: a registry name ("uxnet" | "swin_unetr" | "unetr" | ...) with its constructor
 * arguments in `networkArgs`, or (older folders, still written for UX-Net) an object of UX-Net options,
 * camelCase or the official snake_case. Resolved against the registry after parsing (see below).
 */
const NetworkSchema = z.union([z.string(), z.record(z.string(), z.unknown())]);

/** Input channels and classes of a network spec, whichever its spelling. */
export function specChannels(spec: NetworkSpec): { inChannels: number; outChannels: number } {
  const a = spec.args;
  const [inKey, , outKey] = CHANNEL_KEYS[spec.network];
  return { inChannels: a[inKey] as number, outChannels: a[outKey] as number };
}

export const ModelManifestSchema = z
  .object({
    format: z.literal(MODEL_FORMAT),
    version: z.literal(MODEL_VERSION).optional(),
    name: z.string(),
    description: z.string().optional(),
    network: NetworkSchema,
    /** Constructor arguments (official snake_case or camelCase) when `network` is a name. */
    networkArgs: z.record(z.string(), z.unknown()).optional(),
    preprocessing: z
      .object({
        /** The deterministic chain applied to every input (the plan's validation chain). */
        steps: z.array(StepSpecSchema).default([]),
        /** Spacing used by `--fast` (coarser, e.g. 2x the plan's); absent = not offered. */
        fastPixdim: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]).optional(),
      })
      .default({ steps: [] }),
    inference: z.object({
      // What sizes fit is the network's to say (UX-Net: multiples of 16, SwinUNETR: of 32, UNETR: img_size).
      roiSize: z.tuple([posInt, posInt, posInt]),
      overlap: z.number().min(0).lt(1),
      mode: z.enum(['gaussian', 'constant']),
      swBatchSize: posInt,
      /**
       * Axes the model was trained to be mirror-invariant along (its flip augmentation); `--tta` only
       * averages mirrorings along these. Mirroring along an axis never flipped in training gives
       * out-of-distribution inputs (and for left/right-specific labels, wrong ones). Default: none.
       */
      mirrorAxes: z.array(axis).optional(),
      /**
       * Mirroring test-time augmentation unless the caller says otherwise (`--tta` / `--no-tta`), as
       * nnU-Net predicts by default: the model's author decides whether its accuracy is worth the
       * slower inference (2^mirrorAxes passes). Needs mirrorAxes. Default: off.
       */
      tta: z.boolean().optional(),
    }),
    /** Class index -> name, background included. */
    labels: z.record(z.string(), z.string()).default({}),
    /** Free-form provenance: training config, steps, validation metrics. */
    training: z.record(z.string(), z.unknown()).optional(),
  })
  .transform((m, ctx) => {
    let spec: NetworkSpec;
    try {
      spec = resolveNetwork(m.network, m.networkArgs);
    } catch (e) {
      ctx.addIssue({ code: 'custom', path: ['network'], message: (e as Error).message, input: m.network });
      return z.NEVER;
    }
    const { inChannels, outChannels } = specChannels(spec);
    try {
      createNetwork(spec, { meta: true }).checkInputShape([1, inChannels, ...m.inference.roiSize]);
    } catch (e) {
      ctx.addIssue({
        code: 'custom',
        path: ['inference', 'roiSize'],
        message: `${m.inference.roiSize.join('x')} does not fit the network: ${(e as Error).message}`,
        input: m.inference.roiSize,
      });
      return z.NEVER;
    }
    if (m.inference.tta && !(m.inference.mirrorAxes ?? []).length) {
      ctx.addIssue({ code: 'custom', path: ['inference', 'tta'], message: 'is true but inference.mirrorAxes names no axis to mirror along', input: m.inference.tta });
      return z.NEVER;
    }
    const n = Object.keys(m.labels).length;
    if (n !== outChannels) {
      ctx.addIssue({ code: 'custom', path: ['labels'], message: `names ${n} classes but the network has ${outChannels} outputs`, input: m.labels });
      return z.NEVER;
    }
    // A legacy object becomes the normalised UX-Net config; a name stays as written.
    const network = spec.network === 'uxnet' && typeof m.network !== 'string' ? spec.args : m.network;
    return { ...m, network, spec };
  });

/** A model folder's model.json (the type is the schema's). */
export type ModelManifest = Omit<z.output<typeof ModelManifestSchema>, 'spec'> & {
  /** Filled in when a model.json is read: the resolved network (not part of the file). */
  spec?: NetworkSpec;
};
