import { boolArg, fail, intListArg, normalizeArgs, posIntArg, type ArgSpec } from './network-args.js';

/**
 * nnFormer as vendored in the official 3D UX-Net repository: `nnFormer(crop_size=[96,96,96],
 * embedding_dim=192, input_channels=1, num_classes=14, conv_op=nn.Conv3d, depths=[2,2,2,2],
 * num_heads=[6,12,24,48], patch_size=[2,4,4], window_size=[4,4,8,4], deep_supervision=False)`, camelCase
 * keys. `drop_path_rate` (0.2) is the inner default of its Encoder and Decoder, which the official call
 * cannot reach; it is an option here so that it can be switched off.
 */
export interface NnFormerConfig {
  cropSize: [number, number, number];
  embeddingDim: number;
  inputChannels: number;
  numClasses: number;
  depths: [number, number, number, number];
  numHeads: [number, number, number, number];
  patchSize: [number, number, number];
  windowSize: [number, number, number, number];
  deepSupervision: false;
  dropPathRate: number;
}

const SPEC: Record<string, ArgSpec> = {
  cropSize: { snake: 'crop_size', default: [96, 96, 96], check: intListArg(3) },
  embeddingDim: { snake: 'embedding_dim', default: 192, check: posIntArg },
  inputChannels: { snake: 'input_channels', default: 1, check: posIntArg },
  numClasses: { snake: 'num_classes', default: 14, check: posIntArg },
  depths: { snake: 'depths', default: [2, 2, 2, 2], check: intListArg(4) },
  numHeads: { snake: 'num_heads', default: [6, 12, 24, 48], check: intListArg(4) },
  patchSize: { snake: 'patch_size', default: [2, 4, 4], check: intListArg(3) },
  windowSize: { snake: 'window_size', default: [4, 4, 8, 4], check: intListArg(4) },
  deepSupervision: {
    snake: 'deep_supervision',
    default: false,
    check: (v, n) => (boolArg(v, n) ? fail(`${n} must be false (deep-supervision outputs are not implemented; the official call uses false)`) : v),
  },
  dropPathRate: {
    snake: 'drop_path_rate',
    default: 0.2,
    check: (v, n) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 && v < 1 ? v : fail(`${n} must be a number in [0, 1), got ${JSON.stringify(v)}`)),
  },
};

export function normalizeNnFormerConfig(input: unknown): NnFormerConfig {
  const c = normalizeArgs<NnFormerConfig>(input, SPEC, 'nnFormer');
  const e = c.embeddingDim;
  if (e % 2 !== 0) fail(`nnFormer embedding_dim must be even (the first projection has embedding_dim/2 channels), got ${e}`);
  c.numHeads.forEach((h, i) => {
    if ((e * 2 ** i) % h !== 0) fail(`nnFormer num_heads[${i}] (${h}) must divide the stage width ${e * 2 ** i}`);
  });
  const p = c.patchSize;
  if (p[1]! % 2 || p[2]! % 2 || p[0]! % 2) fail(`nnFormer patch_size ${JSON.stringify(p)}: every entry must be even (two strided projections)`);
  c.cropSize.forEach((d, i) => {
    if (d % (p[i]! * 8) !== 0)
      fail(
        `nnFormer crop_size ${JSON.stringify(c.cropSize)}: dimension ${i} must be a multiple of patch_size[${i}]·8 = ${p[i]! * 8} (three halvings after the patch embedding, mirrored by the decoder)`,
      );
  });
  return c;
}

export function nnFormerConfigToArgs(c: NnFormerConfig): Record<string, unknown> {
  return Object.fromEntries(Object.entries(SPEC).map(([k, s]) => [s.snake, (c as unknown as Record<string, unknown>)[k]]));
}
