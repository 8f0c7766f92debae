export { UXNet, UXNetInputError, UXNET_ACTIVATIONS, type UXNetOptions } from './uxnet.js';
export { normalizeUXNetConfig, DEFAULT_UXNET_CONFIG, UXNetConfigError, type UXNetConfig, type UXNetConfigInput } from './config.js';
export { UxBlock, UxNetConv, type UxBlockOptions, type UxNetConvOptions } from './uxnet-encoder.js';
export * from './blocks/index.js';
export { SwinUNETR, SWIN_UNETR_ACTIVATIONS } from './swin-unetr.js';
export { UNETR, UNETR_ACTIVATIONS } from './unetr.js';
export { normalizeSwinUNETRConfig, type SwinUNETRConfig } from './swin-unetr-config.js';
export { normalizeUNETRConfig, type UNETRConfig } from './unetr-config.js';
export { NetworkConfigError } from './network-args.js';
export { NetworkInputError } from './network-input.js';
export {
  NETWORK_NAMES,
  isNetworkName,
  resolveNetwork,
  networkFromConfig,
  normalizeNetworkArgs,
  networkArgsSnake,
  networkToJSON,
  createNetwork,
  networkStateShapes,
  countNetworkParameters,
  withChannels,
  describeNetwork,
  type NetworkName,
  type NetworkSpec,
  type SegmentationNetwork,
} from './registry.js';
