/**
 * uxnet3d public API. Importing it registers every backend that can run here (native when its
 * addon loaded, reference always); WebGPU needs `await initWebGPU()` first.
 */
import './backends/index.js';

export * from './engine/index.js';
export {
  Rng, Module, Sequential, ModuleList, StateDictError, initContext, Conv3d, ConvTranspose3d, LayerNorm, InstanceNorm3d, LeakyReLU, GELU,
  type Layer, type LoadReport, type ShapeMismatch, type StateDictInput, type StateValue, type InitOptions,
  type Conv3dOptions as Conv3dLayerOptions, type ConvTranspose3dOptions, type LayerNormOptions,
} from './nn/index.js';
export * from './models/index.js';
export { DiceCELoss, type DiceCELossOptions, type DiceCELossResult } from './train/dice-ce-loss.js';
export { AdamW, type AdamWOptions, type AdamWStateDict } from './train/adamw.js';
export { loadSafetensors, saveSafetensors } from './io/load.js';
export { parseSafetensors, serializeSafetensors, readSafetensorsFile, writeSafetensorsFile, SafetensorsError, type RawTensor, type RawTensorMap } from './io/safetensors.js';
export { readPth, parsePth, PthError } from './io/pth.js';
export { readWeightsFile, WeightsFormatError } from './io/weights.js';
export * as nifti from './io/nifti/index.js';
export * as metrics from './metrics/index.js';
// Training and preprocessing without a terminal: progress arrives through handlers.
export { runTraining, TrainRunError, type TrainRunOptions, type TrainRunResult } from './train/run.js';
export { resolveTrainConfig, TRAIN_DEFAULTS, TrainConfigError, type TrainConfig } from './train/config.js';
export type { TrainHandlers, StepEndEvent, ValidationEndEvent, CheckpointEvent } from './train/events.js';
export { preprocessDataset, PresetError, type PreprocessPlan, type PreprocessProgress } from './data/preprocess.js';
