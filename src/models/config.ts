/**
 * UX-Net constructor options, in our camelCase form and the official snake_case spelling
 * (`UXNET(in_chans=1, out_chans=13, depths=[2,2,2,2], feat_size=[48,96,192,384], drop_path_rate=0,
 * layer_scale_init_value=1e-6, hidden_size=768, norm_name="instance", conv_block=True,
 * res_block=True, spatial_dims=3)`).
 */
import { InputError } from '../engine/errors.js';
export interface UXNetConfig {
  /** Input channels (official `in_chans`, default 1). */
  inChans: number;
  /** Output classes, background included (official `out_chans`, default 13). */
  outChans: number;
  /** ux_blocks per stage (4 entries, default [2, 2, 2, 2]). */
  depths: number[];
  /** Stage widths (4 entries, default [48, 96, 192, 384]); featSize[0] is also the out block's input width. */
  featSize: number[];
  /** Bottleneck width of encoder5 (default 768). */
  hiddenSize: number;
  /** Must be 0: stochastic depth is not implemented (the official scripts use 0). */
  dropPathRate: number;
  /**
   * Initial layer-scale `gamma` value (default 1e-6). The official UXNET does **not** forward its
   * `layer_scale_init_value` argument (it passes a literal 1e-6); we honour ours, with the same default.
   */
  layerScaleInit: number;
  /** ux_block depth-wise kernel size (default 7, the paper's large kernel); the stem stays 7. */
  kernelSize: number;
  /** Must be 3. */
  spatialDims: number;
}

export type UXNetConfigInput = Partial<UXNetConfig> & {
  in_chans?: number;
  out_chans?: number;
  feat_size?: number[];
  hidden_size?: number;
  drop_path_rate?: number;
  layer_scale_init_value?: number;
  layerScaleInitValue?: number;
  kernel_size?: number;
  spatial_dims?: number;
  /** Official options accepted only with their only supported values. */
  norm_name?: string;
  normName?: string;
  res_block?: boolean;
  resBlock?: boolean;
  /** Unused by the official model; accepted and ignored. */
  conv_block?: boolean;
  convBlock?: boolean;
};

export const DEFAULT_UXNET_CONFIG: Readonly<UXNetConfig> = Object.freeze({
  inChans: 1,
  outChans: 13,
  depths: [2, 2, 2, 2],
  featSize: [48, 96, 192, 384],
  hiddenSize: 768,
  dropPathRate: 0,
  layerScaleInit: 1e-6,
  kernelSize: 7,
  spatialDims: 3,
});

export class UXNetConfigError extends InputError {
  constructor(message: string) {
    super(message);
    this.name = 'UXNetConfigError';
  }
}

/** Our key → accepted spellings (first is ours). */
const ALIASES: Record<string, string[]> = {
  inChans: ['inChans', 'in_chans'],
  outChans: ['outChans', 'out_chans'],
  depths: ['depths'],
  featSize: ['featSize', 'feat_size'],
  hiddenSize: ['hiddenSize', 'hidden_size'],
  dropPathRate: ['dropPathRate', 'drop_path_rate'],
  layerScaleInit: ['layerScaleInit', 'layerScaleInitValue', 'layer_scale_init_value'],
  kernelSize: ['kernelSize', 'kernel_size'],
  spatialDims: ['spatialDims', 'spatial_dims'],
  normName: ['normName', 'norm_name'],
  resBlock: ['resBlock', 'res_block'],
  convBlock: ['convBlock', 'conv_block'],
};

