/**
 * Networks as data. A config names its architecture and gives the official constructor arguments:
 *
 *   { "network": "swin_unetr", "networkArgs": { "img_size": [96, 96, 96], "in_channels": 1, ... } }   model.json, train configs
 *   { "network": "swin_unetr", "img_size": [96, 96, 96], "in_channels": 1, ... }                       flat (uxnet forward --config)
 *   { "network": "unetr", "constructor_args": { ... }, ... }                                           the baseline fixtures' <model>_config.json
 *
 * `network` absent means UX-Net, and the older form `"network": { featSize, ... }` (an object of UX-Net
 * options, what model folders and train configs held before) keeps loading as UX-Net.
 */
import type { Tensor } from '../engine/tensor.js';
import type { Module } from '../nn/module.js';
import { normalizeUXNetConfig } from './config.js';
import { NetworkConfigError } from './network-args.js';
import { normalizeSwinUNETRConfig, swinUNETRConfigToArgs, type SwinUNETRConfig } from './swin-unetr-config.js';
import { SwinUNETR } from './swin-unetr.js';
import { normalizeUNETRConfig, unetrConfigToArgs, type UNETRConfig } from './unetr-config.js';
import { UNETR } from './unetr.js';
import { UXNet } from './uxnet.js';
import { normalizeTransBTSConfig, transBTSConfigToArgs, type TransBTSConfig } from './transbts-config.js';
import { TransBTS } from './transbts.js';
import { normalizeNnFormerConfig, nnFormerConfigToArgs, type NnFormerConfig } from './nnformer-config.js';
import { NnFormer } from './nnformer.js';

export const NETWORK_NAMES = ['uxnet', 'swin_unetr', 'unetr', 'nnformer', 'transbts'] as const;
export type NetworkName = (typeof NETWORK_NAMES)[number];

/** What every segmentation network offers the workflows (train, predict, forward, export). */
export interface SegmentationNetwork extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  /** The one input size the network takes (UNETR's img_size), used as the sliding window; null if any valid size works. */
  readonly fixedInputSize: [number, number, number] | null;
  /** Throws a UXNetInputError (one clear line) for an input shape the network cannot take, before any compute. */
  checkInputShape(shape: readonly number[]): void;
  forward(x: Tensor): Tensor;
  forwardWithIntermediates(x: Tensor): Map<string, Tensor>;
  /**
   * Logits and the decoder's outputs below full resolution, finest first (each level halves the size), for
   * deep supervision; only networks that have it can train with it.
   */
  forwardDecoder?(x: Tensor): { logits: Tensor; decoder: Tensor[] };
  /** Channel counts of `forwardDecoder`'s levels, finest first. */
  readonly decoderChannels?: readonly number[];
}

/** A network name with its normalised (camelCase) constructor arguments. */
export interface NetworkSpec {
  network: NetworkName;
  args: Record<string, unknown>;
}

export function isNetworkName(v: unknown): v is NetworkName {
  return typeof v === 'string' && (NETWORK_NAMES as readonly string[]).includes(v);
}

function checkName(v: unknown): NetworkName {
  if (!isNetworkName(v)) throw new NetworkConfigError(`network must be one of ${NETWORK_NAMES.map((n) => `"${n}"`).join(', ')}, got ${JSON.stringify(v)}`);
  return v;
}

/** Validates and normalises the arguments of a named network (throws UXNetConfigError naming the argument). */
export function normalizeNetworkArgs(network: NetworkName, args: unknown): Record<string, unknown> {
  switch (network) {
    case 'uxnet':
      return normalizeUXNetConfig(args) as unknown as Record<string, unknown>;
    case 'swin_unetr':
      return normalizeSwinUNETRConfig(args) as unknown as Record<string, unknown>;
    case 'unetr':
      return normalizeUNETRConfig(args) as unknown as Record<string, unknown>;
    case 'nnformer':
      return normalizeNnFormerConfig(args) as unknown as Record<string, unknown>;
    case 'transbts':
      return normalizeTransBTSConfig(args) as unknown as Record<string, unknown>;
  }
}

