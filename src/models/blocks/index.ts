export { Convolution, monaiPadding, monaiOutputPadding, type ConvolutionOptions } from './convolution.js';
export { UnetResBlock, UnetrBasicBlock, type UnetResBlockOptions } from './unet-res-block.js';
export { UnetrUpBlock, type UnetrUpBlockOptions } from './unetr-up-block.js';
export { UnetOutBlock } from './unet-out-block.js';