function posInt(v: unknown, name: string, allowZero = false): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < (allowZero ? 0 : 1)) {
    throw new UXNetConfigError(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

function intList(v: unknown, name: string, allowZero: boolean): number[] {
  if (!Array.isArray(v) || v.length !== 4) throw new UXNetConfigError(`${name} must be a list of 4 integers, got ${JSON.stringify(v)}`);
  return v.map((d, i) => posInt(d, `${name}[${i}]`, allowZero));
}

/**
 * Validates constructor options given in camelCase or the official snake_case (or a mix), fills in
 * the official defaults and returns the canonical config. Throws UXNetConfigError with a clear
 * message for unknown keys, conflicting spellings and bad values.
 */
export function normalizeUXNetConfig(input: unknown = {}): UXNetConfig {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new UXNetConfigError(`the UX-Net config must be an object, got ${Array.isArray(input) ? 'an array' : JSON.stringify(input)}`);
  }
  const obj = input as Record<string, unknown>;
  const known = new Map<string, string>();
  for (const [canon, names] of Object.entries(ALIASES)) for (const n of names) known.set(n, canon);
  const picked: Record<string, unknown> = {};
  const from: Record<string, string> = {};
  for (const [key, value] of Object.entries(obj)) {
    if (value === undefined) continue;
    const canon = known.get(key);
    if (!canon) throw new UXNetConfigError(`unknown UX-Net option '${key}' (known: ${[...known.keys()].join(', ')})`);
    if (canon in picked && JSON.stringify(picked[canon]) !== JSON.stringify(value)) {
      throw new UXNetConfigError(`options '${from[canon]}' and '${key}' are the same setting with different values`);
    }
    picked[canon] = value;
    from[canon] = key;
  }
  const d = DEFAULT_UXNET_CONFIG;
  const cfg: UXNetConfig = {
    inChans: posInt(picked.inChans ?? d.inChans, 'inChans (in_chans)'),
    outChans: posInt(picked.outChans ?? d.outChans, 'outChans (out_chans)'),
    depths: intList(picked.depths ?? d.depths, 'depths', true),
    featSize: intList(picked.featSize ?? d.featSize, 'featSize (feat_size)', false),
    hiddenSize: posInt(picked.hiddenSize ?? d.hiddenSize, 'hiddenSize (hidden_size)'),
    dropPathRate: (picked.dropPathRate ?? d.dropPathRate) as number,
    layerScaleInit: (picked.layerScaleInit ?? d.layerScaleInit) as number,
    kernelSize: posInt(picked.kernelSize ?? d.kernelSize, 'kernelSize (kernel_size)'),
    spatialDims: (picked.spatialDims ?? d.spatialDims) as number,
  };
  if (typeof cfg.dropPathRate !== 'number' || !Number.isFinite(cfg.dropPathRate))
    throw new UXNetConfigError(`dropPathRate (drop_path_rate) must be a number, got ${JSON.stringify(cfg.dropPathRate)}`);
  if (cfg.dropPathRate !== 0)
    throw new UXNetConfigError(`dropPathRate (drop_path_rate) must be 0: stochastic depth is not implemented (the official training scripts use 0), got ${cfg.dropPathRate}`);
  if (typeof cfg.layerScaleInit !== 'number' || !Number.isFinite(cfg.layerScaleInit) || cfg.layerScaleInit < 0) {
    throw new UXNetConfigError(`layerScaleInit (layer_scale_init_value) must be a non-negative number, got ${JSON.stringify(cfg.layerScaleInit)}`);
  }
  if (cfg.kernelSize % 2 === 0) throw new UXNetConfigError(`kernelSize (kernel_size) must be odd, got ${cfg.kernelSize}`);
  if (cfg.spatialDims !== 3) throw new UXNetConfigError(`spatialDims (spatial_dims) must be 3, got ${JSON.stringify(cfg.spatialDims)}`);
  if (picked.normName !== undefined && picked.normName !== 'instance')
    throw new UXNetConfigError(`norm_name must be "instance" (the only normalisation implemented), got ${JSON.stringify(picked.normName)}`);
  if (picked.resBlock !== undefined && picked.resBlock !== true)
    throw new UXNetConfigError(`res_block must be true (the only variant implemented), got ${JSON.stringify(picked.resBlock)}`);
  if (picked.convBlock !== undefined && typeof picked.convBlock !== 'boolean') throw new UXNetConfigError(`conv_block must be a boolean, got ${JSON.stringify(picked.convBlock)}`);
  return cfg;
}