/**
 * The network of a config given as its `network` field and (for the new form) its arguments object.
 * `network` may be absent (UX-Net), a name, or the legacy object of UX-Net options.
 */
export function resolveNetwork(network: unknown, args?: unknown): NetworkSpec {
  if (network === undefined || network === null) return { network: 'uxnet', args: normalizeNetworkArgs('uxnet', args ?? {}) };
  if (typeof network === 'object' && !Array.isArray(network)) {
    if (args !== undefined)
      throw new NetworkConfigError('"network" is an object of UX-Net options (the older form), so "networkArgs" cannot be given too; write "network": "uxnet" with "networkArgs"');
    return { network: 'uxnet', args: normalizeNetworkArgs('uxnet', network) };
  }
  const name = checkName(network);
  return { network: name, args: normalizeNetworkArgs(name, args ?? {}) };
}

/** Fields of the fixtures' `<model>_config.json` that describe the run rather than the network. */
const FIXTURE_FIELDS = new Set(['class', 'input_shape', 'second_input_shape', 'train_input_shape', 'param_count', 'state_dict_keys', 'module_patches']);

/**
 * The fixtures' TransBTS `module_patches` (the generalised literals, e.g. `unet_base_channels`) are network
 * arguments here; `description` and `official_factory` are prose.
 */
function withModulePatches(args: unknown, patches: unknown): unknown {
  if (patches === undefined || patches === null || typeof patches !== 'object' || typeof args !== 'object' || args === null) return args;
  const extra = Object.fromEntries(Object.entries(patches as Record<string, unknown>).filter(([k]) => k !== 'description' && k !== 'official_factory'));
  return { ...(args as Record<string, unknown>), ...extra };
}

/**
 * The network of a standalone config file (`uxnet forward/export-onnx/import-pth --config`): the fixture
 * form (constructor_args), the new form (networkArgs), the flat form (arguments beside "network"), or a
 * plain object of UX-Net options (no "network").
 */
export function networkFromConfig(raw: unknown): NetworkSpec {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new NetworkConfigError(`the config must be a JSON object, got ${Array.isArray(raw) ? 'an array' : JSON.stringify(raw)}`);
  const o = raw as Record<string, unknown>;
  if ('constructor_args' in o) return resolveNetwork(o.network ?? 'uxnet', withModulePatches(o.constructor_args, o.module_patches));
  if ('networkArgs' in o) return resolveNetwork(o.network ?? 'uxnet', o.networkArgs);
  if (typeof o.network === 'object' && o.network !== null) {
    const rest = Object.keys(o).filter((k) => k !== 'network');
    if (rest.length) throw new NetworkConfigError(`"network" is an object of UX-Net options, so the other fields (${rest.join(', ')}) are not understood`);
    return resolveNetwork(o.network);
  }
  const args = Object.fromEntries(Object.entries(o).filter(([k]) => k !== 'network' && !(typeof o.network === 'string' && FIXTURE_FIELDS.has(k))));
  return resolveNetwork(o.network ?? 'uxnet', args);
}

/** The official snake_case arguments of a spec (what configs and model.json store). */
export function networkArgsSnake(spec: NetworkSpec): Record<string, unknown> {
  switch (spec.network) {
    case 'uxnet':
      return { ...spec.args };
    case 'swin_unetr':
      return swinUNETRConfigToArgs(spec.args as unknown as SwinUNETRConfig);
    case 'unetr':
      return unetrConfigToArgs(spec.args as unknown as UNETRConfig);
    case 'nnformer':
      return nnFormerConfigToArgs(spec.args as unknown as NnFormerConfig);
    case 'transbts':
      return transBTSConfigToArgs(spec.args as unknown as TransBTSConfig);
  }
}

/**
 * How a spec is written into model.json and train configs: UX-Net keeps the older object form (so
 * folders it writes load in older versions too), the others `"network": name, "networkArgs": {...}`.
 */
