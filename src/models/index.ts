export { UXNet, UXNetInputError, UXNET_ACTIVATIONS, type UXNetOptions } from './uxnet.js';
export { normalizeUXNetConfig, DEFAULT_UXNET_CONFIG, UXNetConfigError, type UXNetConfig, type UXNetConfigInput } from './config.js';
export { UxBlock, UxNetConv, type UxBlockOptions, type UxNetConvOptions } from './uxnet-encoder.js';
export * from './blocks/index.js';
