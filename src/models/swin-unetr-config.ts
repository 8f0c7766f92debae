import { boolArg, fail, intListArg, normalizeArgs, onlyArg, posIntArg, sizeArg, zeroRateArg, type ArgSpec } from './network-args.js';

/**
 * MONAI 0.9.0 `SwinUNETR(img_size, in_channels, out_channels, depths=(2,2,2,2), num_heads=(3,6,12,24),
 * feature_size=24, norm_name="instance", drop_rate=0, attn_drop_rate=0, dropout_path_rate=0,
 * normalize=True, use_checkpoint=False, spatial_dims=3)`, camelCase keys.
 */
export interface SwinUNETRConfig {
  /** Only checked (every dimension a multiple of 32), never used: any such input size works. */
  imgSize: [number, number, number];
  inChannels: number;
  outChannels: number;
  depths: number[];
  numHeads: number[];
  /** A multiple of 12 (MONAI's check); the official call uses 48. */
  featureSize: number;
  normName: 'instance';
  dropRate: 0;
  attnDropRate: 0;
  dropoutPathRate: 0;
  /** LayerNorm (no affine) on the hidden states sent to the decoder. */
  normalize: boolean;
  /** Gradient checkpointing in PyTorch: a memory trade-off with no effect on values; accepted and ignored. */
  useCheckpoint: boolean;
  spatialDims: 3;
}

const SPEC: Record<string, ArgSpec> = {
  imgSize: { snake: 'img_size', check: sizeArg },
  inChannels: { snake: 'in_channels', check: posIntArg },
  outChannels: { snake: 'out_channels', check: posIntArg },
  depths: { snake: 'depths', default: [2, 2, 2, 2], check: intListArg(4) },
  numHeads: { snake: 'num_heads', default: [3, 6, 12, 24], check: intListArg(4) },
  featureSize: { snake: 'feature_size', default: 24, check: posIntArg },
  normName: { snake: 'norm_name', default: 'instance', check: onlyArg('instance', 'the only normalisation implemented') },
  dropRate: { snake: 'drop_rate', default: 0, check: zeroRateArg },
  attnDropRate: { snake: 'attn_drop_rate', default: 0, check: zeroRateArg },
  dropoutPathRate: { snake: 'dropout_path_rate', default: 0, check: zeroRateArg },
  normalize: { snake: 'normalize', default: true, check: boolArg },
  useCheckpoint: { snake: 'use_checkpoint', default: false, check: boolArg },
  spatialDims: { snake: 'spatial_dims', default: 3, check: onlyArg(3, '3-D volumes only') },
};

/** MONAI 0.9.0 hard-codes these. */
export const SWIN_PATCH = 2;
export const SWIN_WINDOW = 7;

export function normalizeSwinUNETRConfig(input: unknown): SwinUNETRConfig {
  const c = normalizeArgs<SwinUNETRConfig>(input, SPEC, 'SwinUNETR');
  if (c.imgSize.some((d) => d % 32 !== 0)) fail(`SwinUNETR img_size ${JSON.stringify(c.imgSize)}: every dimension must be divisible by 32 (MONAI's check: five halvings)`);
  if (c.featureSize % 12 !== 0) fail(`SwinUNETR feature_size must be divisible by 12, got ${c.featureSize}`);
  c.numHeads.forEach((h, i) => {
    const dim = c.featureSize * 2 ** i;
    if (dim % h !== 0) fail(`SwinUNETR num_heads[${i}] = ${h} does not divide stage ${i + 1}'s ${dim} channels`);
  });
  return c;
}

export function swinUNETRConfigToArgs(c: SwinUNETRConfig): Record<string, unknown> {
  return Object.fromEntries(Object.entries(SPEC).map(([k, s]) => [s.snake, (c as unknown as Record<string, unknown>)[k]]));
}
