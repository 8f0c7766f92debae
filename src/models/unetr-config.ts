import { boolArg, fail, normalizeArgs, onlyArg, posIntArg, sizeArg, zeroRateArg, type ArgSpec } from './network-args.js';

/**
 * MONAI 0.9.0 `UNETR(in_channels, out_channels, img_size, feature_size=16, hidden_size=768, mlp_dim=3072,
 * num_heads=12, pos_embed="perceptron", norm_name="instance", conv_block=True, res_block=True,
 * dropout_rate=0.0, spatial_dims=3)`, camelCase keys.
 */
export interface UNETRConfig {
  inChannels: number;
  outChannels: number;
  /** The one input size the network takes (position embeddings are sized for it); multiples of 16. */
  imgSize: [number, number, number];
  featureSize: number;
  hiddenSize: number;
  mlpDim: number;
  numHeads: number;
  /** "perceptron" (the official call; a Linear on flattened 16³ patches) or "conv" (a k16 s16 Conv3d). */
  posEmbed: 'perceptron' | 'conv';
  normName: 'instance';
  convBlock: true;
  resBlock: true;
  dropoutRate: 0;
  spatialDims: 3;
}

const SPEC: Record<string, ArgSpec> = {
  inChannels: { snake: 'in_channels', check: posIntArg },
  outChannels: { snake: 'out_channels', check: posIntArg },
  imgSize: { snake: 'img_size', check: sizeArg },
  featureSize: { snake: 'feature_size', default: 16, check: posIntArg },
  hiddenSize: { snake: 'hidden_size', default: 768, check: posIntArg },
  mlpDim: { snake: 'mlp_dim', default: 3072, check: posIntArg },
  numHeads: { snake: 'num_heads', default: 12, check: posIntArg },
  posEmbed: {
    snake: 'pos_embed',
    default: 'perceptron',
    check: (v, n) => (v === 'perceptron' || v === 'conv' ? v : fail(`${n} must be "perceptron" or "conv", got ${JSON.stringify(v)}`)),
  },
  normName: { snake: 'norm_name', default: 'instance', check: onlyArg('instance', 'the only normalisation implemented') },
  convBlock: { snake: 'conv_block', default: true, check: (v, n) => (boolArg(v, n) ? v : fail(`${n} must be true (the only variant implemented; the official call uses it)`)) },
  resBlock: { snake: 'res_block', default: true, check: (v, n) => (boolArg(v, n) ? v : fail(`${n} must be true (the only variant implemented; the official call uses it)`)) },
  dropoutRate: { snake: 'dropout_rate', default: 0, check: zeroRateArg },
  spatialDims: { snake: 'spatial_dims', default: 3, check: onlyArg(3, '3-D volumes only') },
};

/** The patch size MONAI 0.9.0 hard-codes. */
export const UNETR_PATCH = 16;

export function normalizeUNETRConfig(input: unknown): UNETRConfig {
  const c = normalizeArgs<UNETRConfig>(input, SPEC, 'UNETR');
  if (c.imgSize.some((d) => d % UNETR_PATCH !== 0)) fail(`UNETR img_size ${JSON.stringify(c.imgSize)}: every dimension must be a multiple of the patch size ${UNETR_PATCH}`);
  if (c.hiddenSize % c.numHeads !== 0) fail(`UNETR hidden_size (${c.hiddenSize}) must be divisible by num_heads (${c.numHeads})`);
  return c;
}

/** The official snake_case spelling of a normalised config (what model.json and configs store). */
export function unetrConfigToArgs(c: UNETRConfig): Record<string, unknown> {
  return Object.fromEntries(Object.entries(SPEC).map(([k, s]) => [s.snake, (c as unknown as Record<string, unknown>)[k]]));
}
