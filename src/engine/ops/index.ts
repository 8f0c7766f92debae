export { conv3d, type Conv3dOptions } from './conv3d.js';
export { convTranspose3d } from './conv_transpose3d.js';
export { instanceNorm } from './instance_norm.js';
export { layerNorm } from './layer_norm.js';
export { gelu, leakyRelu, softmax } from './activations.js';
export { add, scale, mulChannel } from './elementwise.js';
export { reshape, concatChannels, sliceChannels } from './shape.js';
export { sum, mean } from './reduce.js';
export { crossEntropy, diceLoss } from './losses.js';
