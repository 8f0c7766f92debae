export { Rng, type RngAlgorithm } from '../engine/rng.js';
export {
  Module,
  Sequential,
  ModuleList,
  StateDictError,
  initContext,
  type Layer,
  type LoadReport,
  type BufferSlot,
  type ShapeMismatch,
  type StateDictInput,
  type StateValue,
  type InitContext,
  type InitOptions,
} from './module.js';
export {
  Conv3d,
  ConvTranspose3d,
  LayerNorm,
  InstanceNorm3d,
  LeakyReLU,
  GELU,
  type Conv3dOptions,
  type ConvTranspose3dOptions,
  type LayerNormOptions,
  type Size3,
} from './layers.js';
export { step } from './step.js';
export { GroupNorm, BatchNorm3d, flushBatchNormStats } from './norm-layers.js';
