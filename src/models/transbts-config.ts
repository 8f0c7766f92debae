import { boolArg, fail, normalizeArgs, onlyArg, posIntArg, type ArgSpec } from './network-args.js';

/**
 * TransBTS as vendored in the official 3D UX-Net repository: `BTS(img_dim, patch_dim, num_channels,
 * num_classes, embedding_dim, num_heads, num_layers, hidden_dim, dropout_rate, attn_dropout_rate,
 * conv_patch_representation, positional_encoding_type)`, camelCase keys. The official factory
 * `TransBTS(dataset)` hard-codes img_dim 96, embedding_dim 512, hidden_dim 4096, and literals in the code
 * fix the Unet base width (16) and the position-embedding count (1,728 = 12³); here the class count comes
 * from the config and `unet_base_channels` and `img_dim` are options with the official values as defaults
 * (the baseline fixtures' `module_patches`). `official_eval_dropout` reproduces the always-on
 * `F.dropout3d(p=0.2)` of the official eval forward.
 */
export interface TransBTSConfig {
  imgDim: number;
  patchDim: number;
  numChannels: number;
  numClasses: number;
  embeddingDim: number;
  numHeads: number;
  numLayers: number;
  hiddenDim: number;
  dropoutRate: number;
  attnDropoutRate: number;
  convPatchRepresentation: true;
  positionalEncodingType: 'learned';
  unetBaseChannels: number;
  officialEvalDropout: boolean;
}

const rate = (v: unknown, name: string): number => {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v >= 1) fail(`${name} must be a number in [0, 1), got ${JSON.stringify(v)}`);
  return v;
};

const SPEC: Record<string, ArgSpec> = {
  imgDim: { snake: 'img_dim', default: 96, check: posIntArg },
  patchDim: { snake: 'patch_dim', default: 8, check: onlyArg(8, 'the Unet downsamples 8× before the transformer') },
  numChannels: { snake: 'num_channels', default: 1, check: posIntArg },
  numClasses: { snake: 'num_classes', check: posIntArg },
  embeddingDim: { snake: 'embedding_dim', default: 512, check: posIntArg },
  numHeads: { snake: 'num_heads', default: 8, check: posIntArg },
  numLayers: { snake: 'num_layers', default: 4, check: posIntArg },
  hiddenDim: { snake: 'hidden_dim', default: 4096, check: posIntArg },
  dropoutRate: { snake: 'dropout_rate', default: 0.1, check: rate },
  attnDropoutRate: { snake: 'attn_dropout_rate', default: 0.1, check: rate },
  convPatchRepresentation: {
    snake: 'conv_patch_representation',
    default: true,
    check: (v, n) => (boolArg(v, n) ? v : fail(`${n} must be true (the official call; the linear-encoding path is never used)`)),
  },
  positionalEncodingType: { snake: 'positional_encoding_type', default: 'learned', check: onlyArg('learned', 'the official call') },
  unetBaseChannels: { snake: 'unet_base_channels', default: 16, check: posIntArg },
  officialEvalDropout: { snake: 'official_eval_dropout', default: false, check: boolArg },
};

export function normalizeTransBTSConfig(input: unknown): TransBTSConfig {
  const c = normalizeArgs<TransBTSConfig>(input, SPEC, 'TransBTS');
  const b = c.unetBaseChannels;
  if (b % 8 !== 0) fail(`TransBTS unet_base_channels must be a multiple of 8 (GroupNorm(8, ·) on every Unet width), got ${b}`);
  if (c.embeddingDim !== 32 * b)
    fail(`TransBTS embedding_dim must be 32 × unet_base_channels (${32 * b}): the decoder's widths E/4, E/8, E/16, E/32 meet the Unet skips 8b, 4b, 2b, b; got ${c.embeddingDim}`);
  if (c.embeddingDim % c.numHeads !== 0) fail(`TransBTS embedding_dim (${c.embeddingDim}) must be divisible by num_heads (${c.numHeads})`);
  if (c.imgDim % c.patchDim !== 0) fail(`TransBTS img_dim (${c.imgDim}) must be a multiple of patch_dim (${c.patchDim})`);
  if (c.numLayers < 4) fail(`TransBTS num_layers must be at least 4: the decoder reads the output of transformer layer 4 (intmd['7']), got ${c.numLayers}`);
  return c;
}

/** The snake_case spelling (what model.json and configs store). */
export function transBTSConfigToArgs(c: TransBTSConfig): Record<string, unknown> {
  return Object.fromEntries(Object.entries(SPEC).map(([k, s]) => [s.snake, (c as unknown as Record<string, unknown>)[k]]));
}