export function networkToJSON(spec: NetworkSpec): { network: string | Record<string, unknown>; networkArgs?: Record<string, unknown> } {
  if (spec.network === 'uxnet') return { network: { ...spec.args } };
  return { network: spec.network, networkArgs: networkArgsSnake(spec) };
}

export function createNetwork(spec: NetworkSpec, opts: { seed?: number; meta?: boolean } = {}): SegmentationNetwork {
  switch (spec.network) {
    case 'uxnet':
      return new UXNet(spec.args, opts) as SegmentationNetwork;
    case 'swin_unetr':
      return new SwinUNETR(spec.args, opts);
    case 'unetr':
      return new UNETR(spec.args, opts);
    case 'nnformer':
      return new NnFormer(spec.args, opts);
    case 'transbts':
      return new TransBTS(spec.args, opts);
  }
}

/** Ordered [state-dict key, shape] pairs (buffers included) without allocating anything. */
export function networkStateShapes(spec: NetworkSpec): [string, readonly number[]][] {
  return createNetwork(spec, { meta: true }).namedStateShapes();
}

/** Parameter count without allocating anything (SwinUNETR at FLARE: 62,186,855; UNETR: 92,783,893). */
export function countNetworkParameters(spec: NetworkSpec): number {
  return createNetwork(spec, { meta: true }).numParameters();
}

/** Each network's spelling of its channel counts: [in camel, in snake, out camel, out snake]. */
export const CHANNEL_KEYS: Record<NetworkName, readonly [string, string, string, string]> = {
  uxnet: ['inChans', 'in_chans', 'outChans', 'out_chans'],
  swin_unetr: ['inChannels', 'in_channels', 'outChannels', 'out_channels'],
  unetr: ['inChannels', 'in_channels', 'outChannels', 'out_channels'],
  nnformer: ['inputChannels', 'input_channels', 'numClasses', 'num_classes'],
  transbts: ['numChannels', 'num_channels', 'numClasses', 'num_classes'],
};

/** The same spec with the channel counts set (train fills them in from the data). */
export function withChannels(network: unknown, args: Record<string, unknown> | undefined, inChannels: number, outChannels: number | undefined): NetworkSpec {
  const legacy = typeof network === 'object' && network !== null;
  const name = legacy || network === undefined ? 'uxnet' : checkName(network);
  const given = (legacy ? network : (args ?? {})) as Record<string, unknown>;
  const keys = CHANNEL_KEYS[name];
  const hasIn = given[keys[0]] !== undefined || given[keys[1]] !== undefined;
  const hasOut = given[keys[2]] !== undefined || given[keys[3]] !== undefined;
  const filled = { ...given, ...(hasIn ? {} : { [keys[0]]: inChannels }), ...(hasOut || outChannels === undefined ? {} : { [keys[2]]: outChannels }) };
  return resolveNetwork(name, filled);
}

/** A one-line description for logs ("SwinUNETR feature_size 48"). */
export function describeNetwork(spec: NetworkSpec): string {
  const a = spec.args;
  switch (spec.network) {
    case 'uxnet':
      return `UX-Net ${(a.featSize as number[]).join('/')} hidden ${a.hiddenSize}`;
    case 'swin_unetr':
      return `SwinUNETR feature_size ${a.featureSize}, depths ${(a.depths as number[]).join('/')}, heads ${(a.numHeads as number[]).join('/')}`;
    case 'unetr':
      return `UNETR feature_size ${a.featureSize}, hidden ${a.hiddenSize}, img_size ${(a.imgSize as number[]).join('x')}`;
    case 'nnformer':
      return `nnFormer embedding_dim ${a.embeddingDim}, depths ${(a.depths as number[]).join('/')}, heads ${(a.numHeads as number[]).join('/')}, crop_size ${(a.cropSize as number[]).join('x')}`;
    case 'transbts':
      return `TransBTS embedding_dim ${a.embeddingDim}, unet_base_channels ${a.unetBaseChannels}, img_dim ${a.imgDim}`;
  }
}
